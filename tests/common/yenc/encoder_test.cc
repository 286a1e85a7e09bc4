#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/yenc/yenc.h"
#include "tests/common/yenc/test_articles.h"

namespace nzbmesh::yenc {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// The raw byte that encodes to `c` (c - 42).
char Raw(char c) { return static_cast<char>(static_cast<unsigned char>(c) - 42); }

TEST(EncodePart, WritesSinglePartHeaderAndTrailer) {
  EncodeOptions o;
  o.name = "a b.txt";
  const std::string out = EncodePart("abc", o);
  const uint32_t crc = Crc32Update(0, "abc", 3);
  EXPECT_EQ(out, absl::StrCat("=ybegin line=128 size=3 name=a b.txt\r\n", "\x8b\x8c\x8d\r\n",
                              absl::StrFormat("=yend size=3 crc32=%08x\r\n", crc)));
}

TEST(EncodePart, WritesMultiPartHeaderPartAndTrailer) {
  EncodeOptions o;
  o.name = "f.bin";
  o.part = 2;
  o.total = 5;
  o.file_size = 1000;
  o.begin = 201;
  o.include_file_crc = true;
  o.file_crc32 = 0xdeadbeef;
  const std::string data(200, 'x');
  const std::string out = EncodePart(data, o);
  EXPECT_THAT(out, StartsWith("=ybegin part=2 total=5 line=128 size=1000 name=f.bin\r\n"
                              "=ypart begin=201 end=400\r\n"));
  EXPECT_THAT(out, HasSubstr(absl::StrFormat("=yend size=200 part=2 pcrc32=%08x crc32=deadbeef\r\n",
                                             Crc32Update(0, data.data(), data.size()))));
}

TEST(EncodePart, EscapesCriticalCharacters) {
  EncodeOptions o;
  o.name = "x";
  o.line_length = 128;
  // NUL, LF, CR, '=' anywhere; a TAB and SPACE mid-line stay literal.
  std::string data = {Raw('a'), Raw('\0'), Raw('\n'), Raw('\r'), Raw('='), Raw('\t'), Raw(' '),
                      Raw('.'), Raw('b')};
  const std::vector<std::string> lines = absl::StrSplit(EncodePart(data, o), "\r\n");
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines[1], "a=@=J=M=}\t .b");
}

TEST(EncodePart, EscapesWhitespaceAtLineEdgesAndDotAtLineStart) {
  EncodeOptions o;
  o.name = "x";
  o.line_length = 4;
  // Line 1 starts with TAB; line 2 starts with '.'; line 3 ends with SPACE;
  // line 4 is a '.' at a line start that is also the end of the data.
  const std::string data = {Raw('\t'), Raw('a'), Raw('b'), Raw('.'), Raw('c'), Raw('d'),
                            Raw('e'),  Raw('f'), Raw('g'), Raw(' '), Raw('.')};
  const std::vector<std::string> lines = absl::StrSplit(EncodePart(data, o), "\r\n");
  ASSERT_EQ(lines.size(), 7u);  // header, 4 data lines, =yend, ""
  EXPECT_EQ(lines[1], "=Iab");
  EXPECT_EQ(lines[2], "=ncd");
  EXPECT_EQ(lines[3], "efg=`");
  EXPECT_EQ(lines[4], "=n");
}

TEST(EncodePart, DotStuffsLinesStartingWithDot) {
  EncodeOptions o;
  o.name = "x";
  o.part = 1;
  o.begin = 1;
  o.dot_stuff = true;
  // Data lines never start with '.' (escaped), but check no line does.
  const std::string out = EncodePart(std::string(1000, Raw('.')), o);
  for (absl::string_view line : absl::StrSplit(out, "\r\n")) {
    EXPECT_FALSE(!line.empty() && line[0] == '.' && (line.size() < 2 || line[1] != '.')) << line;
  }
}

TEST(EncodePart, RoundTripsThroughTheDecoder) {
  for (int line_length : {1, 2, 3, 64, 128, 997}) {
    for (size_t size : {size_t{0}, size_t{1}, size_t{2}, size_t{127}, size_t{128}, size_t{129},
                        size_t{4096}, size_t{100000}}) {
      const std::string data = testing::RandomBytes(size, size * 31 + line_length);
      EncodeOptions o;
      o.name = ".hidden name";
      o.part = size % 2 == 0 ? 0 : 3;
      o.begin = 1;
      o.line_length = line_length;
      for (bool nntp : {true, false}) {
        o.dot_stuff = nntp;
        std::string in = EncodePart(data, o);
        if (nntp) in += ".\r\n";
        const testing::DecodeOutcome r =
            testing::Decode(in, Kernel::kAuto,
                            nntp ? ArticleDecoder::Mode::kNntp : ArticleDecoder::Mode::kRaw);
        ASSERT_TRUE(r.verify_status.ok())
            << r.verify_status << " line_length=" << line_length << " size=" << size;
        EXPECT_TRUE(r.done);
        EXPECT_EQ(r.consumed, in.size());
        EXPECT_EQ(r.output, data) << "line_length=" << line_length << " size=" << size;
        EXPECT_EQ(r.header.name, ".hidden name");
      }
    }
  }
}

}  // namespace
}  // namespace nzbmesh::yenc
