// Import of a 70,000-segment NZB end to end (manual; prints numbers):
// wall time from submit to COMPLETED, the time of the catalog transaction
// alone, and the commands the news server received (STAT sample + first
// segment). Articles are small (100 bytes) so posting them stays cheap; the
// importer's work does not depend on article size except the first fetch.
//
//   bazel test //tests/services/importer:import_benchmark_test --test_output=all
//       --test_env=NZBMESH_PG_URL=...
#include <iostream>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/services/importer/importer_fixture.h"

namespace nzbmesh::importer::testing {
namespace {

TEST_F(ImporterFixture, Import70kSegmentNzb) {
  constexpr int kSegments = 70000;
  auto f = Post("Huge.Release.mkv", kSegments * 100, 100, "huge");
  ASSERT_EQ(f.segments.size(), static_cast<size_t>(kSegments));
  const std::string nzb = MakeNzb({f});
  StartInstance(FastWorkers("bench", 1));
  nntp_->ResetCounters();
  const absl::Time start = absl::Now();
  SubmitResult r = Submit(nzb, "Huge.nzb");
  JobRecord j = WaitFinished(r.job_id, absl::Minutes(5));
  const absl::Duration total = absl::Now() - start;
  ASSERT_EQ(j.state, JobState::kCompleted) << j.message;
  const int64_t commands = nntp_->total_commands();

  // The catalog write alone: the same plan through CompleteJob.
  ReleasePlan plan;
  plan.category = "bench";
  plan.release = "copy";
  FilePlan fp;
  fp.name = "Huge.Release.mkv";
  auto layout = store_->GetFileLayout("/tv/Huge/Huge.Release.mkv");
  ASSERT_TRUE(layout.ok()) << layout.status();
  for (const auto& s : layout->segments) fp.segments.push_back({s.message_id, s.size});
  fp.size = layout->entry.size;
  plan.files.push_back(fp);
  SubmitRecord rec;
  rec.nzb = "x";
  rec.sha256_hex = "x";
  rec.category = "bench";
  rec.name = "copy";
  ASSERT_TRUE(store_->Submit(rec).ok());
  auto c = store_->ClaimJob("bench-db", absl::Hours(1));
  ASSERT_TRUE(c.ok() && c->has_value());
  const absl::Time db_start = absl::Now();
  ASSERT_TRUE(store_->CompleteJob((*c)->job.id, "bench-db", (*c)->job.attempts, plan).ok());
  const absl::Duration db = absl::Now() - db_start;

  std::cout << "import of a " << kSegments << "-segment NZB (" << nzb.size() << " bytes): total "
            << absl::FormatDuration(total) << ", catalog transaction " << absl::FormatDuration(db)
            << ", news-server commands " << commands << "\n";
  RecordProperty("total_ms", static_cast<int>(absl::ToInt64Milliseconds(total)));
  RecordProperty("db_ms", static_cast<int>(absl::ToInt64Milliseconds(db)));
  RecordProperty("nntp_commands", static_cast<int>(commands));
  EXPECT_LE(commands, 20);  // STAT sample + first segment: never proportional to the NZB
}

}  // namespace
}  // namespace nzbmesh::importer::testing
