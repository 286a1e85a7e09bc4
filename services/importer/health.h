// HealthSweeper: a background sweep that STAT-samples catalog files through
// the broker's HEALTH class (which playback pre-empts) and records a verdict
// per file: HEALTHY (every sampled article exists), DEGRADED (none missing,
// but some checks failed at the providers), BROKEN (an article is missing on
// every provider: those bytes cannot be served). Off by default.
//
// Threading: one sweep thread (Start) that runs a sweep, then waits
// `interval` or until Stop(). Stop() also cancels the broker call the sweep
// is blocked in (a HEALTH STAT may queue behind playback for up to
// call_timeout), so it returns promptly; the file being checked keeps its
// previous verdict. RunOnce() may also be called directly (tests); after
// Stop() it checks nothing.
#ifndef NZBMESH_SERVICES_IMPORTER_HEALTH_H_
#define NZBMESH_SERVICES_IMPORTER_HEALTH_H_

#include <atomic>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/importer/broker_client.h"
#include "services/importer/importer_metrics.h"
#include "services/importer/store.h"

namespace nzbmesh::importer {

struct HealthOptions {
  bool enabled = false;                        // health: {enabled: true}
  absl::Duration interval = absl::Hours(1);    // between sweeps; a file is re-checked once its
                                               // verdict is this old (sub-second values work)
  int sample = 10;                             // articles STATed per file (first, last, random middle); >= 1
  int files_per_sweep = 1000;                  // files checked per sweep at most
  absl::Duration call_timeout = absl::Seconds(60);
};

class HealthSweeper {
 public:
  HealthSweeper(Store* store, BrokerClient* broker, HealthOptions options, ImporterMetrics* metrics);
  ~HealthSweeper();  // Stop()

  void Start();  // no-op unless options.enabled
  // Ends the sweep thread and any check in flight, and joins. Idempotent.
  void Stop();
  // Sweeps completed by the sweep thread (for tests and logs).
  int64_t sweeps() const { return sweeps_.load(); }

  struct SweepResult {
    int files = 0, healthy = 0, degraded = 0, broken = 0, skipped = 0;
  };
  // Checks the files that are due now.
  absl::StatusOr<SweepResult> RunOnce();

 private:
  Store* const store_;
  BrokerClient* const broker_;
  const HealthOptions options_;
  ImporterMetrics* const metrics_;
  CallCanceller cancel_;  // cancelled by Stop()
  std::atomic<int64_t> sweeps_{0};
  absl::Mutex mu_;  // protects stopping_
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_HEALTH_H_
