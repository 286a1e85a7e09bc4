#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/yenc/yenc.h"

namespace nzbmesh::yenc {
namespace {

using ::testing::HasSubstr;

TEST(ParseBeginLine, ParsesMultiPartHeaderWithSpacesInName) {
  absl::StatusOr<PartHeader> h =
      ParseBeginLine("=ybegin part=3 total=12 line=128 size=9000000 name=My File (1).bin");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->part, 3);
  EXPECT_EQ(h->total, 12);
  EXPECT_EQ(h->line, 128);
  EXPECT_EQ(h->size, 9000000);
  EXPECT_EQ(h->name, "My File (1).bin");
  EXPECT_EQ(h->begin, 0);  // set by =ypart
}

TEST(ParseBeginLine, SinglePartCoversTheWholeFile) {
  absl::StatusOr<PartHeader> h = ParseBeginLine("=ybegin line=128 size=584 name=a.txt");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->part, 0);
  EXPECT_EQ(h->total, 0);
  EXPECT_EQ(h->begin, 1);
  EXPECT_EQ(h->end, 584);
}

TEST(ParseBeginLine, ToleratesMissingLineAndUnknownFields) {
  absl::StatusOr<PartHeader> h =
      ParseBeginLine("=ybegin  foo=bar size=10 crc32=abc junk name= x=1 y ");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->line, 0);
  EXPECT_EQ(h->size, 10);
  EXPECT_EQ(h->name, " x=1 y ");  // the name runs to the end of the line
}

TEST(ParseBeginLine, RejectsMissingSize) {
  absl::StatusOr<PartHeader> h = ParseBeginLine("=ybegin line=128 name=a");
  EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(h.status().message(), HasSubstr("no size= field"));
}

TEST(ParseBeginLine, RejectsMissingName) {
  absl::StatusOr<PartHeader> h = ParseBeginLine("=ybegin line=128 size=3");
  EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(h.status().message(), HasSubstr("no name= field"));
}

TEST(ParseBeginLine, RejectsNonNumericField) {
  absl::StatusOr<PartHeader> h = ParseBeginLine("=ybegin part=x1 size=3 name=a");
  EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(h.status().message(), HasSubstr("=ybegin field part= has value 'x1'"));
  h = ParseBeginLine("=ybegin size=-3 name=a");
  EXPECT_THAT(h.status().message(), HasSubstr("size= has value '-3'"));
  h = ParseBeginLine("=ybegin size=1234567890123456789 name=a");
  EXPECT_THAT(h.status().message(), HasSubstr("want a decimal number"));
}

TEST(ParseBeginLine, RejectsOtherKeywords) {
  absl::StatusOr<PartHeader> h = ParseBeginLine("=ybeginx size=3 name=a");
  EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(h.status().message(), HasSubstr("expected a =ybegin line, got '=ybeginx"));
}

TEST(ParsePartLine, SetsRange) {
  PartHeader h;
  ASSERT_TRUE(ParsePartLine("=ypart begin=768001 end=1536000", &h).ok());
  EXPECT_EQ(h.begin, 768001);
  EXPECT_EQ(h.end, 1536000);
}

TEST(ParsePartLine, RejectsMissingOrBackwardRange) {
  PartHeader h;
  absl::Status s = ParsePartLine("=ypart begin=1", &h);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("no end= field"));
  s = ParsePartLine("=ypart end=1", &h);
  EXPECT_THAT(s.message(), HasSubstr("no begin= field"));
  s = ParsePartLine("=ypart begin=10 end=5", &h);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("begin=10 end=5 is empty or not 1-based"));
  s = ParsePartLine("=ypart begin=0 end=5", &h);
  EXPECT_THAT(s.message(), HasSubstr("not 1-based"));
}

TEST(ParseEndLine, ParsesAllFieldsAnyHexCase) {
  absl::StatusOr<PartTrailer> t =
      ParseEndLine("=yend size=768000 part=2 pcrc32=ABCdef01 crc32=1f x=y");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->size, 768000);
  EXPECT_EQ(t->part, 2);
  EXPECT_TRUE(t->has_pcrc32);
  EXPECT_EQ(t->pcrc32, 0xabcdef01u);
  EXPECT_TRUE(t->has_crc32);
  EXPECT_EQ(t->crc32, 0x1fu);
}

TEST(ParseEndLine, CrcsAreOptional) {
  absl::StatusOr<PartTrailer> t = ParseEndLine("=yend size=0");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_FALSE(t->has_pcrc32);
  EXPECT_FALSE(t->has_crc32);
}

TEST(ParseEndLine, RejectsBadCrcAndMissingSize) {
  absl::StatusOr<PartTrailer> t = ParseEndLine("=yend size=1 pcrc32=12345678g");
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("pcrc32= has value '12345678g', want 1 to 8 hex"));
  t = ParseEndLine("=yend size=1 crc32=");
  EXPECT_THAT(t.status().message(), HasSubstr("crc32= has value ''"));
  t = ParseEndLine("=yend part=1");
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("=yend line has no size= field"));
}

}  // namespace
}  // namespace nzbmesh::yenc
