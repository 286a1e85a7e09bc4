// Graceful stop of the import workers (WorkerPool::Stop, SIGTERM of an
// importer process) while a job is blocked in a broker call: the call is
// cancelled at once instead of running to its 60 s call_timeout, the job goes
// back to the queue with its attempt uncounted and nothing in the catalog,
// the import lease is released, and another importer then finishes the job
// byte-exact. Real broker, fake news server (a gate holds its replies), real
// PostgreSQL. Every wait is a condition with a deadline; the elapsed-time
// checks are bounds far below what the blocked call would take (60 s: the
// importer's call timeout, and the broker here waits as long), not speeds.
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/services/importer/importer_fixture.h"

namespace nzbmesh::importer::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class GracefulStopTest : public ImporterFixture {
 protected:
  // The broker waits as long as the importer's call_timeout for a held
  // reply (by default it gives up after a few seconds and retries), so a
  // stop that waited for the blocked call would take about 60 s.
  void TuneBroker(broker::PoolOptions& o) override {
    o.attempt_timeout_min = absl::Seconds(60);
    o.attempt_timeout_max = absl::Seconds(60);
    for (auto& p : o.providers) p.connection.first_byte_timeout = absl::Seconds(60);
  }

  // Three small multi-part files; the job's first file is files[0].
  std::vector<FakeNntpServer::PostedFile> PostRelease(const std::string& tag) {
    std::vector<FakeNntpServer::PostedFile> files;
    for (int i = 0; i < 3; ++i) {
      files.push_back(Post(absl::StrCat(tag, i, ".mkv"), 3000, 1000, absl::StrCat(tag, "-", i)));
    }
    return files;
  }

  // Brings the job to its fetch of article `id` (a file's first segment)
  // and leaves it blocked there: the STAT sample's check of `id` is let
  // through the gate, then the fetch itself is held. True once a fetch
  // command for `id` is waiting at the gate.
  bool HoldFetchAt(FakeNntpServer::Gate* gate, const std::string& id) {
    if (!WaitUntil([&] { return gate->waiting() > 0; }, absl::Seconds(60))) return false;  // the STAT
    gate->Release(1);
    return WaitUntil(
        [&] {
          if (gate->waiting() == 0) return false;
          for (const auto& c : nntp_->command_log()) {
            if (c.message_id == id && c.command != "STAT") return true;
          }
          return false;
        },
        absl::Seconds(60));
  }

  JobRecord Job(int64_t id) {
    auto j = store_->GetJob(id);
    EXPECT_TRUE(j.ok()) << j.status();
    return j.ok() ? *j : JobRecord{};
  }

  // The job completed once, every file reads back byte-exact, and the
  // catalog holds that one release.
  void ExpectImportedExactlyOnce(const std::string& release, const std::vector<FakeNntpServer::PostedFile>& files,
                                 const std::string& tag) {
    auto releases = store_->ListDirectory("/tv");
    ASSERT_TRUE(releases.ok()) << releases.status();
    ASSERT_EQ(releases->size(), 1u);
    EXPECT_EQ((*releases)[0].path, "/tv/" + release);
    for (size_t i = 0; i < files.size(); ++i) {
      auto layout = store_->GetFileLayout(absl::StrCat("/tv/", release, "/", files[i].name));
      ASSERT_TRUE(layout.ok()) << layout.status();
      EXPECT_EQ(Sha256(ReadThroughBroker(*layout)), Sha256(contents_[absl::StrCat(tag, "-", i)])) << files[i].name;
    }
  }
};

// (a) In process: Stop() while the only worker is blocked in the fetch of a
// first segment returns within the bound, the job is QUEUED with its
// attempts as before the claim and nothing written, the lease is free; a
// second importer instance then completes the job.
TEST_F(GracefulStopTest, StopDuringAFirstSegmentFetchRequeuesTheJobUncounted) {
  auto files = PostRelease("gs");
  const std::string held_id = files[0].segments[0].message_id;
  FakeNntpServer::Gate* gate = nntp_->AddGate(held_id);
  PipelineOptions p;
  p.fetch_concurrency = 1;
  p.call_timeout = absl::Seconds(60);
  ImporterInstance* a = StartInstance(FastWorkers("stopper", 1), p);
  SubmitResult r = Submit(MakeNzb(files), "Stopped.nzb");
  ASSERT_TRUE(HoldFetchAt(gate, held_id));
  const JobRecord running = Job(r.job_id);
  ASSERT_EQ(running.state, JobState::kRunning);
  ASSERT_EQ(running.attempts, 1);
  ASSERT_TRUE(absl::StartsWith(running.owner, "stopper")) << running.owner;

  const absl::Time start = absl::Now();
  a->workers->Stop();
  const absl::Duration took = absl::Now() - start;
  EXPECT_LT(took, absl::Seconds(5)) << "Stop() took " << took;
  RecordProperty("stop_ms", absl::StrCat(absl::ToInt64Milliseconds(took)));  // in test.xml, for the record

  // Given back by the worker itself (an expired claim would have kept the
  // attempt and said "stopped heartbeating").
  const JobRecord after = Job(r.job_id);
  EXPECT_EQ(after.state, JobState::kQueued);
  EXPECT_EQ(after.attempts, 0);
  EXPECT_EQ(after.owner, "");
  EXPECT_EQ(after.reason, FailureReason::kNone);
  EXPECT_THAT(after.message, HasSubstr("stopped during the job"));
  EXPECT_EQ(a->workers->attempts_finished(), 1);
  EXPECT_TRUE(store_->ListDirectory("/")->empty()) << "partial catalog rows";
  EXPECT_THAT(a->registry->Serialize(), HasSubstr("result=\"requeued\""));
  EXPECT_THAT(a->registry->Serialize(), Not(HasSubstr("result=\"retry\"")));
  EXPECT_TRUE(WaitUntil([&] { return pool_->GetUsage().leases_held == 0; })) << "the import lease was kept";

  gate->ReleaseAll();
  StartInstance(FastWorkers("finisher", 1), p);
  const JobRecord done = WaitFinished(r.job_id);
  ASSERT_EQ(done.state, JobState::kCompleted) << done.message;
  EXPECT_EQ(done.attempts, 1);  // the interrupted attempt did not count
  EXPECT_TRUE(absl::StartsWith(done.owner, "finisher")) << done.owner;
  ExpectImportedExactlyOnce("Stopped", files, "gs");
}

// The same during the STAT sample (the job's first broker call): held at
// the gate, cancelled by Stop(), the job requeued uncounted.
TEST_F(GracefulStopTest, StopDuringTheStatSampleRequeuesTheJobUncounted) {
  auto files = PostRelease("ss");
  FakeNntpServer::Gate* gate = nntp_->AddGate("");  // every article command
  ImporterInstance* a = StartInstance(FastWorkers("sampler", 1));
  SubmitResult r = Submit(MakeNzb(files), "Sampled.nzb");
  ASSERT_TRUE(WaitUntil([&] { return gate->waiting() > 0; }, absl::Seconds(60)));
  for (const auto& c : nntp_->command_log()) {
    if (!c.message_id.empty()) {
      ASSERT_EQ(c.command, "STAT") << "the job went past its STAT sample";
    }
  }
  ASSERT_EQ(Job(r.job_id).state, JobState::kRunning);

  const absl::Time start = absl::Now();
  a->workers->Stop();
  const absl::Duration took = absl::Now() - start;
  EXPECT_LT(took, absl::Seconds(5)) << "Stop() took " << took;
  RecordProperty("stop_ms", absl::StrCat(absl::ToInt64Milliseconds(took)));
  const JobRecord after = Job(r.job_id);
  EXPECT_EQ(after.state, JobState::kQueued);
  EXPECT_EQ(after.attempts, 0);
  EXPECT_THAT(after.message, HasSubstr("stopped during the job"));
  EXPECT_TRUE(store_->ListDirectory("/")->empty());
  EXPECT_TRUE(WaitUntil([&] { return pool_->GetUsage().leases_held == 0; })) << "the import lease was kept";
  gate->ReleaseAll();
}

// Stop() while the workers wait for an import lease the broker cannot grant
// (every lease is held elsewhere) ends the waits at once; nothing is claimed.
TEST_F(GracefulStopTest, StopDuringImportLeaseWaitsReturnsPromptly) {
  auto files = PostRelease("lw");
  auto holder = NewBrokerClient();
  std::vector<std::unique_ptr<ImportLease>> held;
  for (int i = 0; i < 16; ++i) {  // the fixture's broker grants 16 import leases
    auto lease = holder->AcquireImportLease(absl::StrCat("holder-", i), nullptr);
    ASSERT_TRUE(lease.ok()) << lease.status();
    held.push_back(std::move(*lease));
  }
  SubmitResult r = Submit(MakeNzb(files), "Waiting.nzb");
  ImporterInstance* a = StartInstance(FastWorkers("waiter", 2));
  ASSERT_TRUE(WaitUntil([&] { return pool_->GetUsage().leases_waiting == 2; }, absl::Seconds(60)));

  const absl::Time start = absl::Now();
  a->workers->Stop();
  const absl::Duration took = absl::Now() - start;
  EXPECT_LT(took, absl::Seconds(5)) << "Stop() took " << took;
  RecordProperty("stop_ms", absl::StrCat(absl::ToInt64Milliseconds(took)));  // in test.xml, for the record
  EXPECT_TRUE(WaitUntil([&] { return pool_->GetUsage().leases_waiting == 0; })) << "a lease request was left waiting";
  EXPECT_EQ(pool_->GetUsage().leases_held, 16);
  const JobRecord j = Job(r.job_id);
  EXPECT_EQ(j.state, JobState::kQueued);
  EXPECT_EQ(j.attempts, 0);
  EXPECT_EQ(a->workers->attempts_finished(), 0);
  held.clear();
}

// (b) A real importer process SIGTERMed while its job is blocked in a first
// segment fetch exits 0 within the bound and leaves the job QUEUED,
// uncounted, with no catalog rows and no lease; a second importer process
// finishes it exactly once (M2's guarantee, without waiting for a claim to
// expire).
TEST_F(GracefulStopTest, SigtermedImporterProcessRequeuesItsJobForAnother) {
  auto files = PostRelease("pt");
  const std::string held_id = files[0].segments[0].message_id;
  FakeNntpServer::Gate* gate = nntp_->AddGate(held_id);
  ImporterProcess* victim = StartProcess("victim", 1, /*fan_out=*/1);
  SubmitResult r = Submit(MakeNzb(files), "Terminated.nzb");
  ASSERT_TRUE(HoldFetchAt(gate, held_id)) << victim->Log();
  const JobRecord running = Job(r.job_id);
  ASSERT_EQ(running.state, JobState::kRunning);
  ASSERT_TRUE(absl::StartsWith(running.owner, "victim")) << running.owner;

  const absl::Time start = absl::Now();
  const int status = victim->TerminateAndWait();
  const absl::Duration took = absl::Now() - start;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status << "\n" << victim->Log();
  EXPECT_LT(took, absl::Seconds(8)) << "exit took " << took << "\n" << victim->Log();
  RecordProperty("exit_ms", absl::StrCat(absl::ToInt64Milliseconds(took)));

  const JobRecord after = Job(r.job_id);
  EXPECT_EQ(after.state, JobState::kQueued) << after.message;
  EXPECT_EQ(after.attempts, 0);
  EXPECT_THAT(after.message, HasSubstr("stopped during the job"));
  EXPECT_TRUE(store_->ListDirectory("/")->empty()) << "partial catalog rows";
  EXPECT_TRUE(WaitUntil([&] { return pool_->GetUsage().leases_held == 0; })) << "the import lease was kept";
  const std::string log = victim->Log();
  EXPECT_THAT(log, HasSubstr("job requeued on stop"));
  EXPECT_THAT(log, Not(HasSubstr("level=error"))) << log;

  gate->ReleaseAll();
  StartProcess("rescuer", 1, 4);
  const JobRecord done = WaitFinished(r.job_id);
  ASSERT_EQ(done.state, JobState::kCompleted) << done.message;
  EXPECT_EQ(done.attempts, 1);
  EXPECT_TRUE(absl::StartsWith(done.owner, "rescuer")) << done.owner;
  ExpectImportedExactlyOnce("Terminated", files, "pt");
}

}  // namespace
}  // namespace nzbmesh::importer::testing
