// ReadClassifier: short scattered reads are PROBE; long, open-ended and
// sequentially continued reads are STREAM. Time is passed in, no sleeps.
#include "services/frontend/read_classifier.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace nzbmesh::frontend {
namespace {

constexpr TrafficClass kProbe = TrafficClass::kProbe;
constexpr TrafficClass kStream = TrafficClass::kStream;
const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

ReadClassifier::Options Opts(int64_t probe_max = 1000, absl::Duration window = absl::Seconds(30), size_t tracked = 64) {
  ReadClassifier::Options o;
  o.probe_max_bytes = probe_max;
  o.sequential_window = window;
  o.max_tracked = tracked;
  return o;
}

TEST(ReadClassifierTest, ShortBoundedReadIsProbeLongOrOpenEndedIsStream) {
  ReadClassifier c(Opts());
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 0, 1000, true, kT0), kProbe);        // exactly the threshold
  EXPECT_EQ(c.Classify("10.0.0.1", "/b.mkv", 0, 1001, true, kT0), kStream);       // one byte over
  EXPECT_EQ(c.Classify("10.0.0.1", "/c.mkv", 500, 600, false, kT0), kStream);     // open-ended
}

TEST(ReadClassifierTest, ZeroThresholdMakesEveryReadStream) {
  ReadClassifier c(Opts(0));
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 0, 10, true, kT0), kStream);
}

TEST(ReadClassifierTest, ShortReadStartingWhereTheLastEndedIsPromotedToStream) {
  ReadClassifier c(Opts());
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 0, 500, true, kT0), kProbe);
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 500, 1000, true, kT0 + absl::Seconds(1)), kStream);
  // The chain keeps going: each piece continues the one before.
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 1000, 1500, true, kT0 + absl::Seconds(2)), kStream);
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 1500, 2000, true, kT0 + absl::Seconds(3)), kStream);
}

TEST(ReadClassifierTest, ScatteredShortReadsStayProbe) {
  ReadClassifier c(Opts());
  // A scanner: header, tail, a gap, overlapping re-read; none starts at an end.
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 0, 100, true, kT0), kProbe);
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 90000, 90500, true, kT0), kProbe);
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 101, 200, true, kT0), kProbe);   // one byte gap
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 50, 150, true, kT0), kProbe);    // overlaps
}

TEST(ReadClassifierTest, ContinuationNeedsTheSameClientAndTheSameFile) {
  ReadClassifier c(Opts());
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 0, 500, true, kT0), kProbe);
  EXPECT_EQ(c.Classify("10.0.0.2", "/a.mkv", 500, 1000, true, kT0), kProbe);
  EXPECT_EQ(c.Classify("10.0.0.1", "/b.mkv", 500, 1000, true, kT0), kProbe);
  // A key that is a prefix of another must not collide.
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv/x", 500, 1000, true, kT0), kProbe);
}

TEST(ReadClassifierTest, ContinuationExpiresAfterTheWindow) {
  ReadClassifier c(Opts(1000, absl::Seconds(30)));
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 0, 500, true, kT0), kProbe);
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 500, 600, true, kT0 + absl::Seconds(30)), kStream);  // at the edge
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 600, 700, true, kT0 + absl::Seconds(61)), kProbe);   // 31 s later
}

TEST(ReadClassifierTest, ALongReadEndCountsForTheNextShortRead) {
  ReadClassifier c(Opts());
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 0, 50000, true, kT0), kStream);
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 50000, 50100, true, kT0), kStream);
}

TEST(ReadClassifierTest, WhereAReadReallyStoppedIsAnEndToo) {
  ReadClassifier c(Opts());
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 0, 100000, false, kT0), kStream);
  c.Ended("10.0.0.1", "/a.mkv", 4096, kT0 + absl::Seconds(1));  // the client went away at 4096
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 4096, 5000, true, kT0 + absl::Seconds(2)), kStream);
}

TEST(ReadClassifierTest, SeveralRecentEndsPerFileAreRemembered) {
  ReadClassifier c(Opts());
  // Two connections of one player interleave on one file.
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 0, 500, true, kT0), kProbe);
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 70000, 70500, true, kT0), kProbe);
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 500, 1000, true, kT0), kStream);
  EXPECT_EQ(c.Classify("10.0.0.1", "/a.mkv", 70500, 71000, true, kT0), kStream);
}

TEST(ReadClassifierTest, TableIsBoundedAndDropsTheLeastRecentlyUsed) {
  ReadClassifier c(Opts(1000, absl::Seconds(30), /*tracked=*/3));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(c.Classify("10.0.0.1", absl::StrCat("/f", i), 0, 100, true, kT0 + absl::Seconds(i)), kProbe);
  }
  EXPECT_EQ(c.tracked(), 3u);
  // A fourth file evicts /f0 (least recently used); /f1's end is still known.
  EXPECT_EQ(c.Classify("10.0.0.1", "/f3", 0, 100, true, kT0 + absl::Seconds(3)), kProbe);
  EXPECT_EQ(c.tracked(), 3u);
  EXPECT_EQ(c.Classify("10.0.0.1", "/f1", 100, 200, true, kT0 + absl::Seconds(4)), kStream);
  EXPECT_EQ(c.Classify("10.0.0.1", "/f0", 100, 200, true, kT0 + absl::Seconds(5)), kProbe);
  EXPECT_EQ(c.tracked(), 3u);
  // Expired entries go first: long after, three new files fit without LRU scans.
  for (int i = 10; i < 13; ++i) {
    c.Classify("10.0.0.9", absl::StrCat("/g", i), 0, 100, true, kT0 + absl::Minutes(5));
  }
  EXPECT_EQ(c.tracked(), 3u);
}

}  // namespace
}  // namespace nzbmesh::frontend
