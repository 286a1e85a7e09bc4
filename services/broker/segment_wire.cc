#include "services/broker/segment_wire.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/support/slice.h>

#include <string>

namespace nzbmesh::broker {
namespace {

using google::protobuf::internal::WireFormatLite;

// Appends the tag and length of a length-delimited field.
void AppendFieldHeader(std::string* out, int field, size_t length) {
  uint8_t buf[10];  // two varint32s of at most 5 bytes
  uint8_t* p = google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(
      WireFormatLite::MakeTag(field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED), buf);
  p = google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(length), p);
  out->append(reinterpret_cast<const char*>(buf), static_cast<size_t>(p - buf));
}

// The slice's user data: one reference to the pooled buffer.
void ReleaseHandle(void* handle) { delete static_cast<BufferPool::Handle*>(handle); }

}  // namespace

grpc::ByteBuffer FetchSegmentResponseBuffer(const v1::SegmentMetadata* metadata, const BufferPool::Handle& data,
                                            size_t offset, size_t n) {
  std::string head;
  if (metadata != nullptr) {
    const std::string md = metadata->SerializeAsString();
    AppendFieldHeader(&head, v1::FetchSegmentResponse::kMetadataFieldNumber, md.size());
    head += md;
  }
  // proto3: an empty `data` is not on the wire.
  if (n > 0) AppendFieldHeader(&head, v1::FetchSegmentResponse::kDataFieldNumber, n);
  grpc::Slice slices[2];
  size_t count = 0;
  if (!head.empty()) slices[count++] = grpc::Slice(head);
  if (n > 0) {
    slices[count++] = grpc::Slice(data->data() + offset, n, &ReleaseHandle, new BufferPool::Handle(data));
  }
  return grpc::ByteBuffer(slices, count);
}

}  // namespace nzbmesh::broker
