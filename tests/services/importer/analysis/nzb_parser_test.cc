#include "services/importer/analysis/nzb_parser.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/importer/analysis/filenames.h"

namespace nzbmesh::importer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Segment(int number, absl::string_view id, int64_t bytes = 739811) {
  return absl::StrCat("<segment bytes=\"", bytes, "\" number=\"", number, "\">", id, "</segment>");
}

std::string File(absl::string_view subject, const std::string& segments) {
  return absl::StrCat("<file poster=\"poster@example.com (Poster)\" date=\"1700000000\" subject=\"",
                      subject, "\"><groups><group>alt.binaries.test</group></groups><segments>",
                      segments, "</segments></file>");
}

std::string NzbXml(const std::string& body, absl::string_view head = "") {
  return absl::StrCat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<nzb xmlns=\"http://www.newzbin.com/DTD/2003/nzb\">",
      head, body, "</nzb>");
}

TEST(NzbParser, ParsesFilesSegmentsAndMeta) {
  const std::string xml = NzbXml(
      File("[1/2] - &quot;Movie.2020.mkv&quot; yEnc (1/3)",
           Segment(2, "b@x") + Segment(1, "&lt;a@x&gt;") + Segment(3, "c@x", 1000)) +
          File("[2/2] - &quot;Movie.2020.par2&quot; yEnc (1/1)", Segment(1, "p@x", 5000)),
      "<head><meta type=\"name\">Movie 2020</meta><meta type=\"password\">s3cret</meta>"
      "<meta type=\"category\">movies</meta><meta type=\"tag\">x</meta></head>");
  absl::StatusOr<Nzb> nzb = ParseNzb(xml);
  ASSERT_TRUE(nzb.ok()) << nzb.status();
  EXPECT_EQ(nzb->meta.name, "Movie 2020");
  EXPECT_EQ(nzb->meta.password, "s3cret");
  EXPECT_EQ(nzb->meta.category, "movies");
  EXPECT_EQ(nzb->meta.all.size(), 4u);
  ASSERT_EQ(nzb->files.size(), 2u);
  const NzbFile& f = nzb->files[0];
  EXPECT_EQ(f.filename_from_subject, "Movie.2020.mkv");
  EXPECT_EQ(f.total_parts_from_subject, 3);
  EXPECT_EQ(f.poster, "poster@example.com (Poster)");
  EXPECT_EQ(f.date, absl::FromUnixSeconds(1700000000));
  EXPECT_THAT(f.groups, ElementsAre("alt.binaries.test"));
  ASSERT_EQ(f.segments.size(), 3u);
  EXPECT_EQ(f.segments[0].number, 1);
  EXPECT_EQ(f.segments[0].message_id, "a@x");  // Angle brackets stripped.
  EXPECT_EQ(f.segments[1].message_id, "b@x");
  EXPECT_EQ(f.segments[2].bytes, 1000);
  EXPECT_EQ(f.total_bytes, 739811 * 2 + 1000);
  EXPECT_EQ(f.missing_segment_count, 0);
  EXPECT_EQ(nzb->total_segments, 4);
  EXPECT_TRUE(nzb->warnings.empty());
}

TEST(NzbParser, RejectsBillionLaughsQuicklyBeforeParsing) {
  std::string dtd = "<!DOCTYPE nzb [\n<!ENTITY lol \"lol\">\n";
  for (int i = 1; i <= 9; ++i) {
    absl::StrAppend(&dtd, "<!ENTITY lol", i, " \"");
    for (int k = 0; k < 10; ++k) absl::StrAppend(&dtd, i == 1 ? "&lol;" : absl::StrCat("&lol", i - 1, ";"));
    absl::StrAppend(&dtd, "\">\n");
  }
  dtd += "]>\n";
  const std::string xml = absl::StrCat("<?xml version=\"1.0\"?>\n", dtd,
                                       "<nzb><file subject=\"&lol9;\"><segments>",
                                       Segment(1, "a@x"), "</segments></file></nzb>");
  const absl::Time start = absl::Now();
  absl::StatusOr<Nzb> nzb = ParseNzb(xml);
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(nzb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(nzb.status().message(), "NZB contains a DOCTYPE; DTDs and entities are not allowed");
}

TEST(NzbParser, RejectsExternalEntity) {
  const std::string xml =
      "<?xml version=\"1.0\"?><!DOCTYPE nzb [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>"
      "<nzb><file subject=\"&xxe;\"><segments>" + Segment(1, "a@x") + "</segments></file></nzb>";
  absl::StatusOr<Nzb> nzb = ParseNzb(xml);
  EXPECT_EQ(nzb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(nzb.status().message(), HasSubstr("DOCTYPE"));
}

TEST(NzbParser, RejectsDoctypeHiddenBehindBomCommentsAndCase) {
  for (const std::string& prolog :
       {std::string("\xEF\xBB\xBF<!DOCTYPE nzb>"), std::string("<!-- hi --> <?pi x?>\n<!doctype nzb>"),
        std::string("<?xml version=\"1.0\"?><!-- a --><!DocType nzb SYSTEM \"http://evil/x.dtd\">")}) {
    absl::StatusOr<Nzb> nzb = ParseNzb(prolog + NzbXml(File("x", Segment(1, "a@x"))).substr(38));
    EXPECT_EQ(nzb.status().code(), absl::StatusCode::kInvalidArgument) << prolog;
    EXPECT_THAT(nzb.status().message(), HasSubstr("DOCTYPE")) << prolog;
  }
  // An ENTITY declaration anywhere is refused too.
  absl::StatusOr<Nzb> nzb = ParseNzb(NzbXml(File("x", Segment(1, "a@x")) + "<!ENTITY x \"y\">"));
  EXPECT_EQ(nzb.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NzbParser, RejectsNzbLargerThanByteCap) {
  NzbParseOptions options;
  options.max_nzb_bytes = 1000;
  std::string segments;
  for (int i = 1; i <= 50; ++i) segments += Segment(i, absl::StrCat("part", i, "@x"));
  absl::StatusOr<Nzb> nzb = ParseNzb(NzbXml(File("big", segments)), options);
  EXPECT_EQ(nzb.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(nzb.status().message(), HasSubstr("max_nzb_bytes"));
}

TEST(NzbParser, RejectsSegmentClaimingTwoGigabytes) {
  absl::StatusOr<Nzb> nzb = ParseNzb(NzbXml(File("huge", Segment(1, "a@x", 2147483648LL))));
  EXPECT_EQ(nzb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(nzb.status().message(), HasSubstr("claims 2147483648 bytes"));
}

TEST(NzbParser, EnforcesFileAndSegmentCountCaps) {
  NzbParseOptions options;
  options.max_files = 1;
  absl::StatusOr<Nzb> nzb =
      ParseNzb(NzbXml(File("a", Segment(1, "a@x")) + File("b", Segment(1, "b@x"))), options);
  EXPECT_EQ(nzb.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(nzb.status().message(), HasSubstr("max_files"));

  options = {};
  options.max_segments_per_file = 2;
  nzb = ParseNzb(NzbXml(File("a", Segment(1, "a@x") + Segment(2, "b@x") + Segment(3, "c@x"))), options);
  EXPECT_EQ(nzb.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(nzb.status().message(), HasSubstr("max_segments_per_file"));

  options = {};
  options.max_total_segments = 2;
  nzb = ParseNzb(NzbXml(File("a", Segment(1, "a@x") + Segment(2, "b@x")) + File("b", Segment(1, "c@x"))),
                 options);
  EXPECT_EQ(nzb.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(nzb.status().message(), HasSubstr("max_total_segments"));
}

TEST(NzbParser, PathTraversalInSubjectIsSanitisedNotTrusted) {
  absl::StatusOr<Nzb> nzb = ParseNzb(NzbXml(File("&quot;../../etc/passwd&quot; yEnc (1/1)", Segment(1, "a@x"))));
  ASSERT_TRUE(nzb.ok()) << nzb.status();
  ASSERT_TRUE(nzb->files[0].filename_from_subject.has_value());
  const std::string safe = SanitizeFilename(*nzb->files[0].filename_from_subject);
  EXPECT_THAT(safe, Not(HasSubstr("/")));
  EXPECT_NE(safe[0], '.');
  EXPECT_EQ(SanitizePath(*nzb->files[0].filename_from_subject), "etc/passwd");
}

TEST(NzbParser, KeepsFirstOfDuplicateSegmentNumbersAndWarns) {
  absl::StatusOr<Nzb> nzb =
      ParseNzb(NzbXml(File("x (1/2)", Segment(1, "first@x") + Segment(1, "second@x") + Segment(2, "b@x"))));
  ASSERT_TRUE(nzb.ok()) << nzb.status();
  const NzbFile& f = nzb->files[0];
  ASSERT_EQ(f.segments.size(), 2u);
  EXPECT_EQ(f.segments[0].message_id, "first@x");
  EXPECT_EQ(f.duplicate_segment_count, 1);
  ASSERT_EQ(nzb->warnings.size(), 1u);
  EXPECT_THAT(nzb->warnings[0], HasSubstr("1 duplicate segment numbers dropped"));
}

TEST(NzbParser, ReportsGapsIncludingMissingTailFromSubjectTotal) {
  absl::StatusOr<Nzb> nzb = ParseNzb(
      NzbXml(File("&quot;a.mkv&quot; yEnc (1/6)", Segment(1, "a@x") + Segment(2, "b@x") + Segment(4, "d@x"))));
  ASSERT_TRUE(nzb.ok()) << nzb.status();
  EXPECT_THAT(nzb->files[0].missing_segments, ElementsAre(3, 5, 6));
  EXPECT_EQ(nzb->files[0].missing_segment_count, 3);
  EXPECT_THAT(nzb->warnings[0], HasSubstr("3 segments missing"));
}

TEST(NzbParser, RejectsNonPositiveOrGarbageSegmentNumbers) {
  for (const char* number : {"-1", "0", "abc", "", "99999999999"}) {
    const std::string xml = NzbXml(absl::StrCat("<file subject=\"x\"><segments><segment bytes=\"1\" number=\"",
                                             number, "\">a@x</segment></segments></file>"));
    absl::StatusOr<Nzb> nzb = ParseNzb(xml);
    EXPECT_EQ(nzb.status().code(), absl::StatusCode::kInvalidArgument) << number;
    EXPECT_THAT(nzb.status().message(), HasSubstr("is not a positive integer")) << number;
  }
  absl::StatusOr<Nzb> nzb = ParseNzb(NzbXml(File("x", Segment(1, "a@x", -5))));
  EXPECT_EQ(nzb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(nzb.status().message(), HasSubstr("not a non-negative integer"));
}

TEST(NzbParser, RejectsMessageIdsThatWouldBreakNntpCommands) {
  for (const std::string& id :
       {std::string("has space@x"), std::string("a&lt;b&gt;c@x"), std::string("noatsign"),
        std::string("ctrl&#x1;@x"), std::string("crlf\r\nQUIT@x"), std::string(300, 'a') + "@x",
        std::string("@x"), std::string("x@"), std::string(""), std::string("caf\xC3\xA9@x")}) {
    absl::StatusOr<Nzb> nzb = ParseNzb(NzbXml(File("x", Segment(1, id))));
    EXPECT_EQ(nzb.status().code(), absl::StatusCode::kInvalidArgument) << id;
    EXPECT_THAT(nzb.status().message(), HasSubstr("invalid message-id")) << id;
  }
}

TEST(NzbParser, AcceptsRealWorldMessageIdShapes) {
  for (const char* id : {"part1of50.AbC$dEf%gHi@news.example.com", "&lt;1a2b3c4d5e@reader.net&gt;",
                         "  padded@x  ", "Qw3rTy-_.!~*'#@ngPost", "a@b@c"}) {
    absl::StatusOr<Nzb> nzb = ParseNzb(NzbXml(File("x", Segment(1, id))));
    EXPECT_TRUE(nzb.ok()) << id << ": " << nzb.status();
  }
  EXPECT_TRUE(IsValidMessageId("<abc@def>"));
  EXPECT_EQ(NormalizeMessageId(" <abc@def> "), "abc@def");
}

TEST(NzbParser, RejectsNonNzbInput) {
  absl::StatusOr<Nzb> nzb = ParseNzb("this is not xml <");
  EXPECT_EQ(nzb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(nzb.status().message(), HasSubstr("not well-formed XML"));
  nzb = ParseNzb("<rss><file/></rss>");
  EXPECT_EQ(nzb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(nzb.status().message(), HasSubstr("root element is not <nzb>"));
  nzb = ParseNzb(NzbXml("<file subject=\"empty\"><segments/></file>"));
  EXPECT_EQ(nzb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(nzb.status().message(), HasSubstr("no files with segments"));
}

TEST(NzbParser, SkipsEmptyFilesWithWarning) {
  absl::StatusOr<Nzb> nzb =
      ParseNzb(NzbXml("<file subject=\"empty\"><segments/></file>" + File("ok", Segment(1, "a@x"))));
  ASSERT_TRUE(nzb.ok());
  EXPECT_EQ(nzb->files.size(), 1u);
  EXPECT_THAT(nzb->warnings, ElementsAre(HasSubstr("has no segments; skipped")));
}

}  // namespace
}  // namespace nzbmesh::importer

namespace nzbmesh::importer {
namespace {

TEST(NzbParserDoctype, TheStandardExternalDoctypeIsAcceptedButNothingElse) {
  const std::string body =
      "<nzb xmlns=\"http://www.newzbin.com/DTD/2003/nzb\"><file poster=\"p\" date=\"1\" "
      "subject=\"&quot;a.mkv&quot; yEnc (1/1)\"><groups><group>alt.binaries.x</group></groups>"
      "<segments><segment bytes=\"10\" number=\"1\">a@b</segment></segments></file></nzb>";
  const std::string standard =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE nzb PUBLIC \"-//newzBin//DTD NZB 1.1//EN\" "
      "\"http://www.newzbin.com/DTD/nzb/nzb-1.1.dtd\">\n" + body;
  auto ok = ParseNzb(standard, NzbParseOptions{});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->files.size(), 1u);
  const std::string subset = "<?xml version=\"1.0\"?><!DOCTYPE nzb [<!ENTITY a \"b\">]>" + body;
  EXPECT_EQ(ParseNzb(subset, NzbParseOptions{}).status().code(), absl::StatusCode::kInvalidArgument);
  const std::string twice = "<!DOCTYPE nzb PUBLIC \"x\" \"y\"><!DOCTYPE nzb PUBLIC \"x\" \"y\">" + body;
  EXPECT_EQ(ParseNzb(twice, NzbParseOptions{}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nzbmesh::importer
