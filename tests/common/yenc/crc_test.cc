#include <cstdint>
#include <string>

#include "gtest/gtest.h"
#include "common/yenc/yenc.h"

namespace nzbmesh::yenc {
namespace {

TEST(Crc32, MatchesTheStandardCheckValue) {
  EXPECT_EQ(Crc32Update(0, "123456789", 9), 0xCBF43926u);
  EXPECT_EQ(Crc32Update(0, "", 0), 0u);
}

TEST(Crc32, UpdateContinuesARunningCrc) {
  const std::string s = "The quick brown fox jumps over the lazy dog";
  const uint32_t whole = Crc32Update(0, s.data(), s.size());
  EXPECT_EQ(whole, 0x414FA339u);
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    EXPECT_EQ(Crc32Update(Crc32Update(0, s.data(), cut), s.data() + cut, s.size() - cut), whole);
  }
}

TEST(Crc32, CombineEqualsCrcOfConcatenation) {
  std::string s(5000, '\0');
  uint64_t x = 88172645463325252ULL;
  for (char& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  const uint32_t whole = Crc32Update(0, s.data(), s.size());
  for (size_t cut : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{100}, size_t{4095},
                     size_t{4999}, size_t{5000}}) {
    const uint32_t a = Crc32Update(0, s.data(), cut);
    const uint32_t b = Crc32Update(0, s.data() + cut, s.size() - cut);
    EXPECT_EQ(Crc32Combine(a, b, static_cast<int64_t>(s.size() - cut)), whole) << cut;
  }
}

TEST(Crc32, CombineHandlesLongSecondBlocks) {
  // 1 GiB of zeros: CRC of zeros via repeated updates of a 1 MiB block.
  const std::string zeros(1 << 20, '\0');
  uint32_t crc_zeros = 0;
  for (int i = 0; i < 1024; ++i) crc_zeros = Crc32Update(crc_zeros, zeros.data(), zeros.size());
  const uint32_t a = Crc32Update(0, "abc", 3);
  const int64_t len2 = int64_t{1} << 30;
  uint32_t direct = a;
  for (int i = 0; i < 1024; ++i) direct = Crc32Update(direct, zeros.data(), zeros.size());
  EXPECT_EQ(Crc32Combine(a, crc_zeros, len2), direct);
}

}  // namespace
}  // namespace nzbmesh::yenc
