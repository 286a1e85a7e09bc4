// FetchSegmentResponse on the wire without copying the article into a
// protobuf message: the broker's answer to "serialize a chunk of a pooled
// buffer into gRPC" (docs/PERFORMANCE.md, broker section).
//
// A FetchSegmentResponse is, as protobuf serializes it, field 1 (metadata,
// length-delimited) followed by field 2 (data, length-delimited). The
// buffer built here holds exactly those bytes as two slices: a small one
// with the metadata and both field headers, copied, and one that references
// the decoded bytes in the pooled buffer itself. Clients parse it as the
// ordinary generated message.
#ifndef NZBMESH_SERVICES_BROKER_SEGMENT_WIRE_H_
#define NZBMESH_SERVICES_BROKER_SEGMENT_WIRE_H_

#include <grpcpp/support/byte_buffer.h>

#include <cstddef>

#include "nzbmesh/broker/v1/broker.pb.h"
#include "services/broker/buffer_pool.h"

namespace nzbmesh::broker {

// The serialized FetchSegmentResponse{metadata, data = (*data)[offset, offset + n)},
// byte for byte what FetchSegmentResponse::SerializeAsString() gives.
// `metadata` may be null (later chunks); `data` may be null only when n == 0.
// The returned buffer (and every copy gRPC makes of it) holds a reference to
// `data`: the pooled buffer goes back to its pool when the last slice is
// released, whichever thread that happens on. The caller must not modify
// the bytes while any such reference is alive.
grpc::ByteBuffer FetchSegmentResponseBuffer(const v1::SegmentMetadata* metadata, const BufferPool::Handle& data,
                                            size_t offset, size_t n);

}  // namespace nzbmesh::broker

#endif  // NZBMESH_SERVICES_BROKER_SEGMENT_WIRE_H_
