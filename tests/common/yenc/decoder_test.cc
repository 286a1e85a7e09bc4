#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/yenc/yenc.h"
#include "tests/common/yenc/test_articles.h"

namespace nzbmesh::yenc {
namespace {

using ::testing::HasSubstr;
using testing::Decode;
using testing::DecodeOutcome;
using Mode = ArticleDecoder::Mode;

// Encoded form of raw text: each byte + 42, no escaping (test strings avoid
// critical results).
std::string Enc(absl::string_view raw) {
  std::string s(raw);
  for (char& c : s) c = static_cast<char>(static_cast<unsigned char>(c) + 42);
  return s;
}

std::string Trailer(absl::string_view data) {
  return absl::StrFormat("=yend size=%d crc32=%08x\r\n", data.size(),
                         Crc32Update(0, data.data(), data.size()));
}

TEST(ArticleDecoder, SkipsJunkBeforeBeginAndDecodesSinglePart) {
  const std::string in = absl::StrCat("some junk\r\n..dotted junk\r\n\r\n",
                                      "=ybegin line=128 size=11 name=hello world.txt\r\n",
                                      Enc("hello"), "\r\n", Enc(" world"), "\r\n",
                                      Trailer("hello world"), "trailing line\r\n.\r\n");
  for (Kernel k : testing::SupportedKernels()) {
    const DecodeOutcome r = Decode(in, k, Mode::kNntp);
    EXPECT_TRUE(r.verify_status.ok()) << r.verify_status;
    EXPECT_EQ(r.output, "hello world");
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.consumed, in.size());
    EXPECT_EQ(r.header.name, "hello world.txt");
    EXPECT_EQ(r.header.size, 11);
    EXPECT_EQ(r.trailer.size, 11);
  }
}

TEST(ArticleDecoder, EmptyBodyEndsAtTerminatorWithoutHeader) {
  ArticleDecoder d({});
  char out[16];
  absl::StatusOr<ArticleDecoder::FeedResult> r = d.Feed(".\r\n222 next", out, sizeof(out));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(d.done());
  EXPECT_EQ(r->consumed, 3u);
  EXPECT_FALSE(d.saw_header());
  EXPECT_EQ(d.Verify().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(d.Verify().message(), HasSubstr("no =ybegin line"));
}

TEST(ArticleDecoder, LeavesBytesAfterTerminatorUnconsumed) {
  const std::string article = testing::NntpArticle("payload", {.name = "p"});
  const std::string in = article + "222 0 <next>\r\n";
  const DecodeOutcome r = Decode(in, Kernel::kAuto, Mode::kNntp);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.consumed, article.size());
  EXPECT_EQ(r.output, "payload");
}

TEST(ArticleDecoder, UndoesDotStuffingInData) {
  // ".." at a line start is one data '.', which decodes to '.' - 42.
  const std::string in = absl::StrCat("=ybegin line=128 size=3 name=x\r\n", "..", Enc("ab"),
                                      "\r\n", Trailer(std::string{static_cast<char>('.' - 42), 'a', 'b'}),
                                      ".\r\n");
  for (Kernel k : testing::SupportedKernels()) {
    const DecodeOutcome r = Decode(in, k, Mode::kNntp);
    EXPECT_TRUE(r.verify_status.ok()) << KernelName(k) << ": " << r.verify_status;
    EXPECT_EQ(r.output, absl::StrCat(std::string(1, static_cast<char>('.' - 42)), "ab"));
  }
}

TEST(ArticleDecoder, RawModeKeepsDotsAndEndsAfterYend) {
  const std::string data = {static_cast<char>('.' - 42), static_cast<char>('.' - 42)};
  const std::string in = absl::StrCat("=ybegin line=128 size=2 name=x\r\n..\r\n", Trailer(data),
                                      "not consumed");
  const DecodeOutcome r = Decode(in, Kernel::kAuto, Mode::kRaw);
  EXPECT_TRUE(r.verify_status.ok()) << r.verify_status;
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.output, data);
  EXPECT_EQ(r.consumed, in.size() - 12);
}

TEST(ArticleDecoder, EscapeCarriesAcrossChunks) {
  // "=J" is an escaped LF ('\n' + 42 + 64) -> 0x0a - 42.
  const std::string in = absl::StrCat("=ybegin line=128 size=1 name=x\r\n=J\r\n",
                                      Trailer(std::string(1, static_cast<char>(0x0a - 42))), ".\r\n");
  for (Kernel k : testing::SupportedKernels()) {
    const DecodeOutcome r = Decode(in, k, Mode::kNntp, {33});  // split between '=' and 'J'
    EXPECT_TRUE(r.verify_status.ok()) << r.verify_status;
    EXPECT_EQ(r.output, std::string(1, static_cast<char>(0x0a - 42)));
  }
}

TEST(ArticleDecoder, ToleratesBareLineFeeds) {
  const std::string in = absl::StrCat("=ybegin line=128 size=6 name=x\n", Enc("abc"), "\n",
                                      Enc("def"), "\n", "=yend size=6\n.\n");
  for (Kernel k : testing::SupportedKernels()) {
    const DecodeOutcome r = Decode(in, k, Mode::kNntp);
    EXPECT_TRUE(r.verify_status.ok()) << r.verify_status;
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.output, "abcdef");
  }
}

TEST(ArticleDecoder, ParsesYpartAndChecksPcrc32) {
  EncodeOptions o;
  o.name = "multi";
  o.part = 2;
  o.total = 3;
  o.file_size = 30;
  o.begin = 11;
  const DecodeOutcome r = Decode(testing::NntpArticle("0123456789", o), Kernel::kAuto, Mode::kNntp);
  EXPECT_TRUE(r.verify_status.ok()) << r.verify_status;
  EXPECT_EQ(r.header.part, 2);
  EXPECT_EQ(r.header.begin, 11);
  EXPECT_EQ(r.header.end, 20);
  EXPECT_TRUE(r.trailer.has_pcrc32);
}

TEST(ArticleDecoder, TruncatedArticleIsDataLoss) {
  const std::string in = absl::StrCat("=ybegin line=128 size=3 name=x\r\n", Enc("abc"), "\r\n.\r\n");
  for (Kernel k : testing::SupportedKernels()) {
    const DecodeOutcome r = Decode(in, k, Mode::kNntp);
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.output, "abc");
    EXPECT_EQ(r.verify_status.code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(r.verify_status.message(), HasSubstr("has no =yend line"));
  }
}

TEST(ArticleDecoder, CorruptedByteIsDataLossWithExpectedAndActualCrc) {
  std::string in = testing::NntpArticle(testing::RandomBytes(5000, 7), {.name = "c"});
  const size_t data_start = in.find('\n') + 1;
  for (size_t i = data_start;; ++i) {  // flip a plain data byte
    const char c = in[i];
    if (c != '=' && c != '\r' && c != '\n' && c != '.' && in[i - 1] != '=') {
      in[i] = static_cast<char>(c == 'a' ? 'b' : 'a');
      break;
    }
  }
  const uint32_t want = Crc32Update(0, testing::RandomBytes(5000, 7).data(), 5000);
  const DecodeOutcome r = Decode(in, Kernel::kAuto, Mode::kNntp);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.verify_status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(r.verify_status.message(),
              HasSubstr(absl::StrFormat("crc32=%08x (expected) but decoded data has %08x (actual)",
                                        want, r.crc)));
}

TEST(ArticleDecoder, SizeMismatchIsDataLoss) {
  const std::string in = absl::StrCat("=ybegin line=128 size=3 name=x\r\n", Enc("abc"),
                                      "\r\n=yend size=4\r\n.\r\n");
  const DecodeOutcome r = Decode(in, Kernel::kAuto, Mode::kNntp);
  EXPECT_EQ(r.verify_status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(r.verify_status.message(), HasSubstr("=yend size=4 (expected) but decoded 3 bytes"));
}

TEST(ArticleDecoder, MalformedYendIsStickyInvalidArgument) {
  const std::string in = absl::StrCat("=ybegin line=128 size=3 name=x\r\n", Enc("abc"),
                                      "\r\n=yend size=zz\r\n.\r\n");
  ArticleDecoder d({});
  std::string out(4096, '\0');
  absl::StatusOr<ArticleDecoder::FeedResult> r = d.Feed(in, out.data(), out.size());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("=yend field size= has value 'zz'"));
  r = d.Feed(".\r\n", out.data(), out.size());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d.Verify().code(), absl::StatusCode::kInvalidArgument);
  d.Reset();
  r = d.Feed(testing::NntpArticle("ok", {.name = "n"}), out.data(), out.size());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(d.Verify().ok());
}

TEST(ArticleDecoder, MalformedYbeginIsInvalidArgument) {
  const DecodeOutcome r = Decode("=ybegin line=128 name=x\r\n.\r\n", Kernel::kAuto, Mode::kNntp);
  EXPECT_EQ(r.feed_status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.feed_status.message(), HasSubstr("=ybegin line has no size= field"));
}

TEST(ArticleDecoder, UnknownYLineInDataIsInvalidArgument) {
  const DecodeOutcome r = Decode("=ybegin size=1 name=x\r\n=yfoo\r\n.\r\n", Kernel::kAuto,
                                 Mode::kNntp);
  EXPECT_EQ(r.feed_status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.feed_status.message(), HasSubstr("unexpected line in yEnc data: '=yfoo'"));
}

TEST(ArticleDecoder, OverlongYendLineIsInvalidArgument) {
  const std::string in = absl::StrCat("=ybegin size=1 name=x\r\n=yend size=0 ", std::string(2000, 'x'),
                                      "\r\n.\r\n");
  const DecodeOutcome r = Decode(in, Kernel::kAuto, Mode::kNntp);
  EXPECT_EQ(r.feed_status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.feed_status.message(), HasSubstr("is longer than 1024 bytes"));
}

TEST(ArticleDecoder, SizeCapIsResourceExhausted) {
  const std::string in = testing::NntpArticle(std::string(10000, 'z'), {.name = "big"});
  const DecodeOutcome r = Decode(in, Kernel::kAuto, Mode::kNntp, {4096}, /*max=*/5000);
  EXPECT_EQ(r.feed_status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(r.feed_status.message(), HasSubstr("decoded to more than 5000 bytes"));
}

TEST(ArticleDecoder, RejectsOutputSmallerThanInput) {
  ArticleDecoder d({});
  char out[2];
  absl::StatusOr<ArticleDecoder::FeedResult> r = d.Feed("abc", out, sizeof(out));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("output capacity 2 is less than the input size 3"));
}

TEST(ArticleDecoder, CrcIsOfAllDecodedBytes) {
  const std::string data = testing::RandomBytes(70000, 3);
  const DecodeOutcome r =
      Decode(testing::NntpArticle(data, {.name = "n"}), Kernel::kAuto, Mode::kNntp, {1000});
  EXPECT_EQ(r.crc, Crc32Update(0, data.data(), data.size()));
  EXPECT_TRUE(r.verify_status.ok());
}

TEST(ArticleDecoder, SinglePartWithoutAnyCrcVerifiesSizeOnly) {
  const std::string in = absl::StrCat("=ybegin size=3 name=x\r\n", Enc("abc"), "\r\n=yend size=3\r\n.\r\n");
  const DecodeOutcome r = Decode(in, Kernel::kAuto, Mode::kNntp);
  EXPECT_TRUE(r.verify_status.ok()) << r.verify_status;
}

TEST(ArticleDecoder, UnsupportedKernelFallsBackToASupportedOne) {
  ArticleDecoder d({.kernel = Kernel::kAvx512Vbmi2});
  EXPECT_TRUE(KernelSupported(d.kernel()));
  EXPECT_NE(d.kernel(), Kernel::kAuto);
}

TEST(Kernels, NamesAreStable) {
  EXPECT_EQ(KernelName(Kernel::kAuto), "auto");
  EXPECT_EQ(KernelName(Kernel::kScalar), "scalar");
  EXPECT_EQ(KernelName(Kernel::kSse2), "sse2");
  EXPECT_EQ(KernelName(Kernel::kSsse3), "ssse3");
  EXPECT_EQ(KernelName(Kernel::kAvx2), "avx2");
  EXPECT_EQ(KernelName(Kernel::kAvx512Vbmi2), "avx512vbmi2");
  EXPECT_TRUE(KernelSupported(Kernel::kScalar));
  EXPECT_TRUE(KernelSupported(Kernel::kAuto));
}

}  // namespace
}  // namespace nzbmesh::yenc
