// Store: the importer's PostgreSQL database and the only place with SQL.
//
// Owns a small pool of libpqxx connections (reconnecting lazily: a connection
// that broke is dropped and the next call dials a fresh one), the versioned
// schema migrations (applied at Create() under pg_advisory_lock, so several
// importers starting at once migrate exactly once), the import queue, the
// catalog of virtual files and health records.
//
// Errors: every libpqxx exception is caught here and mapped once
// (MapPqxxException): broken_connection → UNAVAILABLE, unique_violation →
// ALREADY_EXISTS, in_doubt_error → UNKNOWN (the commit may or may not have
// happened: never retried), serialization/deadlock → ABORTED, others →
// INTERNAL. A call whose connection broke before its commit was sent is
// retried `broken_connection_retries` times on a fresh connection (the
// transaction was rolled back by the server, so this is safe).
//
// Catalog layout: entries (directories and files, one row per path) plus one
// row per file holding its layout as a compact text blob ("<id> <size>\n" per
// segment, offsets being prefix sums). GetFileLayout of a 70,000-segment file
// is then two index lookups and one ~3 MB value instead of 70,000 rows; a
// 10M-segment catalog is ~150 such rows (see tests/services/importer
// layout_benchmark.cc for numbers). Archive members keep extents over
// release-level volumes, each volume with its own segment blob.
//
// Threading: thread-safe. Each call takes a pooled connection for its
// duration (blocking up to Options::acquire_timeout when all are busy).
#ifndef NZBMESH_SERVICES_IMPORTER_STORE_H_
#define NZBMESH_SERVICES_IMPORTER_STORE_H_

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/metrics/metrics.h"

namespace nzbmesh::importer {

// Values match nzbmesh.importer.v1.JobState.
enum class JobState { kQueued = 1, kRunning = 2, kCompleted = 3, kFailed = 4, kCancelled = 5 };
// Values match nzbmesh.importer.v1.FailureReason.
enum class FailureReason {
  kNone = 0,
  kMissingArticles = 1,
  kUnsupportedArchive = 2,
  kBadNzb = 3,
  kProviderUnavailable = 4,
  kInternal = 5,
};
// Values match nzbmesh.importer.v1.Health.
enum class Health { kUnknown = 0, kHealthy = 1, kDegraded = 2, kBroken = 3 };

const char* JobStateName(JobState s);          // "queued", ...
const char* FailureReasonName(FailureReason r);  // "missing_articles", ... ("" for kNone)
const char* HealthName(Health h);

struct JobRecord {
  int64_t id = 0;
  JobState state = JobState::kQueued;
  std::string name;
  std::string category;
  int priority = 0;
  int attempts = 0;      // claims so far (the running one included)
  int max_attempts = 3;
  FailureReason reason = FailureReason::kNone;
  std::string message;
  std::string nzb_sha256;  // lower-case hex
  std::string filename;
  std::string password;    // never logged
  absl::Time created;
  absl::Time updated;
  std::string owner;
  double progress = 0;
  std::string catalog_path;
  absl::Time next_attempt;
};

struct SubmitRecord {
  std::string nzb;          // XML bytes
  std::string sha256_hex;   // of `nzb`
  std::string filename;
  std::string category;     // already sanitised, non-empty
  std::string name;         // release name, already sanitised, non-empty
  std::string password;
  int priority = 0;
  int max_attempts = 3;
};

struct SubmitResult {
  int64_t job_id = 0;
  // An NZB with this SHA-256 has a job that is queued or running, or that
  // completed and whose release (or part of it) is still in the catalog;
  // job_id is that job.
  bool duplicate = false;
};

// A job handed to a worker by ClaimJob.
struct ClaimedJob {
  JobRecord job;
  std::string nzb;  // XML bytes
};

// One article of a plain file or an archive volume. Offsets are prefix sums.
struct SegmentRef {
  std::string message_id;
  int64_t size = 0;  // decoded bytes
};

struct VolumePlan {
  std::string name;
  int64_t size = 0;
  std::vector<SegmentRef> segments;
};

struct ExtentPlan {
  int volume = 0;  // index into ReleasePlan::volumes
  int64_t volume_offset = 0;
  int64_t file_offset = 0;
  int64_t length = 0;
};

struct FilePlan {
  std::string name;  // sanitised, unique within the release; may contain '/'
                     // for archive members in sub-directories
  int64_t size = 0;
  absl::Time mtime = absl::UnixEpoch();
  // Exactly one of these is used: segments for a plain file, extents for an
  // archive member.
  std::vector<SegmentRef> segments;
  std::vector<ExtentPlan> extents;
};

// Everything a completed job adds to the catalog, written in one transaction.
struct ReleasePlan {
  std::string category;  // sanitised path component
  std::string release;   // sanitised path component; suffixed " (2)"... on clash
  std::vector<VolumePlan> volumes;
  std::vector<FilePlan> files;
};

struct CatalogEntry {
  int64_t id = 0;
  std::string path;
  std::string name;
  bool directory = false;
  int64_t size = 0;
  absl::Time mtime = absl::UnixEpoch();
  Health health = Health::kUnknown;
  std::string etag;
};

struct LayoutSegment {
  std::string message_id;
  int64_t offset = 0;
  int64_t size = 0;
};

struct LayoutVolume {
  std::string name;
  int64_t size = 0;
  std::vector<LayoutSegment> segments;
};

struct LayoutExtent {
  int volume = 0;  // index into FileLayoutRecord::volumes
  int64_t volume_offset = 0;
  int64_t file_offset = 0;
  int64_t length = 0;
};

struct FileLayoutRecord {
  CatalogEntry entry;
  std::vector<LayoutSegment> segments;
  std::vector<LayoutVolume> volumes;
  std::vector<LayoutExtent> extents;
};

// A file due for a health check.
struct HealthCandidate {
  int64_t file_id = 0;
  std::string path;
};

// The NOTIFY channel of job cancels: CancelJob sends the job id on it,
// committed with the state change (CancelWatcher listens).
inline constexpr char kJobCancelledChannel[] = "nzbmesh_job_cancelled";

class Store {
 public:
  struct Options {
    // libpq URL, e.g. postgresql://user@host:5432/db. Never logged.
    std::string url;
    // Connections kept open at most; calls beyond wait up to acquire_timeout.
    int max_connections = 8;
    // How long a call waits for a free connection; then UNAVAILABLE.
    absl::Duration acquire_timeout = absl::Seconds(30);
    // libpq connect_timeout (seconds, rounded up); 0 = libpq default (forever).
    absl::Duration connect_timeout = absl::Seconds(5);
    // Retries of a call whose connection broke before it committed. 0 = none.
    int broken_connection_retries = 1;
    // Run migrations in Create(). Turned off only by tests of the migrator.
    bool migrate = true;
    // nzbmesh_importer_db_errors_total{code}; null = no metrics.
    metrics::Registry* registry = nullptr;
  };

  // Connects once (failing fast with UNAVAILABLE when the database is
  // unreachable) and applies pending migrations.
  static absl::StatusOr<std::unique_ptr<Store>> Create(const Options& options);
  ~Store();

  // Applies pending migrations under pg_advisory_lock. Idempotent.
  absl::Status Migrate();
  // Highest applied migration version, and the highest this binary knows.
  absl::StatusOr<int> SchemaVersion();
  static int LatestSchemaVersion();

  // --- Queue. ---
  // Stores the NZB (once per SHA-256) and queues a job, or returns the live
  // job of an NZB with the same SHA-256 (duplicate = true; nothing is
  // written; see SubmitResult). Concurrent submits of the same bytes make
  // one job (M4). An NZB whose release was deleted, or whose job failed or
  // was cancelled, gets a new job.
  absl::StatusOr<SubmitResult> Submit(const SubmitRecord& record);
  absl::StatusOr<JobRecord> GetJob(int64_t job_id);
  // Newest first; state nullopt = all; limit <= 0 = 100.
  absl::StatusOr<std::vector<JobRecord>> ListJobs(std::optional<JobState> state, int limit);
  // QUEUED/RUNNING → CANCELLED; finished jobs: FAILED_PRECONDITION. Sends
  // the job id on kJobCancelledChannel in the same transaction.
  absl::StatusOr<JobRecord> CancelJob(int64_t job_id);
  // FAILED/CANCELLED → QUEUED with attempts reset; others: FAILED_PRECONDITION.
  absl::StatusOr<JobRecord> RetryJob(int64_t job_id);

  // True when a queued job is due (cheap; lets workers skip the lease).
  absl::StatusOr<bool> HasClaimableJob();
  // Claims the due queued job with the highest priority (oldest first) with
  // FOR UPDATE SKIP LOCKED, so concurrent claimers never get the same job.
  // The claim expires `lease` from now unless Heartbeat extends it.
  absl::StatusOr<std::optional<ClaimedJob>> ClaimJob(const std::string& owner, absl::Duration lease);
  // Extends the claim and records progress. FAILED_PRECONDITION when the
  // job is no longer this worker's running attempt (cancelled, expired and
  // requeued): the worker must abandon it.
  absl::Status Heartbeat(int64_t job_id, const std::string& owner, int attempt, absl::Duration lease,
                         double progress);
  // Running jobs whose claim expired (their worker died) go back to QUEUED,
  // or to FAILED when their attempts are used up. Returns how many moved.
  absl::StatusOr<int> RequeueExpired(absl::Duration backoff);
  // Ends this worker's attempt with a failure. `transient` failures are
  // requeued after `backoff` while attempts remain. FAILED_PRECONDITION when
  // the attempt is no longer this worker's.
  absl::StatusOr<JobRecord> FailJob(int64_t job_id, const std::string& owner, int attempt, FailureReason reason,
                                    const std::string& message, bool transient, absl::Duration backoff);
  // Gives this worker's running attempt back to the queue as if it had never
  // been claimed: QUEUED, due now, attempts decremented (an interrupted
  // attempt is not a failure and does not use up max_attempts), owner and
  // progress cleared, `message` recorded; the reason of an earlier failed
  // attempt is kept. For a worker that stops mid-job. FAILED_PRECONDITION
  // when the attempt is no longer this worker's (nothing changes then).
  absl::StatusOr<JobRecord> ReleaseJob(int64_t job_id, const std::string& owner, int attempt,
                                       const std::string& message);
  // Writes the release and marks the job COMPLETED in ONE transaction, only
  // if the attempt is still this worker's (else FAILED_PRECONDITION and
  // nothing is written). Returns the catalog path "/<category>/<release>".
  absl::StatusOr<std::string> CompleteJob(int64_t job_id, const std::string& owner, int attempt,
                                          const ReleasePlan& plan);
  // Jobs per state (for the nzbmesh_importer_jobs gauge).
  absl::StatusOr<std::vector<std::pair<JobState, int64_t>>> CountJobsByState();

  // --- Catalog. Paths are "/", "/<category>", "/<category>/<release>", ... ---
  absl::StatusOr<CatalogEntry> Stat(const std::string& path);
  absl::StatusOr<std::vector<CatalogEntry>> ListDirectory(const std::string& path);
  absl::StatusOr<FileLayoutRecord> GetFileLayout(const std::string& path);
  // Removes a file or a directory recursively; returns files removed.
  absl::StatusOr<int64_t> DeletePath(const std::string& path);

  // --- Health. ---
  // Files never checked first, then the least recently checked ones that were
  // checked before `checked_before` (to the microsecond: sweeps may run
  // sub-second intervals).
  absl::StatusOr<std::vector<HealthCandidate>> FilesForHealthCheck(int limit, absl::Time checked_before);
  absl::StatusOr<FileLayoutRecord> GetFileLayoutById(int64_t file_id);
  absl::Status RecordHealth(int64_t file_id, Health health, int checked, int missing, const std::string& detail);

  // Runs one SQL statement in its own transaction through the same error
  // mapping. For tests of the mapping and of the schema; not for production.
  absl::Status ExecuteForTesting(const std::string& sql);

 private:
  explicit Store(const Options& options);

  struct Conn;  // a pqxx::connection (store.cc)
  // UPDATE jobs SET `set_clause` for a job in one of `from_states`; a job in
  // another state is FAILED_PRECONDITION with `refusal`.
  // `notify_channel` (may be null): NOTIFY it with the job id on success.
  absl::StatusOr<JobRecord> TransitionJob(int64_t job_id, const char* op, const char* set_clause,
                                          const char* from_states, const char* refusal,
                                          const char* notify_channel = nullptr);
  // Runs `fn` on a pooled connection with the exception mapping and the
  // broken-connection retry. `fn` must open its own transaction (and so be
  // re-runnable after a rollback).
  absl::Status Run(const char* op, const std::function<absl::Status(Conn&)>& fn);
  absl::StatusOr<std::unique_ptr<Conn>> Acquire();
  void Release(std::unique_ptr<Conn> c);
  std::unique_ptr<Conn> Dial();
  void CountError(const absl::Status& s);

  const Options options_;
  std::string url_;  // options_.url with connect_timeout added
  metrics::Family<metrics::Counter>* errors_ = nullptr;

  absl::Mutex mu_;  // protects the connection pool below
  std::vector<std::unique_ptr<Conn>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;  // idle + lent out
};

// The Status for an exception thrown by libpqxx (or anything else) during
// operation `op`. Exposed for tests.
absl::Status MapPqxxException(const char* op, std::exception_ptr e);

// Path helpers: "/a/b/" → "/a/b"; INVALID_ARGUMENT for relative paths and
// "." / ".." components.
absl::StatusOr<std::string> NormalizeCatalogPath(absl::string_view path);

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_STORE_H_
