// FetchSegmentResponseBuffer: the raw bytes equal the generated message's
// serialization, the data slice is the pooled buffer itself (no copy), and
// the buffer goes back to its pool only once every slice is released.
#include "services/broker/segment_wire.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace nzbmesh::broker {
namespace {

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

v1::SegmentMetadata SampleMetadata() {
  v1::SegmentMetadata md;
  md.set_name("movie.mkv");
  md.set_part(3);
  md.set_total_parts(70000);
  md.set_begin(1536001);
  md.set_end(2304000);
  md.set_file_size(53760000000);
  md.set_decoded_size(768000);
  md.set_crc32(0xdeadbeef);
  md.set_crc_verified(true);
  md.set_provider("primary");
  return md;
}

BufferPool::Handle Filled(BufferPool& pool, size_t n) {
  BufferPool::Handle h = pool.Get();
  h->resize(n);
  for (size_t i = 0; i < n; ++i) (*h)[i] = static_cast<char>(i * 131 + 7);
  return h;
}

TEST(SegmentWireTest, BytesEqualTheGeneratedSerialization) {
  BufferPool pool;
  // Lengths around the varint boundaries of the data field's length.
  for (size_t n : {size_t{1}, size_t{127}, size_t{128}, size_t{16383}, size_t{16384}, size_t{768000}}) {
    BufferPool::Handle data = Filled(pool, n + 10);
    const v1::SegmentMetadata md = SampleMetadata();
    for (const bool with_metadata : {true, false}) {
      v1::FetchSegmentResponse expected;
      if (with_metadata) *expected.mutable_metadata() = md;
      expected.set_data(data->data() + 10, n);
      const grpc::ByteBuffer got = FetchSegmentResponseBuffer(with_metadata ? &md : nullptr, data, 10, n);
      EXPECT_EQ(Flatten(got), expected.SerializeAsString()) << "n=" << n << " metadata=" << with_metadata;
      // And it parses back as the generated message.
      v1::FetchSegmentResponse parsed;
      ASSERT_TRUE(parsed.ParseFromString(Flatten(got)));
      EXPECT_EQ(parsed.data(), std::string(data->data() + 10, n));
      EXPECT_EQ(parsed.has_metadata(), with_metadata);
    }
  }
}

TEST(SegmentWireTest, MetadataOnlyWhenThereIsNoData) {
  const v1::SegmentMetadata md = SampleMetadata();
  v1::FetchSegmentResponse expected;
  *expected.mutable_metadata() = md;
  EXPECT_EQ(Flatten(FetchSegmentResponseBuffer(&md, nullptr, 0, 0)), expected.SerializeAsString());
  // An empty metadata message is still present (has_metadata on the client).
  const v1::SegmentMetadata empty;
  v1::FetchSegmentResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(Flatten(FetchSegmentResponseBuffer(&empty, nullptr, 0, 0))));
  EXPECT_TRUE(parsed.has_metadata());
}

TEST(SegmentWireTest, DataSliceIsThePooledBufferUntilReleased) {
  BufferPool pool;
  BufferPool::Handle data = Filled(pool, 768000);
  const char* bytes = data->data();
  {
    grpc::ByteBuffer first = FetchSegmentResponseBuffer(nullptr, data, 4096, 65536);
    std::vector<grpc::Slice> slices;
    ASSERT_TRUE(first.Dump(&slices).ok());
    ASSERT_EQ(slices.size(), 2u);
    EXPECT_EQ(reinterpret_cast<const char*>(slices[1].begin()), bytes + 4096);  // not a copy
    EXPECT_EQ(slices[1].size(), 65536u);
    grpc::ByteBuffer copy(first);  // what gRPC does when it takes the message
    first.Clear();
    slices.clear();
    data.reset();
    EXPECT_EQ(pool.free_count(), 0u) << "returned to the pool while a slice still references it";
    EXPECT_EQ(Flatten(copy).substr(Flatten(copy).size() - 65536, 3),
              std::string({static_cast<char>(4096 * 131 + 7), static_cast<char>(4097 * 131 + 7),
                           static_cast<char>(4098 * 131 + 7)}));
  }
  EXPECT_EQ(pool.free_count(), 1u);
}

}  // namespace
}  // namespace nzbmesh::broker
