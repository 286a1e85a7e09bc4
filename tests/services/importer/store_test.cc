// Store: migrations under concurrency, the libpqxx → Status mapping,
// reconnects, and the catalog round trip. Real PostgreSQL (pg_fixture.h).
#include "services/importer/store.h"

#include <set>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "tests/services/importer/pg_fixture.h"

namespace nzbmesh::importer {
namespace {

using ::testing::HasSubstr;
using testing::TestDatabase;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = TestDatabase::Create();
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
  }
  std::unique_ptr<Store> Open(Store::Options o = {}) {
    auto s = db_->OpenStore(o);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::unique_ptr<TestDatabase> db_;
};

SubmitRecord Record(const std::string& sha, const std::string& name = "rel") {
  SubmitRecord r;
  r.nzb = "<nzb/>";
  r.sha256_hex = sha;
  r.category = "tv";
  r.name = name;
  return r;
}

TEST_F(StoreTest, FourConcurrentMigratorsApplyEachMigrationOnce) {
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(4);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      Store::Options o;
      o.url = db_->url();
      results[i] = Store::Create(o).status();
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& s : results) EXPECT_TRUE(s.ok()) << s;
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto v = store->SchemaVersion();
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, Store::LatestSchemaVersion());
  pqxx::connection c(db_->url());
  pqxx::nontransaction n(c);
  EXPECT_EQ(n.exec("SELECT count(*) FROM schema_migrations")[0][0].as<int>(), Store::LatestSchemaVersion());
  EXPECT_EQ(n.exec("SELECT count(*) FROM entries WHERE path = '/'")[0][0].as<int>(), 1);
}

TEST_F(StoreTest, MigrateIsIdempotent) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->Migrate().ok());
  EXPECT_TRUE(store->Migrate().ok());
  EXPECT_EQ(*store->SchemaVersion(), Store::LatestSchemaVersion());
}

TEST_F(StoreTest, UnreachableDatabaseIsUnavailable) {
  Store::Options o;
  o.url = testing::WithDatabase("postgresql://postgres@127.0.0.1:1/postgres", "x");
  auto s = Store::Create(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kUnavailable) << s.status();
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("connect"));
}

TEST_F(StoreTest, KilledConnectionIsUnavailableThenReconnects) {
  Store::Options o;
  o.broken_connection_retries = 0;
  o.max_connections = 1;
  auto store = Open(o);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Stat("/").ok());
  db_->TerminateConnections();
  auto s = store->Stat("/");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kUnavailable) << s.status();
  // The broken connection was dropped; the next call dials a fresh one.
  auto again = store->Stat("/");
  EXPECT_TRUE(again.ok()) << again.status();
}

TEST_F(StoreTest, KilledConnectionIsRetriedOnceOnAFreshConnection) {
  Store::Options o;
  o.max_connections = 1;  // default broken_connection_retries = 1
  auto store = Open(o);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Stat("/").ok());
  db_->TerminateConnections();
  auto s = store->Stat("/");
  EXPECT_TRUE(s.ok()) << s.status();
}

TEST_F(StoreTest, UniqueViolationIsAlreadyExistsAndSyntaxErrorIsInternal) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const std::string insert = "INSERT INTO nzbs (sha256, bytes, size) VALUES ('abc', '', 0)";
  ASSERT_TRUE(store->ExecuteForTesting(insert).ok());
  absl::Status dup = store->ExecuteForTesting(insert);
  EXPECT_EQ(dup.code(), absl::StatusCode::kAlreadyExists) << dup;
  EXPECT_THAT(std::string(dup.message()), HasSubstr("nzbs_sha256_key"));
  absl::Status bad = store->ExecuteForTesting("SELEC 1");
  EXPECT_EQ(bad.code(), absl::StatusCode::kInternal) << bad;
  EXPECT_THAT(std::string(bad.message()), HasSubstr("42601"));
  absl::Status check = store->ExecuteForTesting(
      "INSERT INTO jobs (nzb_id, state, category, name) SELECT id, 'bogus', 'c', 'n' FROM nzbs");
  EXPECT_EQ(check.code(), absl::StatusCode::kInvalidArgument) << check;
}

TEST(StoreErrorMapping, InDoubtIsUnknownAndNeverUnavailable) {
  absl::Status s = MapPqxxException("commit", std::make_exception_ptr(pqxx::in_doubt_error("lost during COMMIT")));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnknown);
  EXPECT_THAT(std::string(s.message()), HasSubstr("outcome is unknown"));
  EXPECT_EQ(MapPqxxException("x", std::make_exception_ptr(pqxx::broken_connection("gone"))).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(MapPqxxException("x", std::make_exception_ptr(pqxx::deadlock_detected("d"))).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(MapPqxxException("x", std::make_exception_ptr(std::runtime_error("boom"))).code(),
            absl::StatusCode::kInternal);
}

TEST(StorePaths, NormalizesAndRejectsTraversal) {
  EXPECT_EQ(*NormalizeCatalogPath("/"), "/");
  EXPECT_EQ(*NormalizeCatalogPath("//tv//show/"), "/tv/show");
  EXPECT_EQ(NormalizeCatalogPath("tv").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NormalizeCatalogPath("/tv/../etc").status().code(), absl::StatusCode::kInvalidArgument);
}

ReleasePlan SamplePlan() {
  ReleasePlan p;
  p.category = "movies";
  p.release = "Big.Movie";
  FilePlan plain;
  plain.name = "movie.mkv";
  plain.size = 250;
  plain.mtime = absl::FromUnixSeconds(1700000000);
  plain.segments = {{"a@x", 100}, {"b@x", 100}, {"c@x", 50}};
  p.files.push_back(plain);
  p.volumes = {{"set.part1.rar", 1000, {{"v1a@x", 600}, {"v1b@x", 400}}},
               {"set.part2.rar", 500, {{"v2a@x", 500}}}};
  FilePlan member;
  member.name = "Subs/en.srt";
  member.size = 300;
  member.extents = {{0, 900, 0, 100}, {1, 20, 100, 200}};
  p.files.push_back(member);
  return p;
}

// Claims a fresh job so CompleteJob has an attempt to finish.
ClaimedJob SubmitAndClaim(Store& store, const std::string& sha) {
  auto sub = store.Submit(Record(sha));
  EXPECT_TRUE(sub.ok()) << sub.status();
  auto claimed = store.ClaimJob("w1", absl::Seconds(30));
  EXPECT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
  return **claimed;
}

TEST_F(StoreTest, CatalogRoundTripWithSegmentsAndExtents) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ClaimedJob job = SubmitAndClaim(*store, "s1");
  auto path = store->CompleteJob(job.job.id, "w1", job.job.attempts, SamplePlan());
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, "/movies/Big.Movie");

  auto root = store->ListDirectory("/");
  ASSERT_TRUE(root.ok()) << root.status();
  ASSERT_EQ(root->size(), 1u);
  EXPECT_EQ((*root)[0].path, "/movies");
  EXPECT_TRUE((*root)[0].directory);

  auto rel = store->ListDirectory("/movies/Big.Movie");
  ASSERT_TRUE(rel.ok());
  ASSERT_EQ(rel->size(), 2u);
  EXPECT_EQ((*rel)[0].name, "Subs");  // directories first
  EXPECT_EQ((*rel)[1].name, "movie.mkv");
  EXPECT_EQ((*rel)[1].size, 250);
  EXPECT_FALSE((*rel)[1].etag.empty());

  auto layout = store->GetFileLayout("/movies/Big.Movie/movie.mkv");
  ASSERT_TRUE(layout.ok()) << layout.status();
  ASSERT_EQ(layout->segments.size(), 3u);
  EXPECT_EQ(layout->segments[2].message_id, "c@x");
  EXPECT_EQ(layout->segments[2].offset, 200);
  EXPECT_EQ(layout->segments[2].size, 50);
  EXPECT_EQ(layout->entry.mtime, absl::FromUnixSeconds(1700000000));

  auto member = store->GetFileLayout("/movies/Big.Movie/Subs/en.srt");
  ASSERT_TRUE(member.ok()) << member.status();
  EXPECT_TRUE(member->segments.empty());
  ASSERT_EQ(member->volumes.size(), 2u);
  EXPECT_EQ(member->volumes[0].name, "set.part1.rar");
  EXPECT_EQ(member->volumes[0].segments[1].offset, 600);
  ASSERT_EQ(member->extents.size(), 2u);
  EXPECT_EQ(member->extents[1].volume, 1);
  EXPECT_EQ(member->extents[1].volume_offset, 20);
  EXPECT_EQ(member->extents[1].file_offset, 100);
  EXPECT_EQ(member->extents[1].length, 200);

  EXPECT_EQ(store->GetFileLayout("/movies/Big.Movie").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->GetFileLayout("/movies/nope.mkv").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->ListDirectory("/movies/Big.Movie/movie.mkv").status().code(),
            absl::StatusCode::kFailedPrecondition);

  auto job_after = store->GetJob(job.job.id);
  EXPECT_EQ(job_after->state, JobState::kCompleted);
  EXPECT_EQ(job_after->catalog_path, "/movies/Big.Movie");

  // A second release with the same name gets a suffix.
  ClaimedJob job2 = SubmitAndClaim(*store, "s2");
  auto path2 = store->CompleteJob(job2.job.id, "w1", job2.job.attempts, SamplePlan());
  ASSERT_TRUE(path2.ok()) << path2.status();
  EXPECT_EQ(*path2, "/movies/Big.Movie (2)");

  auto deleted = store->DeletePath("/movies/Big.Movie");
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, 2);
  EXPECT_EQ(store->Stat("/movies/Big.Movie/movie.mkv").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->DeletePath("/movies/Big.Movie").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->DeletePath("/").status().code(), absl::StatusCode::kInvalidArgument);
  pqxx::connection c(db_->url());
  pqxx::nontransaction n(c);
  // Cascades leave no orphans: only the second release's rows remain.
  EXPECT_EQ(n.exec("SELECT count(*) FROM volumes")[0][0].as<int>(), 2);
  EXPECT_EQ(n.exec("SELECT count(*) FROM layouts")[0][0].as<int>(), 2);
}

TEST_F(StoreTest, CompleteByAWorkerThatLostTheJobWritesNothing) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ClaimedJob job = SubmitAndClaim(*store, "s1");
  ASSERT_TRUE(store->CancelJob(job.job.id).ok());
  auto path = store->CompleteJob(job.job.id, "w1", job.job.attempts, SamplePlan());
  EXPECT_EQ(path.status().code(), absl::StatusCode::kFailedPrecondition) << path.status();
  auto root = store->ListDirectory("/");
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(root->empty());
  // A failing write (bad extent) rolls the whole release back.
  auto r = store->RetryJob(job.job.id);
  ASSERT_TRUE(r.ok()) << r.status();
  auto again = store->ClaimJob("w2", absl::Seconds(30));
  ASSERT_TRUE(again.ok() && again->has_value());
  ReleasePlan bad = SamplePlan();
  bad.files[1].extents[0].volume = 7;
  EXPECT_EQ(store->CompleteJob(job.job.id, "w2", (*again)->job.attempts, bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(store->ListDirectory("/")->empty());
  EXPECT_EQ(store->GetJob(job.job.id)->state, JobState::kRunning);
}

// ReleaseJob (a worker stopping mid-job) puts the attempt back as if it had
// never been claimed: QUEUED, due now, attempts as before the claim, even on
// the last allowed attempt; only the attempt's own worker can do it.
TEST_F(StoreTest, ReleasedAttemptIsRequeuedUncountedAndOnlyByItsWorker) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  SubmitRecord rec = Record("r1");
  rec.max_attempts = 1;
  auto sub = store->Submit(rec);
  ASSERT_TRUE(sub.ok()) << sub.status();
  auto claimed = store->ClaimJob("w1", absl::Seconds(30));
  ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status();
  const JobRecord& job = (*claimed)->job;
  ASSERT_EQ(job.attempts, 1);
  EXPECT_EQ(store->ReleaseJob(job.id, "w2", job.attempts, "not mine").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->ReleaseJob(job.id, "w1", job.attempts + 1, "stale attempt").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->GetJob(job.id)->state, JobState::kRunning);

  auto released = store->ReleaseJob(job.id, "w1", job.attempts, "stopped; requeued");
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(released->state, JobState::kQueued);
  EXPECT_EQ(released->attempts, 0);
  EXPECT_EQ(released->owner, "");
  EXPECT_EQ(released->message, "stopped; requeued");
  // Twice is refused: the attempt is no longer running.
  EXPECT_EQ(store->ReleaseJob(job.id, "w1", job.attempts, "again").status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Due at once, and its single allowed attempt is still there to use.
  EXPECT_TRUE(*store->HasClaimableJob());
  auto again = store->ClaimJob("w3", absl::Seconds(30));
  ASSERT_TRUE(again.ok() && again->has_value()) << again.status();
  EXPECT_EQ((*again)->job.id, job.id);
  EXPECT_EQ((*again)->job.attempts, 1);
  EXPECT_TRUE(store->CompleteJob(job.id, "w3", 1, SamplePlan()).ok());
  EXPECT_EQ(store->GetJob(job.id)->state, JobState::kCompleted);
}

// Deduplication lasts while the NZB's job is pending or its release is in
// the catalog: after DeletePath of the release (or a failed/cancelled job)
// the same bytes are a fresh job; while it lives they are a duplicate.
TEST_F(StoreTest, ResubmitAfterDeletePathIsAFreshJob) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ClaimedJob first = SubmitAndClaim(*store, "same");
  auto running = store->Submit(Record("same"));
  ASSERT_TRUE(running.ok()) << running.status();
  EXPECT_TRUE(running->duplicate);  // running
  EXPECT_EQ(running->job_id, first.job.id);
  ASSERT_TRUE(store->CompleteJob(first.job.id, "w1", first.job.attempts, SamplePlan()).ok());
  auto completed = store->Submit(Record("same"));
  ASSERT_TRUE(completed.ok());
  EXPECT_TRUE(completed->duplicate);  // its release is in the catalog
  EXPECT_EQ(completed->job_id, first.job.id);
  // Deleting one file leaves the release: still a duplicate.
  ASSERT_TRUE(store->DeletePath("/movies/Big.Movie/movie.mkv").ok());
  EXPECT_TRUE(store->Submit(Record("same"))->duplicate);

  ASSERT_TRUE(store->DeletePath("/movies/Big.Movie").ok());
  auto fresh = store->Submit(Record("same"));
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_FALSE(fresh->duplicate);
  EXPECT_NE(fresh->job_id, first.job.id);
  auto queued = store->GetJob(fresh->job_id);
  ASSERT_TRUE(queued.ok());
  EXPECT_EQ(queued->state, JobState::kQueued);
  EXPECT_EQ(queued->attempts, 0);
  EXPECT_EQ(queued->nzb_sha256, "same");
  // The old job stays as history, completed.
  EXPECT_EQ(store->GetJob(first.job.id)->state, JobState::kCompleted);
  // The fresh job is the one later submits find.
  auto again = store->Submit(Record("same"));
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->job_id, fresh->job_id);
  // It imports to the same path (the old release is gone).
  auto claimed = store->ClaimJob("w1", absl::Seconds(30));
  ASSERT_TRUE(claimed.ok() && claimed->has_value());
  EXPECT_EQ((*claimed)->job.id, fresh->job_id);
  auto path = store->CompleteJob(fresh->job_id, "w1", (*claimed)->job.attempts, SamplePlan());
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, "/movies/Big.Movie");

  // A cancelled job does not block a new submit either.
  auto other = store->Submit(Record("other"));
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(store->CancelJob(other->job_id).ok());
  auto other2 = store->Submit(Record("other"));
  ASSERT_TRUE(other2.ok());
  EXPECT_FALSE(other2->duplicate);
  EXPECT_NE(other2->job_id, other->job_id);
  pqxx::connection c(db_->url());
  pqxx::nontransaction n(c);
  EXPECT_EQ(n.exec("SELECT count(*) FROM nzbs")[0][0].as<int>(), 2);  // NZB bytes stored once per hash
  EXPECT_EQ(n.exec("SELECT count(*) FROM jobs")[0][0].as<int>(), 4);
}

// M4 under concurrency, for a new NZB and for one whose release was deleted:
// many submitters at once make exactly one job.
TEST_F(StoreTest, ConcurrentResubmitsAfterDeleteMakeOneJob) {
  auto setup = Open();
  ASSERT_NE(setup, nullptr);
  constexpr int kSubmitters = 8;
  std::vector<std::unique_ptr<Store>> stores;
  for (int i = 0; i < kSubmitters; ++i) {
    stores.push_back(Open());
    ASSERT_NE(stores.back(), nullptr);
  }
  auto storm = [&]() {
    std::vector<absl::StatusOr<SubmitResult>> results(kSubmitters, absl::UnknownError("not run"));
    std::vector<std::thread> threads;
    for (int i = 0; i < kSubmitters; ++i) {
      threads.emplace_back([&, i] { results[i] = stores[i]->Submit(Record("storm")); });
    }
    for (auto& t : threads) t.join();
    int fresh = 0;
    std::set<int64_t> ids;
    for (const auto& r : results) {
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok()) continue;
      if (!r->duplicate) ++fresh;
      ids.insert(r->job_id);
    }
    EXPECT_EQ(fresh, 1);
    EXPECT_EQ(ids.size(), 1u);
    return ids.empty() ? int64_t{0} : *ids.begin();
  };
  const int64_t first = storm();
  auto claimed = setup->ClaimJob("w1", absl::Seconds(30));
  ASSERT_TRUE(claimed.ok() && claimed->has_value());
  ASSERT_TRUE(setup->CompleteJob(first, "w1", (*claimed)->job.attempts, SamplePlan()).ok());
  ASSERT_TRUE(setup->DeletePath("/movies").ok());
  const int64_t second = storm();
  EXPECT_NE(second, first);
  pqxx::connection c(db_->url());
  pqxx::nontransaction n(c);
  EXPECT_EQ(n.exec("SELECT count(*) FROM jobs")[0][0].as<int>(), 2);
  EXPECT_EQ(n.exec("SELECT count(*) FROM jobs WHERE state = 'queued'")[0][0].as<int>(), 1);
}

TEST_F(StoreTest, HealthRecordsUpdateTheEntry) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ClaimedJob job = SubmitAndClaim(*store, "s1");
  ASSERT_TRUE(store->CompleteJob(job.job.id, "w1", job.job.attempts, SamplePlan()).ok());
  auto due = store->FilesForHealthCheck(10, absl::Now());
  ASSERT_TRUE(due.ok()) << due.status();
  ASSERT_EQ(due->size(), 2u);
  ASSERT_TRUE(store->RecordHealth((*due)[0].file_id, Health::kDegraded, 5, 1, "1 of 5 missing").ok());
  auto e = store->Stat((*due)[0].path);
  EXPECT_EQ(e->health, Health::kDegraded);
  auto due2 = store->FilesForHealthCheck(10, absl::Now() - absl::Hours(1));
  ASSERT_TRUE(due2.ok());
  EXPECT_EQ(due2->size(), 1u);  // the checked one is not due for an hour
  // Sub-second precision: a verdict recorded a moment ago is older than
  // now (whole seconds would hide it until the next second).
  auto due3 = store->FilesForHealthCheck(10, absl::Now());
  ASSERT_TRUE(due3.ok());
  EXPECT_EQ(due3->size(), 2u);
}

}  // namespace
}  // namespace nzbmesh::importer
