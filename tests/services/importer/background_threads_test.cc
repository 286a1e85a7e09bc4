// The importer's background threads as they run in production: the health
// sweep thread (HealthSweeper::Start) against a real broker and the fake
// news server, the watch-folder polling thread (WatchFolder::Start) against
// a real folder and a real PostgreSQL queue, and their shutdown (also of a
// whole importer process on SIGTERM). Short intervals; every wait is a
// condition with a deadline.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/importer/health.h"
#include "services/importer/watch_folder.h"
#include "tests/services/importer/importer_fixture.h"

namespace nzbmesh::importer::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string ReadText(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Writes `data` to `path` in one step (write elsewhere, rename in).
void DropFile(const fs::path& path, const std::string& data) {
  fs::path tmp = path;
  tmp += ".tmp-writing";
  std::ofstream(tmp, std::ios::binary) << data;
  fs::rename(tmp, path);
}

// Sum of nzbmesh_broker_commands_total samples with these class and result
// labels (the exposition text of the test broker's registry).
double BrokerCommands(const std::string& exposition, const std::string& cls, const std::string& result) {
  double sum = 0;
  const std::string want_cls = absl::StrCat("class=\"", cls, "\"");
  const std::string want_res = absl::StrCat("result=\"", result, "\"");
  std::istringstream in(exposition);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("nzbmesh_broker_commands_total{", 0) != 0) continue;
    if (line.find(want_cls) == std::string::npos || line.find(want_res) == std::string::npos) continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

class BackgroundThreadsTest : public ImporterFixture {
 protected:
  // Imports `files` as one release and waits for it.
  void Import(const std::vector<FakeNntpServer::PostedFile>& files, const std::string& filename) {
    ImporterInstance* in = StartInstance(FastWorkers("bg"));
    SubmitResult r = Submit(MakeNzb(files), filename);
    JobRecord j = WaitFinished(r.job_id);
    ASSERT_EQ(j.state, JobState::kCompleted) << j.message;
    in->workers->Stop();
  }

  Health HealthOf(const std::string& path) {
    auto e = store_->Stat(path);
    return e.ok() ? e->health : Health::kUnknown;
  }

  std::string WatchDir(const std::string& name) {
    const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name);
    fs::create_directories(dir + "/tv");
    return dir;
  }

  std::vector<JobRecord> Jobs() {
    auto jobs = store_->ListJobs(std::nullopt, 0);
    EXPECT_TRUE(jobs.ok()) << jobs.status();
    return jobs.ok() ? *jobs : std::vector<JobRecord>{};
  }
};

// The sweep thread re-checks files every interval through the broker's
// HEALTH class: a file turns BROKEN when one of its articles disappears from
// the news server and HEALTHY again once it is back.
TEST_F(BackgroundThreadsTest, HealthSweepThreadMarksAFileBrokenThenHealthyAgain) {
  auto f = Post("show.mkv", 6000, 1000, "hs");
  auto other = Post("other.mkv", 3000, 1000, "ho");
  ASSERT_NO_FATAL_FAILURE(Import({f, other}, "Swept.nzb"));
  const std::string path = "/tv/Swept/show.mkv";
  HealthOptions o;
  o.enabled = true;
  o.interval = absl::Milliseconds(200);
  o.sample = 100;  // every article of these small files
  metrics::Registry reg;
  ImporterMetrics m(reg);
  auto client = NewBrokerClient();
  HealthSweeper sweeper(store_.get(), client.get(), o, &m);
  sweeper.Start();
  ASSERT_TRUE(WaitUntil([&] { return HealthOf(path) == Health::kHealthy; }, absl::Seconds(60)));
  EXPECT_EQ(BrokerCommands(broker_registry_.Serialize(), "health", "missing"), 0);

  FakeNntpServer::Fault gone;
  gone.missing = true;
  nntp_->SetFault(f.segments[3].message_id, gone);
  ASSERT_TRUE(WaitUntil([&] { return HealthOf(path) == Health::kBroken; }, absl::Seconds(60)))
      << "health " << HealthName(HealthOf(path));
  // The news server saw HEALTH-class STATs answered 430, and the other file
  // stayed healthy.
  EXPECT_GE(BrokerCommands(broker_registry_.Serialize(), "health", "missing"), 1);
  EXPECT_EQ(HealthOf("/tv/Swept/other.mkv"), Health::kHealthy);

  nntp_->ClearFaults();
  ASSERT_TRUE(WaitUntil([&] { return HealthOf(path) == Health::kHealthy; }, absl::Seconds(60)))
      << "health " << HealthName(HealthOf(path));
  // Three verdicts came from three sweeps; the third may still be running
  // (its RecordHealth is what the wait saw), so two have finished.
  EXPECT_GE(sweeper.sweeps(), 2);
  EXPECT_THAT(reg.Serialize(), HasSubstr("nzbmesh_importer_health_checks_total{result=\"broken\"}"));
  sweeper.Stop();
}

// Stop() ends a sweep that is blocked on a STAT the news server does not
// answer (the call would otherwise run to its call_timeout) and joins.
TEST_F(BackgroundThreadsTest, HealthSweepStopCancelsTheCheckInFlight) {
  auto f = Post("held.mkv", 3000, 1000, "hh");
  ASSERT_NO_FATAL_FAILURE(Import({f}, "Held.nzb"));
  FakeNntpServer::Gate* gate = nntp_->AddGate("");
  HealthOptions o;
  o.enabled = true;
  o.interval = absl::Hours(1);
  o.call_timeout = absl::Seconds(300);
  auto client = NewBrokerClient();
  HealthSweeper sweeper(store_.get(), client.get(), o, nullptr);
  sweeper.Start();
  ASSERT_TRUE(WaitUntil([&] { return gate->waiting() > 0; }, absl::Seconds(60)));
  const absl::Time start = absl::Now();
  sweeper.Stop();
  // A bound, not a speed: far below the 300 s the call could take.
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_EQ(HealthOf("/tv/Held/held.mkv"), Health::kUnknown);  // no verdict from a cancelled check
  EXPECT_EQ(sweeper.sweeps(), 1);
  gate->ReleaseAll();
}

// A dropped NZB is picked up by the polling thread, renamed .queued, and
// imported; the sub-folder is the category.
TEST_F(BackgroundThreadsTest, WatchFolderThreadQueuesADroppedNzbAndItImports) {
  auto f = Post("e02.mkv", 4000, 1000, "wq");
  StartInstance(FastWorkers("wq"));
  const std::string dir = WatchDir("watch-queue");
  WatchFolderOptions o;
  o.dir = dir;
  o.interval = absl::Milliseconds(20);
  WatchFolder w(instances_[0]->queue.get(), o);
  w.Start();
  DropFile(dir + "/tv/Show.E02.nzb", MakeNzb({f}));
  ASSERT_TRUE(WaitUntil([&] { return fs::exists(dir + "/tv/Show.E02.nzb.queued"); }, absl::Seconds(60)));
  EXPECT_FALSE(fs::exists(dir + "/tv/Show.E02.nzb"));
  std::vector<JobRecord> jobs = Jobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].name, "Show.E02");
  EXPECT_EQ(jobs[0].category, "tv");
  EXPECT_EQ(jobs[0].filename, "Show.E02.nzb");
  JobRecord j = WaitFinished(jobs[0].id);
  ASSERT_EQ(j.state, JobState::kCompleted) << j.message;
  auto layout = store_->GetFileLayout("/tv/Show.E02/e02.mkv");
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(Sha256(ReadThroughBroker(*layout)), Sha256(contents_["wq"]));
  // Later scans leave the .queued file alone: one job.
  const int64_t seen = w.scans();
  ASSERT_TRUE(WaitUntil([&] { return w.scans() >= seen + 3; }));
  EXPECT_EQ(Jobs().size(), 1u);
  w.Stop();
}

// A file still being written is truncated XML: it does not parse, so the
// watcher leaves it (however many scans pass, while it is younger than
// `settle`) and takes it once the rest is written.
TEST_F(BackgroundThreadsTest, WatchFolderWaitsForAPartiallyWrittenNzb) {
  const std::string nzb = MakeNzb({Post("p.mkv", 3000, 1000, "wp")});
  const std::string dir = WatchDir("watch-partial");
  JobQueue q(store_.get(), JobQueue::Options{}, nullptr);
  WatchFolderOptions o;
  o.dir = dir;
  o.interval = absl::Milliseconds(20);
  o.settle = absl::Hours(1);
  WatchFolder w(&q, o);
  w.Start();
  const fs::path path = dir + "/tv/Partial.nzb";
  {
    std::ofstream out(path, std::ios::binary);
    out << nzb.substr(0, nzb.size() / 2);
  }
  // Two scans after this one started have seen the half-written file.
  const int64_t seen = w.scans();
  ASSERT_TRUE(WaitUntil([&] { return w.scans() >= seen + 3; }));
  EXPECT_TRUE(fs::exists(path));
  EXPECT_FALSE(fs::exists(dir + "/tv/Partial.nzb.queued"));
  EXPECT_FALSE(fs::exists(dir + "/tv/Partial.nzb.failed"));
  EXPECT_TRUE(Jobs().empty());
  {
    std::ofstream out(path, std::ios::binary | std::ios::app);
    out << nzb.substr(nzb.size() / 2);
  }
  ASSERT_TRUE(WaitUntil([&] { return fs::exists(dir + "/tv/Partial.nzb.queued"); }, absl::Seconds(60)));
  std::vector<JobRecord> jobs = Jobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].name, "Partial");
  EXPECT_EQ(jobs[0].nzb_sha256, Sha256(nzb));  // the whole file, not the half
  w.Stop();
}

// A malformed NZB that stopped changing is renamed .failed with the parser's
// reason beside it; the thread goes on with the other files and with files
// dropped later.
TEST_F(BackgroundThreadsTest, WatchFolderRejectsAMalformedNzbWithAReasonAndGoesOn) {
  const std::string dir = WatchDir("watch-bad");
  JobQueue q(store_.get(), JobQueue::Options{}, nullptr);
  WatchFolderOptions o;
  o.dir = dir;
  o.interval = absl::Milliseconds(20);
  o.settle = absl::ZeroDuration();  // reject once unchanged across two scans
  WatchFolder w(&q, o);
  w.Start();
  DropFile(dir + "/tv/Bad.nzb",
           "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">]><nzb><file subject=\"&lol;\"/></nzb>");
  DropFile(dir + "/tv/Good.nzb", MakeNzb({Post("g.mkv", 1000, 1000, "wg")}));
  ASSERT_TRUE(WaitUntil([&] { return fs::exists(dir + "/tv/Bad.nzb.failed.txt"); }, absl::Seconds(60)));
  EXPECT_TRUE(fs::exists(dir + "/tv/Bad.nzb.failed"));
  EXPECT_FALSE(fs::exists(dir + "/tv/Bad.nzb"));
  const std::string reason = ReadText(dir + "/tv/Bad.nzb.failed.txt");
  EXPECT_THAT(reason, HasSubstr("not a valid NZB"));
  EXPECT_THAT(reason, HasSubstr("DOCTYPE"));
  ASSERT_TRUE(WaitUntil([&] { return fs::exists(dir + "/tv/Good.nzb.queued"); }, absl::Seconds(60)));

  DropFile(dir + "/tv/Later.nzb", MakeNzb({Post("l.mkv", 1000, 1000, "wl")}));
  ASSERT_TRUE(WaitUntil([&] { return fs::exists(dir + "/tv/Later.nzb.queued"); }, absl::Seconds(60)));
  std::vector<std::string> names;
  for (const auto& j : Jobs()) names.push_back(j.name);
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("Good", "Later"));
  w.Stop();
}

// Stopping joins both threads promptly while they wait out long intervals.
TEST_F(BackgroundThreadsTest, StopJoinsThreadsWaitingOutLongIntervals) {
  const std::string dir = WatchDir("watch-stop");
  JobQueue q(store_.get(), JobQueue::Options{}, nullptr);
  WatchFolderOptions wo;
  wo.dir = dir;
  wo.interval = absl::Hours(1);
  WatchFolder w(&q, wo);
  HealthOptions ho;
  ho.enabled = true;
  ho.interval = absl::Hours(1);
  auto client = NewBrokerClient();
  HealthSweeper sweeper(store_.get(), client.get(), ho, nullptr);
  w.Start();
  sweeper.Start();
  ASSERT_TRUE(WaitUntil([&] { return w.scans() >= 1 && sweeper.sweeps() >= 1; }));
  const absl::Time start = absl::Now();
  w.Stop();
  sweeper.Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));  // a bound; the intervals are an hour
  EXPECT_EQ(w.scans(), 1);
  EXPECT_EQ(sweeper.sweeps(), 1);
}

// SIGTERM of an importer process whose health sweep is blocked on an
// unanswered STAT and whose watch folder is configured: it exits promptly
// and cleanly (the STAT's call_timeout is 60 s).
TEST_F(BackgroundThreadsTest, ImporterProcessStopsPromptlyOnSigtermDuringAHealthCheck) {
  auto f = Post("term.mkv", 3000, 1000, "ht");
  ASSERT_NO_FATAL_FAILURE(Import({f}, "Term.nzb"));
  FakeNntpServer::Gate* gate = nntp_->AddGate("");
  const std::string dir = WatchDir("watch-proc");
  const std::string yaml = absl::StrCat(
      "importer:\n  grpc_listen: 127.0.0.1:0\n  metrics_listen: \"\"\n  shutdown_grace: 1s\n  broker: ", broker_target_,
      "\n  database_url_env: NZBMESH_DATABASE_URL\n  workers: 1\n  owner: term\n  watch_dir: ", dir,
      "\n  watch_interval: 1h\n  health: {enabled: true, interval: 1h, sample: 3}\n");
  processes_.push_back(std::make_unique<ImporterProcess>("term", yaml, db_->url()));
  ImporterProcess* p = processes_.back().get();
  ASSERT_TRUE(WaitUntil([&] { return gate->waiting() > 0; }, absl::Seconds(60))) << p->Log();
  const absl::Time start = absl::Now();
  const int status = p->TerminateAndWait();
  EXPECT_LT(absl::Now() - start, absl::Seconds(30)) << p->Log();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status << "\n" << p->Log();
  gate->ReleaseAll();
}

}  // namespace
}  // namespace nzbmesh::importer::testing
