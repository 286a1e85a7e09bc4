#include "services/frontend/range.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace nzbmesh::frontend {
namespace {

using Kind = RangeResult::Kind;

TEST(ParseRange, NoHeaderOrOtherUnitIsFull) {
  EXPECT_EQ(ParseRange("", 100).kind, Kind::kFull);
  EXPECT_EQ(ParseRange("items=0-5", 100).kind, Kind::kFull);
  EXPECT_EQ(ParseRange("bytes=", 100).kind, Kind::kFull);
}

TEST(ParseRange, SingleClosedRange) {
  auto r = ParseRange("bytes=0-99", 1000);
  ASSERT_EQ(r.kind, Kind::kPartial);
  ASSERT_EQ(r.ranges.size(), 1u);
  EXPECT_EQ(r.ranges[0], (ByteRange{0, 99}));
  EXPECT_EQ(ContentRange(r.ranges[0], 1000), "bytes 0-99/1000");
}

TEST(ParseRange, UnitIsCaseInsensitiveAndWhitespaceTolerated) {
  auto r = ParseRange("  Bytes=10-19 , 30-39 ", 100);
  ASSERT_EQ(r.kind, Kind::kPartial);
  ASSERT_EQ(r.ranges.size(), 2u);
  EXPECT_EQ(r.ranges[1], (ByteRange{30, 39}));
}

TEST(ParseRange, OpenEndedRangeRunsToEnd) {
  auto r = ParseRange("bytes=900-", 1000);
  ASSERT_EQ(r.kind, Kind::kPartial);
  EXPECT_EQ(r.ranges[0], (ByteRange{900, 999}));
}

TEST(ParseRange, LastPositionBeyondEndIsClamped) {
  auto r = ParseRange("bytes=990-5000", 1000);
  ASSERT_EQ(r.kind, Kind::kPartial);
  EXPECT_EQ(r.ranges[0], (ByteRange{990, 999}));
}

TEST(ParseRange, SuffixRange) {
  auto r = ParseRange("bytes=-100", 1000);
  ASSERT_EQ(r.kind, Kind::kPartial);
  EXPECT_EQ(r.ranges[0], (ByteRange{900, 999}));
  auto whole = ParseRange("bytes=-5000", 1000);
  EXPECT_EQ(whole.ranges[0], (ByteRange{0, 999}));
}

TEST(ParseRange, Returns416ForUnsatisfiableRange) {
  EXPECT_EQ(ParseRange("bytes=1000-", 1000).kind, Kind::kUnsatisfiable);
  EXPECT_EQ(ParseRange("bytes=2000-3000", 1000).kind, Kind::kUnsatisfiable);
  EXPECT_EQ(ParseRange("bytes=-0", 1000).kind, Kind::kUnsatisfiable);
  EXPECT_EQ(ParseRange("bytes=0-", 0).kind, Kind::kUnsatisfiable);
}

TEST(ParseRange, UnsatisfiableSpecsAreDroppedWhenOthersAreSatisfiable) {
  auto r = ParseRange("bytes=5000-6000,0-9", 1000);
  ASSERT_EQ(r.kind, Kind::kPartial);
  ASSERT_EQ(r.ranges.size(), 1u);
  EXPECT_EQ(r.ranges[0], (ByteRange{0, 9}));
}

TEST(ParseRange, SyntacticallyInvalidHeaderIsIgnored) {
  EXPECT_EQ(ParseRange("bytes=5-2", 100).kind, Kind::kFull);
  EXPECT_EQ(ParseRange("bytes=a-b", 100).kind, Kind::kFull);
  EXPECT_EQ(ParseRange("bytes=5", 100).kind, Kind::kFull);
  EXPECT_EQ(ParseRange("bytes=-", 100).kind, Kind::kFull);
  EXPECT_EQ(ParseRange("bytes=+1-2", 100).kind, Kind::kFull);
  EXPECT_EQ(ParseRange("bytes=0-1,x", 100).kind, Kind::kFull);
}

TEST(ParseRange, MultipleRangesAreSortedAndKept) {
  auto r = ParseRange("bytes=500-599,0-99", 1000);
  ASSERT_EQ(r.kind, Kind::kPartial);
  ASSERT_EQ(r.ranges.size(), 2u);
  EXPECT_EQ(r.ranges[0], (ByteRange{0, 99}));
  EXPECT_EQ(r.ranges[1], (ByteRange{500, 599}));
}

TEST(ParseRange, OverlappingAndAdjacentRangesAreCoalesced) {
  auto r = ParseRange("bytes=0-99,50-149,150-199,-10,995-", 1000);
  ASSERT_EQ(r.kind, Kind::kPartial);
  ASSERT_EQ(r.ranges.size(), 2u);
  EXPECT_EQ(r.ranges[0], (ByteRange{0, 199}));
  EXPECT_EQ(r.ranges[1], (ByteRange{990, 999}));
}

TEST(ParseRange, AbusiveOverlapCollapsesToOneRange) {
  std::string h = "bytes=";
  for (int i = 0; i < 100; ++i) absl::StrAppend(&h, i == 0 ? "" : ",", "0-", 1000 + i);
  auto r = ParseRange(h, 1 << 20);
  ASSERT_EQ(r.kind, Kind::kPartial);
  ASSERT_EQ(r.ranges.size(), 1u);
  EXPECT_EQ(r.ranges[0], (ByteRange{0, 1099}));
}

TEST(ParseRange, TenThousandRangesAre416) {
  std::string h = "bytes=";
  for (int i = 0; i < 10000; ++i) absl::StrAppend(&h, i == 0 ? "" : ",", i * 10, "-", i * 10 + 1);
  EXPECT_EQ(ParseRange(h, 1 << 20).kind, Kind::kUnsatisfiable);
}

TEST(ParseRange, HugeNumbersSaturateWithoutOverflow) {
  auto r = ParseRange("bytes=0-99999999999999999999999999", 1000);
  ASSERT_EQ(r.kind, Kind::kPartial);
  EXPECT_EQ(r.ranges[0], (ByteRange{0, 999}));
  EXPECT_EQ(ParseRange("bytes=99999999999999999999999-", 1000).kind, Kind::kUnsatisfiable);
  auto s = ParseRange("bytes=-99999999999999999999999", 1000);
  EXPECT_EQ(s.ranges[0], (ByteRange{0, 999}));
}

TEST(ParseRange, EmptyListElementsAreAllowed) {
  auto r = ParseRange("bytes=,0-1,,", 10);
  ASSERT_EQ(r.kind, Kind::kPartial);
  EXPECT_EQ(r.ranges[0], (ByteRange{0, 1}));
}

TEST(IfRange, StrongEtagMatches) {
  absl::Time lm = absl::FromUnixSeconds(784111777);
  EXPECT_TRUE(IfRangeMatches("\"v1\"", "\"v1\"", lm));
  EXPECT_FALSE(IfRangeMatches("\"v2\"", "\"v1\"", lm));
  EXPECT_FALSE(IfRangeMatches("W/\"v1\"", "\"v1\"", lm));
  EXPECT_FALSE(IfRangeMatches("", "\"v1\"", lm));
}

TEST(IfRange, DateMustEqualLastModified) {
  absl::Time lm = absl::FromUnixSeconds(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT
  EXPECT_EQ(HttpDate(lm), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_TRUE(IfRangeMatches("Sun, 06 Nov 1994 08:49:37 GMT", "\"v1\"", lm));
  EXPECT_FALSE(IfRangeMatches("Sun, 06 Nov 1994 08:49:38 GMT", "\"v1\"", lm));
  EXPECT_FALSE(IfRangeMatches("yesterday", "\"v1\"", lm));
}

TEST(HttpDate, ParsesObsoleteForms) {
  absl::Time t;
  ASSERT_TRUE(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT", &t));
  EXPECT_EQ(absl::ToUnixSeconds(t), 784111777);
  ASSERT_TRUE(ParseHttpDate("Sun Nov  6 08:49:37 1994", &t));
  EXPECT_EQ(absl::ToUnixSeconds(t), 784111777);
}

}  // namespace
}  // namespace nzbmesh::frontend
