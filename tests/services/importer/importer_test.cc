// End-to-end import tests: NZBs made by the project's posting helper (the
// fake NNTP server's PostFile + MakeNzb) and real archives from
// tests/testdata/archives, imported through a real broker into a real
// PostgreSQL, read back through the Catalog gRPC API and the broker.
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status/grpc_status.h"
#include "services/importer/health.h"
#include "services/importer/importer_service.h"
#include "services/importer/watch_folder.h"
#include "tests/services/importer/importer_fixture.h"

namespace nzbmesh::importer::testing {
namespace {

using ::testing::HasSubstr;

std::string ArchivesDir() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* ws = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/", ws ? ws : "nzbmesh", "/tests/testdata/archives");
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class ImportTest : public ImporterFixture {
 protected:
  // Posts files of an archive set (optionally under obfuscated names) and
  // returns the NZB.
  std::string PostSet(const std::string& dir, const std::vector<std::string>& names, bool obfuscate,
                      const std::string& prefix) {
    std::vector<FakeNntpServer::PostedFile> posted;
    for (size_t i = 0; i < names.size(); ++i) {
      std::string data = ReadFile(absl::StrCat(ArchivesDir(), "/", dir, "/", names[i]));
      std::string name = obfuscate ? Sha256(absl::StrCat(prefix, i)).substr(0, 32) : names[i];
      posted.push_back(nntp_->PostFile(name, data, 30000, absl::StrCat(prefix, "-", i)));
    }
    return MakeNzb(posted);
  }

  ImporterInstance* Start() { return StartInstance(FastWorkers("t")); }

  // An NZB of `n` posted 1000-byte files, "<prefix><i>.mkv".
  std::string SmallFilesNzb(int n, const std::string& prefix) {
    std::vector<FakeNntpServer::PostedFile> files;
    for (int i = 0; i < n; ++i) {
      files.push_back(Post(absl::StrCat(prefix, i, ".mkv"), 1000, 1000, absl::StrCat(prefix, i)));
    }
    return MakeNzb(files);
  }
  static PipelineOptions OneFetchAtATime() {
    PipelineOptions p;
    p.fetch_concurrency = 1;
    return p;
  }
};


// Plain multi-file release through the gRPC APIs: submit, import, browse,
// and the layout's segments read back through the broker equal the file.
TEST_F(ImportTest, PlainMultiFileReleaseReadsBackByteExact) {
  auto a = Post("Show.S01E01.mkv", 250000, 100000, "plain-a");
  auto b = Post("Show.S01E01.srt", 4000, 100000, "plain-b");
  auto c = Post("Show.S01E01.nfo", 700, 100000, "plain-c");
  ImporterInstance* in = Start();
  ImporterServiceImpl importer(in->queue.get());
  CatalogServiceImpl catalog(in->store.get());
  metrics::Registry reg;
  auto sm = ServiceMain::Start({.name = "importer", .grpc_listen = "127.0.0.1:0", .metrics_listen = ""},
                               {&importer, &catalog}, &reg);
  ASSERT_TRUE(sm.ok()) << sm.status();
  auto ch = MakeChannel(absl::StrCat("127.0.0.1:", (*sm)->grpc_port()), {});
  ASSERT_TRUE(ch.ok());
  auto istub = v1::Importer::NewStub(*ch);
  auto cstub = v1::Catalog::NewStub(*ch);

  v1::SubmitNzbRequest req;
  req.set_nzb(MakeNzb({a, b, c}));
  req.set_filename("Show.S01E01.nzb");
  req.set_category("tv");
  req.set_priority(5);
  v1::SubmitNzbResponse resp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(istub->SubmitNzb(&ctx, req, &resp).ok());
  }
  JobRecord done = WaitFinished(resp.job_id());
  ASSERT_EQ(done.state, JobState::kCompleted) << done.message;
  v1::Job job;
  {
    grpc::ClientContext ctx;
    v1::GetJobRequest g;
    g.set_job_id(resp.job_id());
    ASSERT_TRUE(istub->GetJob(&ctx, g, &job).ok());
  }
  EXPECT_EQ(job.state(), v1::COMPLETED);
  EXPECT_EQ(job.catalog_path(), "/tv/Show.S01E01");
  EXPECT_EQ(job.priority(), 5);
  EXPECT_EQ(job.nzb_sha256().size(), 64u);

  v1::ListDirectoryResponse listing;
  {
    grpc::ClientContext ctx;
    v1::ListDirectoryRequest l;
    l.set_path("/tv/Show.S01E01");
    ASSERT_TRUE(cstub->ListDirectory(&ctx, l, &listing).ok());
  }
  ASSERT_EQ(listing.entries_size(), 3);
  for (const auto& e : listing.entries()) EXPECT_FALSE(e.directory());

  v1::FileLayout layout;
  {
    grpc::ClientContext ctx;
    v1::GetFileLayoutRequest l;
    l.set_path("/tv/Show.S01E01/Show.S01E01.mkv");
    ASSERT_TRUE(cstub->GetFileLayout(&ctx, l, &layout).ok());
  }
  EXPECT_EQ(layout.entry().size(), 250000);
  ASSERT_EQ(layout.segments_size(), 3);
  EXPECT_EQ(layout.segments(2).offset(), 200000);
  EXPECT_EQ(layout.segments(2).size(), 50000);  // derived, not fetched
  FileLayoutRecord rec;
  for (const auto& s : layout.segments()) rec.segments.push_back({s.message_id(), s.offset(), s.size()});
  // Only the first article of each file was fetched (plus STATs).
  EXPECT_EQ(nntp_->calls(a.segments[1].message_id), 1);  // STAT only
  EXPECT_EQ(Sha256(ReadThroughBroker(rec)), Sha256(contents_["plain-a"]));

  {
    grpc::ClientContext ctx;
    v1::StatRequest s;
    s.set_path("/tv/nope");
    v1::Entry e;
    EXPECT_EQ(cstub->Stat(&ctx, s, &e).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext ctx;
    v1::CancelJobRequest cj;
    cj.set_job_id(resp.job_id());
    v1::Job out;
    grpc::Status st = istub->CancelJob(&ctx, cj, &out);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(st.error_message(), HasSubstr("completed"));
  }
  {
    grpc::ClientContext ctx;
    v1::DeletePathRequest d;
    d.set_path("/tv/Show.S01E01");
    v1::DeletePathResponse out;
    ASSERT_TRUE(cstub->DeletePath(&ctx, d, &out).ok());
    EXPECT_EQ(out.files_deleted(), 3);
  }
  (*sm)->Shutdown(absl::Seconds(1));
}

TEST_F(ImportTest, MissingArticlesFailFastWithoutFetchingBodies) {
  auto f = Post("Movie.mkv", 20 * 1000, 1000, "miss");
  nntp_->RemoveArticle(f.segments.back().message_id);  // the last article is always sampled
  Start();
  SubmitResult r = Submit(MakeNzb({f}), "Incomplete.nzb");
  JobRecord j = WaitFinished(r.job_id);
  EXPECT_EQ(j.state, JobState::kFailed);
  EXPECT_EQ(j.reason, FailureReason::kMissingArticles);
  EXPECT_EQ(j.attempts, 1);  // final, not retried
  EXPECT_THAT(j.message, HasSubstr("missing"));
  EXPECT_THAT(j.message, HasSubstr(f.segments.back().message_id));
  EXPECT_EQ(nntp_->calls(f.segments[0].message_id), 1);  // STAT only: no BODY was spent
  EXPECT_TRUE(store_->ListDirectory("/")->empty());
}

TEST_F(ImportTest, HostileXmlIsRejectedAsBadNzb) {
  const std::string laughs =
      "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 "
      "\"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]><nzb><file subject=\"&lol2;\"/></nzb>";
  Start();
  SubmitResult r = Submit(laughs, "laughs.nzb");
  JobRecord j = WaitFinished(r.job_id);
  EXPECT_EQ(j.state, JobState::kFailed);
  EXPECT_EQ(j.reason, FailureReason::kBadNzb);
  EXPECT_EQ(j.attempts, 1);
  EXPECT_THAT(j.message, HasSubstr("DOCTYPE"));
  EXPECT_EQ(nntp_->total_commands(), 0);

  SubmitResult bad_id = Submit("<nzb><file subject=\"x\"><segments><segment bytes=\"10\" number=\"1\">a b\r\nQUIT"
                               "</segment></segments></file></nzb>",
                               "inject.nzb");
  JobRecord j2 = WaitFinished(bad_id.job_id);
  EXPECT_EQ(j2.reason, FailureReason::kBadNzb) << j2.message;
}

TEST_F(ImportTest, StoredRar5SetMapsToExtentsThatReadBackExactly) {
  const std::string nzb = PostSet("rar5/store-vols", {"rar5-vols.part1.rar", "rar5-vols.part2.rar",
                                                      "rar5-vols.part3.rar", "rar5-vols.par2"},
                                  false, "r5");
  Start();
  SubmitResult r = Submit(nzb, "Rar5.Release.nzb");
  JobRecord j = WaitFinished(r.job_id);
  ASSERT_EQ(j.state, JobState::kCompleted) << j.message;
  auto big = store_->GetFileLayout("/tv/Rar5.Release/vols/bigfile.txt");
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->entry.size, 205000);
  EXPECT_EQ(big->volumes.size(), 3u);
  EXPECT_FALSE(big->extents.empty());
  EXPECT_EQ(Sha256(ReadThroughBroker(*big)), "57613b4a0d18b31472c9abe90780dcaf834f4edf48e79008f027a99710cf3632");
  auto small = store_->GetFileLayout("/tv/Rar5.Release/vols/smallfile.txt");
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(Sha256(ReadThroughBroker(*small)), "6805973b24128edda3148235c77a7f7b5a7a9be6272bc882a6e030871b2b18d1");
  // The volumes and the PAR2 file are not catalog entries.
  auto rel = store_->ListDirectory("/tv/Rar5.Release");
  ASSERT_EQ(rel->size(), 1u);
  EXPECT_EQ((*rel)[0].name, "vols");
}

TEST_F(ImportTest, StoredRar4PartNSetMapsExactly) {
  const std::string nzb = PostSet(
      "rar4/store-vols-partN", {"rar3-vols.part1.rar", "rar3-vols.part2.rar", "rar3-vols.part3.rar"}, false, "r4");
  Start();
  SubmitResult r = Submit(nzb, "Rar4.Release.nzb", "movies");
  JobRecord j = WaitFinished(r.job_id);
  ASSERT_EQ(j.state, JobState::kCompleted) << j.message;
  auto big = store_->GetFileLayout("/movies/Rar4.Release/vols/bigfile.txt");
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(Sha256(ReadThroughBroker(*big)), "57613b4a0d18b31472c9abe90780dcaf834f4edf48e79008f027a99710cf3632");
}

// Obfuscated volume names (random hex, no extension) are recovered from the
// PAR2 descriptions by the MD5 of each volume's first 16 KiB; the 7z set is
// then mapped.
TEST_F(ImportTest, ObfuscatedSevenZipVolumesAreNamedByPar2AndMapped) {
  const std::string nzb = PostSet(
      "7z/store-vols", {"release.7z.001", "release.7z.002", "release.7z.003", "release.7z.004", "release.par2"},
      true, "7zob");
  Start();
  SubmitResult r = Submit(nzb, "Obfuscated.Release.nzb");
  JobRecord j = WaitFinished(r.job_id);
  ASSERT_EQ(j.state, JobState::kCompleted) << j.message;
  auto rel = store_->ListDirectory("/tv/Obfuscated.Release");
  ASSERT_TRUE(rel.ok()) << rel.status();
  std::vector<std::string> names;
  for (const auto& e : *rel) names.push_back(e.name);
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("extras", "empty.txt", "subs.srt", "video.bin"));
  auto video = store_->GetFileLayout("/tv/Obfuscated.Release/video.bin");
  ASSERT_TRUE(video.ok()) << video.status();
  EXPECT_EQ(video->entry.size, 300000);
  EXPECT_EQ(Sha256(ReadThroughBroker(*video)), "530577081e49341e8d7ad8b8f5cc915f4e2543b9a86728da815232a6ad77f4c4");
  auto nfo = store_->GetFileLayout("/tv/Obfuscated.Release/extras/readme.nfo");
  ASSERT_TRUE(nfo.ok()) << nfo.status();
  EXPECT_EQ(Sha256(ReadThroughBroker(*nfo)), "4787397c5c1bdfc373ae2fcd0918360276b93dbfc09b4fec1828406d67f0629b");
}

TEST_F(ImportTest, CompressedRarIsRejectedWithAReason) {
  std::vector<std::string> vols;
  for (int i = 1; i <= 7; ++i) vols.push_back(absl::StrCat("Rar4.multi.part0", i, ".rar"));
  const std::string nzb = PostSet("rar4/compressed-vols", vols, false, "r4c");
  Start();
  SubmitResult r = Submit(nzb, "Compressed.nzb");
  JobRecord j = WaitFinished(r.job_id);
  EXPECT_EQ(j.state, JobState::kFailed);
  EXPECT_EQ(j.reason, FailureReason::kUnsupportedArchive);
  EXPECT_EQ(j.attempts, 1);
  EXPECT_THAT(j.message, HasSubstr("compressed"));
  EXPECT_TRUE(store_->ListDirectory("/")->empty());
}

TEST_F(ImportTest, ProviderOutageIsRetriedThenFailsAfterThreeAttempts) {
  auto f = Post("Movie.mkv", 3000, 1000, "outage");
  const std::string nzb = MakeNzb({f});
  nntp_->Stop();  // every provider is down
  Start();
  SubmitResult r = Submit(nzb, "Outage.nzb");
  JobRecord j = WaitFinished(r.job_id, absl::Seconds(90));
  EXPECT_EQ(j.state, JobState::kFailed);
  EXPECT_EQ(j.reason, FailureReason::kProviderUnavailable) << j.message;
  EXPECT_EQ(j.attempts, 3);
}

TEST_F(ImportTest, CancellingARunningJobStopsItAndWritesNothing) {
  const std::string nzb = SmallFilesNzb(6, "cx");
  FakeNntpServer::Gate* gate = nntp_->AddGate("");
  StartInstance(FastWorkers("c", 1), OneFetchAtATime());
  SubmitResult r = Submit(nzb, "Cancelled.nzb");
  ASSERT_TRUE(WaitUntil([&] { return gate->waiting() > 0; }));
  auto c = store_->CancelJob(r.job_id);
  ASSERT_TRUE(c.ok()) << c.status();
  gate->ReleaseAll();
  // The worker notices through its heartbeat and abandons the job.
  ASSERT_TRUE(WaitUntil([&] { return instances_[0]->workers->attempts_finished() == 1; }));
  auto j = store_->GetJob(r.job_id);
  EXPECT_EQ(j->state, JobState::kCancelled);
  EXPECT_TRUE(store_->ListDirectory("/")->empty());
  // Retry requeues it with a fresh attempt budget; it then completes.
  auto again = instances_[0]->queue->Retry(r.job_id);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->attempts, 0);
  JobRecord done = WaitFinished(r.job_id);
  EXPECT_EQ(done.state, JobState::kCompleted) << done.message;
}

// A cancel through the API stops the worker of this process running the job
// at once: its broker calls are cancelled, so it neither waits for the reply
// it is blocked on (held at the news server here, never released) nor for
// its next heartbeat (30 s here).
TEST_F(ImportTest, CancelThroughTheQueueStopsTheLocalWorkerAtOnce) {
  const std::string nzb = SmallFilesNzb(4, "qx");
  FakeNntpServer::Gate* gate = nntp_->AddGate("");
  ImporterInstance* in = StartInstance(SlowHeartbeatWorkers("q"), OneFetchAtATime());
  SubmitResult r = Submit(nzb, "CancelNow.nzb");
  ASSERT_TRUE(WaitUntil([&] { return gate->waiting() > 0; }));
  auto c = in->queue->Cancel(r.job_id);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->state, JobState::kCancelled);
  ASSERT_TRUE(WaitUntil([&] { return in->workers->attempts_finished() == 1; }, absl::Seconds(10)))
      << "the worker waited for its reply or its heartbeat";
  EXPECT_EQ(store_->GetJob(r.job_id)->state, JobState::kCancelled);
  EXPECT_TRUE(store_->ListDirectory("/")->empty());
  EXPECT_FALSE(in->workers->CancelRunning(r.job_id));  // no longer running here
  gate->ReleaseAll();
}

// A cancel another importer replica took reaches the replica running the job
// through PostgreSQL (Store::CancelJob's NOTIFY, the runner's CancelWatcher):
// its worker stops at once, not at its next heartbeat (30 s here). The
// replica taking the call runs no workers, so only the notification can stop
// the job in time.
TEST_F(ImportTest, CancelThroughAnotherReplicaStopsTheRunningWorkerAtOnce) {
  const std::string nzb = SmallFilesNzb(4, "qr");
  FakeNntpServer::Gate* gate = nntp_->AddGate("");
  ImporterInstance* runner = StartInstance(SlowHeartbeatWorkers("runner"), OneFetchAtATime());
  ImporterInstance* other = StartInstance(FastWorkers("api", 1), {}, /*start=*/false);
  SubmitResult r = Submit(nzb, "CancelElsewhere.nzb");
  ASSERT_TRUE(WaitUntil([&] { return gate->waiting() > 0; }));
  auto c = other->queue->Cancel(r.job_id);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(other->workers->CancelRunning(r.job_id));  // not running there
  ASSERT_TRUE(WaitUntil([&] { return runner->workers->attempts_finished() == 1; }, absl::Seconds(10)))
      << "the running replica waited for its heartbeat";
  EXPECT_EQ(store_->GetJob(r.job_id)->state, JobState::kCancelled);
  EXPECT_TRUE(store_->ListDirectory("/")->empty());
  gate->ReleaseAll();
}

// The watcher survives losing its connection: after the server ends its
// backend it reconnects, LISTENs again and hears the next cancel.
TEST_F(ImportTest, CancelWatcherReconnectsAfterItsConnectionIsKilled) {
  absl::Mutex mu;
  std::vector<int64_t> heard;
  CancelWatcher::Options o{db_->url()};
  o.stop_check = absl::Milliseconds(20);
  metrics::Registry reg;
  ImporterMetrics m(reg);
  CancelWatcher watcher(
      o,
      [&](int64_t id) {
        absl::MutexLock lock(&mu);
        heard.push_back(id);
      },
      &m);
  ASSERT_TRUE(watcher.WaitListening(absl::Seconds(10)));
  EXPECT_THAT(reg.Serialize(), HasSubstr("nzbmesh_importer_cancel_watcher_listening 1"));
  const int64_t first = Submit("<nzb>w1</nzb>", "w1.nzb").job_id;
  ASSERT_TRUE(store_->CancelJob(first).ok());
  auto has = [&](int64_t id) {
    absl::MutexLock lock(&mu);
    return std::find(heard.begin(), heard.end(), id) != heard.end();
  };
  ASSERT_TRUE(WaitUntil([&] { return has(first); }, absl::Seconds(10)));
  ASSERT_TRUE(store_
                  ->ExecuteForTesting(absl::StrCat("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query ",
                                                   "LIKE 'LISTEN %", kJobCancelledChannel, "%' AND pid <> pg_backend_pid()"))
                  .ok());
  ASSERT_TRUE(WaitUntil([&] { return watcher.connections() >= 2; }, absl::Seconds(10)));
  ASSERT_TRUE(watcher.WaitListening(absl::Seconds(10)));
  const int64_t second = Submit("<nzb>w2</nzb>", "w2.nzb").job_id;
  ASSERT_TRUE(store_->CancelJob(second).ok());
  EXPECT_TRUE(WaitUntil([&] { return has(second); }, absl::Seconds(10)));
  EXPECT_THAT(reg.Serialize(), HasSubstr("nzbmesh_importer_cancels_heard_total 2"));
  watcher.Stop();
  EXPECT_THAT(reg.Serialize(), HasSubstr("nzbmesh_importer_cancel_watcher_listening 0"));
}

// ---- Queue semantics at the store (deterministic, no workers). ----

class QueueTest : public ImporterFixture {
 protected:
  int64_t Add(const std::string& tag, int priority = 0) {
    return Submit(absl::StrCat("<nzb>", tag, "</nzb>"), tag + ".nzb", "tv", priority).job_id;
  }
};

TEST_F(QueueTest, HigherPriorityIsClaimedFirstThenOldestFirst) {
  const int64_t low = Add("low", 0);
  const int64_t high = Add("high", 10);
  const int64_t low2 = Add("low2", 0);
  std::vector<int64_t> order;
  for (int i = 0; i < 3; ++i) {
    auto c = store_->ClaimJob("w", absl::Seconds(30));
    ASSERT_TRUE(c.ok() && c->has_value());
    order.push_back((*c)->job.id);
  }
  EXPECT_EQ(order, (std::vector<int64_t>{high, low, low2}));
  auto none = store_->ClaimJob("w", absl::Seconds(30));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST_F(QueueTest, TransientFailuresBackOffAndAttemptsAreBounded) {
  const int64_t id = Add("flaky");
  for (int attempt = 1; attempt <= 3; ++attempt) {
    auto c = store_->ClaimJob("w", absl::Seconds(30));
    ASSERT_TRUE(c.ok() && c->has_value()) << "attempt " << attempt;
    EXPECT_EQ((*c)->job.attempts, attempt);
    auto f = store_->FailJob(id, "w", attempt, FailureReason::kProviderUnavailable, "provider down", true,
                             attempt < 3 ? absl::Milliseconds(200) : absl::ZeroDuration());
    ASSERT_TRUE(f.ok()) << f.status();
    if (attempt < 3) {
      EXPECT_EQ(f->state, JobState::kQueued);
      // Backoff: not claimable at once; claimable once next_attempt passes.
      EXPECT_GE(f->next_attempt - absl::Now(), absl::Milliseconds(100));
      EXPECT_FALSE(store_->HasClaimableJob().value());
      ASSERT_TRUE(WaitUntil([&] { return store_->HasClaimableJob().value_or(false); }, absl::Seconds(10)));
    } else {
      EXPECT_EQ(f->state, JobState::kFailed);
      EXPECT_EQ(f->reason, FailureReason::kProviderUnavailable);
      EXPECT_EQ(f->message, "provider down");
    }
  }
}

TEST_F(QueueTest, ExpiredClaimIsRequeuedAndTheOldOwnerCannotFinish) {
  const int64_t id = Add("orphan");
  auto c = store_->ClaimJob("dead", absl::Milliseconds(1));
  ASSERT_TRUE(c.ok() && c->has_value());
  ASSERT_TRUE(WaitUntil([&] { return store_->RequeueExpired(absl::ZeroDuration()).value_or(0) == 1; }));
  auto j = store_->GetJob(id);
  EXPECT_EQ(j->state, JobState::kQueued);
  EXPECT_THAT(j->message, HasSubstr("dead"));
  EXPECT_EQ(store_->Heartbeat(id, "dead", 1, absl::Seconds(30), 0.5).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->CompleteJob(id, "dead", 1, ReleasePlan{"tv", "x", {}, {}}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto again = store_->ClaimJob("alive", absl::Seconds(30));
  ASSERT_TRUE(again.ok() && again->has_value());
  EXPECT_EQ((*again)->job.attempts, 2);
}

TEST_F(QueueTest, CancelAndRetryFollowTheStateMachine) {
  const int64_t id = Add("c");
  auto cancelled = store_->CancelJob(id);
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->state, JobState::kCancelled);
  EXPECT_EQ(store_->CancelJob(id).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->CancelJob(999999).status().code(), absl::StatusCode::kNotFound);
  auto retried = store_->RetryJob(id);
  ASSERT_TRUE(retried.ok());
  EXPECT_EQ(retried->state, JobState::kQueued);
  EXPECT_EQ(store_->RetryJob(id).status().code(), absl::StatusCode::kFailedPrecondition);
  auto listed = store_->ListJobs(JobState::kQueued, 0);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 1u);
}

TEST_F(QueueTest, SubmissionDefaultsComeFromTheNzbMeta) {
  JobQueue q(store_.get(), JobQueue::Options{}, nullptr);
  Submission s;
  NzbOptions o;
  o.meta = {{"name", "Meta Name"}, {"category", "docs"}, {"password", "pw"}};
  s.nzb = MakeNzb({Post("x.mkv", 100, 100, "meta")}, o);
  s.filename = "ignored.nzb";
  auto r = q.Submit(s);
  ASSERT_TRUE(r.ok()) << r.status();
  auto j = store_->GetJob(r->job_id);
  EXPECT_EQ(j->name, "Meta Name");
  EXPECT_EQ(j->category, "docs");
  EXPECT_EQ(j->password, "pw");
  Submission evil;
  evil.nzb = "<nzb/>";
  evil.filename = "../../etc/passwd.nzb";
  evil.category = "../x";
  auto r2 = q.Submit(evil);
  ASSERT_TRUE(r2.ok());
  auto j2 = store_->GetJob(r2->job_id);
  EXPECT_EQ(j2->name.find('/'), std::string::npos) << j2->name;
  EXPECT_EQ(j2->category.find('/'), std::string::npos) << j2->category;
  EXPECT_FALSE(absl::StartsWith(j2->category, "."));
}

TEST_F(QueueTest, WatchFolderQueuesNzbsOnceWithTheSubdirectoryAsCategory) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/watch");
  std::filesystem::create_directories(dir + "/anime");
  std::ofstream(dir + "/anime/Show.E01.nzb") << MakeNzb({Post("e01.mkv", 100, 100, "watch")});
  JobQueue q(store_.get(), JobQueue::Options{}, nullptr);
  WatchFolderOptions o;
  o.dir = dir;
  WatchFolder w(&q, o);
  EXPECT_EQ(w.ScanOnce().queued, 1);
  EXPECT_EQ(w.ScanOnce().queued, 0);
  EXPECT_TRUE(std::filesystem::exists(dir + "/anime/Show.E01.nzb.queued"));
  auto jobs = store_->ListJobs(std::nullopt, 0);
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].category, "anime");
  EXPECT_EQ((*jobs)[0].name, "Show.E01");
}

// ---- Health sweeps. ----

TEST_F(ImportTest, HealthSweepMarksFilesHealthyOrBroken) {
  auto good = Post("good.mkv", 5000, 1000, "hg");
  auto bad = Post("bad.mkv", 5000, 1000, "hb");
  Start();
  SubmitResult r = Submit(MakeNzb({good, bad}), "Health.nzb");
  ASSERT_EQ(WaitFinished(r.job_id).state, JobState::kCompleted);
  nntp_->RemoveArticle(bad.segments[2].message_id);
  HealthOptions o;
  o.enabled = true;
  o.sample = 100;  // every article of these small files
  metrics::Registry reg;
  ImporterMetrics m(reg);
  auto client = NewBrokerClient();
  HealthSweeper sweeper(store_.get(), client.get(), o, &m);
  auto res = sweeper.RunOnce();
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_EQ(res->files, 2);
  EXPECT_EQ(res->healthy, 1);
  EXPECT_EQ(res->broken, 1);
  EXPECT_EQ(store_->Stat("/tv/Health/good.mkv")->health, Health::kHealthy);
  EXPECT_EQ(store_->Stat("/tv/Health/bad.mkv")->health, Health::kBroken);
  EXPECT_THAT(reg.Serialize(), HasSubstr("nzbmesh_importer_health_checks_total{result=\"broken\"} 1"));
  // Just checked: nothing is due until the interval passes.
  EXPECT_EQ(sweeper.RunOnce()->files, 0);
}

}  // namespace
}  // namespace nzbmesh::importer::testing
