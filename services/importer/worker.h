// WorkerPool: the import workers of one importer process.
//
// Each worker loops: when a queued job is due, acquire the broker import
// lease FIRST (held for the whole job), then claim one job with
// SELECT ... FOR UPDATE SKIP LOCKED (M1), run the pipeline while a heartbeat
// thread extends the claim, and finish with CompleteJob (catalog + COMPLETED
// in one transaction, only if the claim is still ours: M2) or FailJob
// (classified reason; transient failures requeued with exponential backoff
// while attempts remain). A heartbeat that finds the job cancelled or
// re-claimed stops the pipeline. A janitor thread requeues jobs whose claims
// expired because their worker died (M2) and refreshes the jobs gauge.
//
// Stop contract (SIGTERM): Stop() cancels, through one CallCanceller, every
// broker call of every worker at once (lease waits, STAT samples, fetches),
// so no worker waits out a call_timeout. A job whose pipeline then fails is
// given back with Store::ReleaseJob (QUEUED, due now, the attempt not
// counted); a job whose analysis had already finished is still completed.
// Nothing partial reaches the catalog (it is written only by CompleteJob, in
// one transaction). Each worker then drops its import lease, which the broker
// frees at once, and exits; Stop() returns once all threads joined.
//
// Threads: `workers` worker threads, one heartbeat thread per running job,
// one janitor thread. All block on the database or the broker; none holds mu_
// while doing so.
#ifndef NZBMESH_SERVICES_IMPORTER_WORKER_H_
#define NZBMESH_SERVICES_IMPORTER_WORKER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/importer/broker_client.h"
#include "services/importer/importer_metrics.h"
#include "services/importer/pipeline.h"
#include "services/importer/store.h"

namespace nzbmesh::importer {

struct WorkerOptions {
  // Worker threads (jobs run at once by this process). 0 = no workers (an
  // API-only importer).
  int workers = 2;
  // Identity of this process in jobs.owner; "" = "<hostname>-<pid>-<random>".
  std::string owner;
  // How often a running job's claim is extended.
  absl::Duration heartbeat_interval = absl::Seconds(5);
  // A claim not extended for this long is presumed dead and requeued.
  absl::Duration heartbeat_timeout = absl::Seconds(30);
  // How often idle workers look for due jobs (local submissions wake them at once).
  absl::Duration poll_interval = absl::Seconds(1);
  // Delay before the first retry of a transient failure; doubles per attempt.
  absl::Duration retry_backoff = absl::Seconds(30);
  // Wait after the broker refused or failed a lease request.
  absl::Duration broker_retry_delay = absl::Seconds(2);
};

class WorkerPool {
 public:
  // Everything must outlive the pool; `metrics` may be null.
  WorkerPool(Store* store, BrokerClient* broker, ImportPipeline* pipeline, WorkerOptions options,
             ImporterMetrics* metrics);
  ~WorkerPool();  // Stop()

  void Start();
  // Stops claiming, cancels running jobs (requeued at once, attempts not
  // counted; see the stop contract above), releases the leases and joins.
  // Idempotent.
  void Stop();
  // A job was queued: idle workers look now instead of at the next poll.
  void Wake();
  // The job was cancelled through the API (already CANCELLED in the store):
  // if a worker of this process runs it, its pipeline stops now — its broker
  // calls (lease, STATs, fetches) return CANCELLED at once — instead of at
  // the next heartbeat, and the attempt is abandoned (nothing written).
  // Returns whether this process was running it. Each importer's
  // CancelWatcher calls it for cancels any replica took; without one (or
  // while its database connection is down) a job another process cancelled
  // stops at its next heartbeat.
  bool CancelRunning(int64_t job_id);

  const std::string& owner() const { return owner_; }
  // Job attempts this process finished (completed, failed or requeued).
  int64_t attempts_finished() const { return attempts_finished_.load(); }

 private:
  void WorkerLoop(int index);
  void RunJob(const std::string& owner, ClaimedJob claimed);
  void JanitorLoop();
  // Waits up to `d` or until Wake()/Stop(). Returns false when stopping.
  bool Idle(absl::Duration d);

  Store* const store_;
  BrokerClient* const broker_;
  ImportPipeline* const pipeline_;
  const WorkerOptions options_;
  ImporterMetrics* const metrics_;
  std::string owner_;

  std::atomic<bool> stopping_{false};
  // Every broker call of the workers is made with it; Stop() cancels it.
  CallCanceller calls_;
  std::atomic<int64_t> attempts_finished_{0};
  absl::Mutex mu_;  // protects wake_seq_, started_ and running_
  int64_t wake_seq_ ABSL_GUARDED_BY(mu_) = 0;
  // Jobs running now: what CancelRunning() stops.
  struct RunningJob {
    std::atomic<bool>* cancelled;   // the pipeline checks it between steps
    std::atomic<bool>* by_api;      // CancelRunning() set `cancelled`
    CallCanceller* calls;           // the job's broker calls
  };
  std::map<int64_t, RunningJob> running_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_WORKER_H_
