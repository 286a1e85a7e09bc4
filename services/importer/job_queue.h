// JobQueue: the domain face of the import queue used by the gRPC handlers and
// the watch folder. Validates and normalises a submission (SHA-256 for
// deduplication, sanitised category and release name, NZB <meta> defaults),
// stores it through Store and wakes local workers.
//
// Threading: thread-safe; calls block on the database.
#ifndef NZBMESH_SERVICES_IMPORTER_JOB_QUEUE_H_
#define NZBMESH_SERVICES_IMPORTER_JOB_QUEUE_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "services/importer/importer_metrics.h"
#include "services/importer/store.h"

namespace nzbmesh::importer {

struct Submission {
  std::string nzb;       // XML bytes
  std::string filename;  // original file name ("Show.S01E01.nzb"); release name defaults to it
  std::string category;  // "" = NZB <meta type="category">, else "default"
  std::string name;      // overrides the release name
  std::string password;  // archive password ("" = NZB <meta type="password">)
  int priority = 0;      // higher runs first
};

class JobQueue {
 public:
  struct Options {
    int max_attempts = 3;               // claims per job before it fails for good
    int64_t max_nzb_bytes = 64 << 20;   // larger NZBs: INVALID_ARGUMENT
  };
  // `store` and `metrics` (nullable) must outlive the queue.
  JobQueue(Store* store, Options options, ImporterMetrics* metrics);

  // Queues the NZB, or returns the live job of an identical NZB (M4; see
  // Store::Submit for when a job is live).
  // `source` labels the metric ("grpc", "watch").
  absl::StatusOr<SubmitResult> Submit(const Submission& s, const std::string& source = "grpc");
  absl::StatusOr<JobRecord> Get(int64_t job_id) { return store_->GetJob(job_id); }
  absl::StatusOr<std::vector<JobRecord>> List(std::optional<JobState> state, int limit) {
    return store_->ListJobs(state, limit);
  }
  // Marks the job CANCELLED, then tells the cancel listeners (a worker of
  // this process running it stops at once instead of at its next heartbeat).
  // The CancelWatcher of every importer hears the same cancel through the
  // database too; this in-process path needs neither that round trip nor
  // the watcher's connection.
  absl::StatusOr<JobRecord> Cancel(int64_t job_id);
  absl::StatusOr<JobRecord> Retry(int64_t job_id);

  // Called after every new job (workers use it to stop polling early).
  void AddListener(std::function<void()> on_new_job);
  // Called with the id of every job Cancel() cancelled.
  void AddCancelListener(std::function<void(int64_t job_id)> on_cancelled);

 private:
  void Notify();
  Store* const store_;
  const Options options_;
  ImporterMetrics* const metrics_;
  absl::Mutex mu_;  // protects listeners_
  std::vector<std::function<void()>> listeners_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void(int64_t)>> cancel_listeners_ ABSL_GUARDED_BY(mu_);
};

// Lower-case hex SHA-256.
std::string Sha256Hex(absl::string_view data);

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_JOB_QUEUE_H_
