// The happy path of LzmaDecode is covered by archive_test (the 7z sets whose
// headers 7-Zip packed with LZMA); these are the error contracts.
#include "services/importer/analysis/lzma_decoder.h"

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/importer/analysis/crc32.h"

namespace nzbmesh::importer {
namespace {

using ::testing::HasSubstr;

const std::string kProps("\x5d\x00\x00\x10\x00", 5);  // lc=3 lp=0 pb=2, 1 MiB dictionary.

TEST(Crc32, MatchesCheckValue) {
  EXPECT_EQ(Crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(Crc32("6789", Crc32("12345")), 0xCBF43926u);
  EXPECT_EQ(Crc32(""), 0u);
}

TEST(LzmaDecode, RejectsShortOrOutOfRangeProperties) {
  EXPECT_EQ(LzmaDecode("\x5d", "", 1, 100).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LzmaDecode(std::string("\xff\0\0\0\0", 5), "", 1, 100).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LzmaDecode, RefusesOutputBeyondCap) {
  absl::StatusOr<std::string> out = LzmaDecode(kProps, std::string(16, '\0'), 1 << 20, 1024);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(out.status().message(), HasSubstr("exceeds the cap"));
}

TEST(LzmaDecode, GarbageOrTruncatedInputIsDataLoss) {
  EXPECT_EQ(LzmaDecode(kProps, "\x01\x02\x03\x04\x05\x06", 100, 1000).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(LzmaDecode(kProps, std::string("\0\0\0", 3), 100, 1000).status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace nzbmesh::importer
