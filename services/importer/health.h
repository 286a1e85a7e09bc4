// HealthSweeper: a background sweep that STAT-samples catalog files through
// the broker's HEALTH class (which playback pre-empts) and records a verdict
// per file: HEALTHY (every sampled article exists), DEGRADED (none missing,
// but some checks failed at the providers), BROKEN (an article is missing on
// every provider: those bytes cannot be served). Off by default.
//
// Threading: one sweep thread; RunOnce() may also be called directly (tests).
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
  absl::Duration interval = absl::Hours(1);    // between sweeps; also how old a verdict may get
  int sample = 10;                             // articles STATed per file (first, last, random middle); >= 1
  int files_per_sweep = 1000;                  // files checked per sweep at most
  absl::Duration call_timeout = absl::Seconds(60);
};

class HealthSweeper {
 public:
  HealthSweeper(Store* store, BrokerClient* broker, HealthOptions options, ImporterMetrics* metrics);
  ~HealthSweeper();  // Stop()

  void Start();  // no-op unless options.enabled
  void Stop();

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
  absl::Mutex mu_;  // protects stopping_
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_HEALTH_H_
