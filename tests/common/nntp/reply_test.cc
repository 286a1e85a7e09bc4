#include "common/nntp/reply.h"

#include <algorithm>
#include <string>

#include "absl/strings/string_view.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nzbmesh::nntp {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParseStatusLine, ParsesCodeAndText) {
  auto st = ParseStatusLine("222 0 <a@b> body follows");
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->code, 222);
  EXPECT_EQ(st->text, "0 <a@b> body follows");
}

TEST(ParseStatusLine, AcceptsBareCodeTabAndTrailingCr) {
  EXPECT_EQ(ParseStatusLine("205")->code, 205);
  EXPECT_EQ(ParseStatusLine("205")->text, "");
  EXPECT_EQ(ParseStatusLine("430\tno such article")->text, "no such article");
  EXPECT_EQ(ParseStatusLine("200 ok\r")->text, "ok");
}

TEST(ParseStatusLine, RejectsMalformedLinesWithAClearMessage) {
  for (const char* bad : {"", "22", "abc def", "022 x", "622 x", "2220 x", "22a x", "200-x"}) {
    auto st = ParseStatusLine(bad);
    ASSERT_FALSE(st.ok()) << bad;
    EXPECT_EQ(st.status().code(), absl::StatusCode::kInternal);
    EXPECT_THAT(st.status().message(), HasSubstr("malformed NNTP status line"));
  }
  auto nul = ParseStatusLine(std::string("200 a\0b", 7));
  EXPECT_FALSE(nul.ok());
  EXPECT_THAT(nul.status().message(), HasSubstr("\\x00"));
  EXPECT_FALSE(ParseStatusLine(std::string(3000, '2')).ok());
}

TEST(IsMultiLineReply, KnowsWhichRepliesCarryData) {
  EXPECT_TRUE(IsMultiLineReply("BODY", 222));
  EXPECT_TRUE(IsMultiLineReply("ARTICLE", 220));
  EXPECT_TRUE(IsMultiLineReply("HEAD", 221));
  EXPECT_TRUE(IsMultiLineReply("CAPABILITIES", 101));
  EXPECT_FALSE(IsMultiLineReply("BODY", 430));
  EXPECT_FALSE(IsMultiLineReply("STAT", 223));
  EXPECT_FALSE(IsMultiLineReply("BODY", 220));
}

TEST(TerminatorScanner, FindsTerminatorAndLeavesTheRest) {
  const std::string block = "line\r\n..stuffed\r\n.\r\n222 next";
  TerminatorScanner s;
  size_t n = s.Feed(block);
  EXPECT_TRUE(s.done());
  EXPECT_EQ(block.substr(n), "222 next");
}

TEST(TerminatorScanner, EmptyBlock) {
  TerminatorScanner s;
  EXPECT_EQ(s.Feed(".\r\nrest"), 3u);
  EXPECT_TRUE(s.done());
}

TEST(TerminatorScanner, DotStuffedLinesAreNotTerminators) {
  TerminatorScanner s;
  const std::string block = "..\r\n.x\r\n.\rx\r\n";
  EXPECT_EQ(s.Feed(block), block.size());
  EXPECT_FALSE(s.done());
}

TEST(TerminatorScanner, EveryChunkingFindsTheSameEnd) {
  const std::string block = "abc\r\n..\r\n.a\r\n\r\n.\r\n.\r\nafter";
  // The first ".\r\n" at a line start (offset 15) ends the block.
  const size_t expected = 18;
  for (size_t chunk = 1; chunk <= block.size(); ++chunk) {
    TerminatorScanner s;
    size_t pos = 0;
    while (!s.done() && pos < block.size()) {
      const size_t len = std::min(chunk, block.size() - pos);
      pos += s.Feed(absl::string_view(block).substr(pos, len));
    }
    EXPECT_TRUE(s.done()) << chunk;
    EXPECT_EQ(pos, expected) << chunk;
  }
}

TEST(SplitMultiLineBlock, UnstuffsLines) {
  auto lines = SplitMultiLineBlock("VERSION 2\r\n..dot\r\nREADER\r\n.\r\n");
  ASSERT_TRUE(lines.ok());
  EXPECT_THAT(*lines, ElementsAre("VERSION 2", ".dot", "READER"));
  EXPECT_FALSE(SplitMultiLineBlock("a\r\n.\r\nextra\r\n").ok());
}

}  // namespace
}  // namespace nzbmesh::nntp
