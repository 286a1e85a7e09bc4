// The import rows of the storm contract (docs/INVARIANTS.md M1-M4), against a
// real broker, a fake NNTP server and a real PostgreSQL.
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/importer/importer_service.h"
#include "tests/services/importer/importer_fixture.h"

namespace nzbmesh::importer::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

int64_t Count(const std::string& url, const std::string& sql) {
  pqxx::connection c(url);
  pqxx::nontransaction n(c);
  return n.exec(sql)[0][0].as<int64_t>();
}

class ImporterStorm : public ImporterFixture {};

// M1: 4 importer processes (2 workers each) against one database, 100 jobs:
// every job is claimed by exactly one worker and processed exactly once.
TEST_F(ImporterStorm, M1_EachJobIsClaimedByExactlyOneWorker) {
  constexpr int kJobs = 100;
  std::vector<FakeNntpServer::PostedFile> files;
  for (int i = 0; i < kJobs; ++i) files.push_back(Post(absl::StrCat("ep", i, ".mkv"), 2000, 1000, absl::StrCat("m1-", i)));
  for (int p = 0; p < 4; ++p) StartProcess(absl::StrCat("proc", p), 2);
  std::vector<int64_t> ids;
  for (int i = 0; i < kJobs; ++i) {
    SubmitResult r = Submit(MakeNzb({files[i]}), absl::StrCat("Show.E", i, ".nzb"));
    ASSERT_FALSE(r.duplicate);
    ids.push_back(r.job_id);
  }
  std::set<std::string> processes_seen;
  for (int i = 0; i < kJobs; ++i) {
    JobRecord j = WaitFinished(ids[i], absl::Seconds(120));
    ASSERT_EQ(j.state, JobState::kCompleted) << j.message;
    EXPECT_EQ(j.attempts, 1) << "job " << j.id << " was claimed more than once";
    processes_seen.insert(j.owner.substr(0, j.owner.find('/')));
    // Exactly one import of each job: 1 STAT + 1 BODY of the first
    // article, 1 STAT of the second.
    EXPECT_EQ(nntp_->calls(files[i].segments[0].message_id), 2) << "job " << j.id;
    EXPECT_EQ(nntp_->calls(files[i].segments[1].message_id), 1) << "job " << j.id;
  }
  EXPECT_GE(processes_seen.size(), 2u) << "the jobs were not spread over several processes";
  EXPECT_EQ(Count(db_->url(), "SELECT count(*) FROM entries WHERE is_dir AND parent_id = "
                              "(SELECT id FROM entries WHERE path = '/tv')"),
            kJobs);
  EXPECT_EQ(Count(db_->url(), "SELECT count(*) FROM entries WHERE NOT is_dir"), kJobs);
  for (auto& p : processes_) EXPECT_THAT(p->Log(), Not(HasSubstr("level=error"))) << p->Log();
}

// M2: kill -9 an importer process mid-job; the job is requeued when its
// heartbeat expires, completes exactly once on another process, and the
// catalog holds no duplicate or orphan rows.
TEST_F(ImporterStorm, M2_KilledWorkerLosesNothing) {
  constexpr int kFiles = 8;
  std::vector<FakeNntpServer::PostedFile> files;
  for (int i = 0; i < kFiles; ++i) files.push_back(Post(absl::StrCat("f", i, ".mkv"), 3000, 1000, absl::StrCat("m2-", i)));
  // Slow articles: with fan-out 1 the job takes several seconds.
  FakeNntpServer::Fault slow;
  slow.latency = absl::Milliseconds(400);
  nntp_->SetDefaultFault(slow);

  ImporterProcess* a = StartProcess("victim", 1, /*fan_out=*/1);
  SubmitResult r = Submit(MakeNzb(files), "Killed.Release.nzb");
  // Wait until the victim is mid-job: running, and at least one file fetched.
  ASSERT_TRUE(WaitUntil([&] {
    auto j = store_->GetJob(r.job_id);
    return j.ok() && j->state == JobState::kRunning && absl::StartsWith(j->owner, "victim") && j->progress > 0.1;
  })) << a->Log();
  a->Kill9();
  const JobRecord during = *store_->GetJob(r.job_id);
  EXPECT_EQ(during.state, JobState::kRunning);  // nothing finished it
  EXPECT_EQ(Count(db_->url(), "SELECT count(*) FROM entries"), 1) << "partial catalog rows";

  nntp_->ClearFaults();
  StartProcess("rescuer", 1, 4);
  JobRecord j = WaitFinished(r.job_id, absl::Seconds(60));
  ASSERT_EQ(j.state, JobState::kCompleted) << j.message;
  EXPECT_EQ(j.attempts, 2);
  EXPECT_TRUE(absl::StartsWith(j.owner, "rescuer")) << j.owner;
  EXPECT_EQ(j.catalog_path, "/tv/Killed.Release");
  // Exactly one release with exactly its files; nothing else.
  EXPECT_EQ(Count(db_->url(), "SELECT count(*) FROM entries WHERE is_dir AND path LIKE '/tv/%'"), 1);
  EXPECT_EQ(Count(db_->url(), "SELECT count(*) FROM entries WHERE NOT is_dir"), kFiles);
  EXPECT_EQ(Count(db_->url(), "SELECT count(*) FROM entries"), 1 + 1 + 1 + kFiles);  // root, tv, release, files
  EXPECT_EQ(Count(db_->url(), "SELECT count(*) FROM layouts"), kFiles);
  EXPECT_EQ(Count(db_->url(), "SELECT count(*) FROM layouts l LEFT JOIN entries e ON e.id = l.file_id "
                              "WHERE e.id IS NULL OR e.job_id IS DISTINCT FROM " + std::to_string(r.job_id)),
            0);
  auto layout = store_->GetFileLayout("/tv/Killed.Release/f3.mkv");
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(Sha256(ReadThroughBroker(*layout)), Sha256(contents_["m2-3"]));
}

// M3: one job's fan-out is bounded by import_fetch_concurrency.
TEST_F(ImporterStorm, M3_JobFanOutIsBounded) {
  constexpr int kFiles = 20;
  std::vector<FakeNntpServer::PostedFile> files;
  for (int i = 0; i < kFiles; ++i) files.push_back(Post(absl::StrCat("f", i, ".mkv"), 1500, 1000, absl::StrCat("m3-", i)));
  FakeNntpServer::Fault slow;
  slow.latency = absl::Milliseconds(50);
  nntp_->SetDefaultFault(slow);
  PipelineOptions p;
  p.fetch_concurrency = 6;
  StartInstance(FastWorkers("m3", 1), p);
  nntp_->ResetCounters();
  SubmitResult r = Submit(MakeNzb(files), "Wide.Release.nzb");
  JobRecord j = WaitFinished(r.job_id);
  ASSERT_EQ(j.state, JobState::kCompleted) << j.message;
  EXPECT_LE(nntp_->max_in_flight(), 6);
  EXPECT_GE(nntp_->max_in_flight(), 3) << "the fan-out never ran in parallel";
  auto listing = store_->ListDirectory("/tv/Wide.Release");
  ASSERT_TRUE(listing.ok());
  EXPECT_EQ(listing->size(), static_cast<size_t>(kFiles));
}

// M4: the same NZB submitted twice (before and after the import) makes one
// job and one release.
TEST_F(ImporterStorm, M4_SameNzbTwiceMakesOneRelease) {
  auto f = Post("movie.mkv", 5000, 1000, "m4");
  const std::string nzb = MakeNzb({f});
  ImporterInstance* in = StartInstance(FastWorkers("m4"), {}, /*start=*/false);
  ImporterServiceImpl service(in->queue.get());
  v1::SubmitNzbRequest req;
  req.set_nzb(nzb);
  req.set_filename("Movie.2024.nzb");
  req.set_category("movies");
  v1::SubmitNzbResponse first, second, third;
  grpc::ServerContext ctx1, ctx2, ctx3;
  ASSERT_TRUE(service.SubmitNzb(&ctx1, &req, &first).ok());
  req.set_name("A Different Name");  // the NZB bytes decide, not the metadata
  ASSERT_TRUE(service.SubmitNzb(&ctx2, &req, &second).ok());
  EXPECT_FALSE(first.duplicate());
  EXPECT_TRUE(second.duplicate());
  EXPECT_EQ(second.job_id(), first.job_id());
  in->workers->Start();
  JobRecord j = WaitFinished(first.job_id());
  ASSERT_EQ(j.state, JobState::kCompleted) << j.message;
  ASSERT_TRUE(service.SubmitNzb(&ctx3, &req, &third).ok());
  EXPECT_TRUE(third.duplicate());
  EXPECT_EQ(third.job_id(), first.job_id());
  EXPECT_EQ(Count(db_->url(), "SELECT count(*) FROM jobs"), 1);
  EXPECT_EQ(Count(db_->url(), "SELECT count(*) FROM nzbs"), 1);
  auto cat = store_->ListDirectory("/movies");
  ASSERT_TRUE(cat.ok());
  ASSERT_EQ(cat->size(), 1u);
  EXPECT_EQ((*cat)[0].name, "Movie.2024");
  EXPECT_EQ(nntp_->calls(f.segments[0].message_id), 2);  // one STAT + one BODY: imported once
}

// M4 holds only while the release lives: after DeletePath of the release the
// same NZB is imported afresh (a new job, a new release under the same
// path, the bytes read back exactly); submitting again then is a duplicate
// of the new job.
TEST_F(ImporterStorm, M4_ResubmitAfterDeletePathImportsAfresh) {
  auto f = Post("movie.mkv", 5000, 1000, "m4d");
  ImporterInstance* in = StartInstance(FastWorkers("m4d"));
  ImporterServiceImpl service(in->queue.get());
  CatalogServiceImpl catalog(store_.get());
  v1::SubmitNzbRequest req;
  req.set_nzb(MakeNzb({f}));
  req.set_filename("Movie.2024.nzb");
  req.set_category("movies");
  auto submit = [&] {
    v1::SubmitNzbResponse resp;
    grpc::ServerContext ctx;
    EXPECT_TRUE(service.SubmitNzb(&ctx, &req, &resp).ok());
    return resp;
  };
  const v1::SubmitNzbResponse first = submit();
  ASSERT_FALSE(first.duplicate());
  ASSERT_EQ(WaitFinished(first.job_id()).state, JobState::kCompleted);
  EXPECT_TRUE(submit().duplicate());

  v1::DeletePathRequest del;
  del.set_path("/movies/Movie.2024");
  v1::DeletePathResponse deleted;
  grpc::ServerContext dctx;
  ASSERT_TRUE(catalog.DeletePath(&dctx, &del, &deleted).ok());
  EXPECT_EQ(deleted.files_deleted(), 1);

  const v1::SubmitNzbResponse again = submit();
  EXPECT_FALSE(again.duplicate());
  EXPECT_NE(again.job_id(), first.job_id());
  JobRecord j = WaitFinished(again.job_id());
  ASSERT_EQ(j.state, JobState::kCompleted) << j.message;
  EXPECT_EQ(j.catalog_path, "/movies/Movie.2024");
  const v1::SubmitNzbResponse third = submit();
  EXPECT_TRUE(third.duplicate());
  EXPECT_EQ(third.job_id(), again.job_id());
  EXPECT_EQ(Count(db_->url(), "SELECT count(*) FROM jobs"), 2);
  EXPECT_EQ(Count(db_->url(), "SELECT count(*) FROM nzbs"), 1);
  auto cat = store_->ListDirectory("/movies");
  ASSERT_TRUE(cat.ok());
  ASSERT_EQ(cat->size(), 1u);
  EXPECT_EQ((*cat)[0].name, "Movie.2024");
  auto layout = store_->GetFileLayout("/movies/Movie.2024/movie.mkv");
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(Sha256(ReadThroughBroker(*layout)), Sha256(contents_["m4d"]));
}

}  // namespace
}  // namespace nzbmesh::importer::testing
