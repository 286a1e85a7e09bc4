// CancelWatcher: hears every job cancel in the catalog database, whichever
// importer replica took the call, so the worker running the job stops at
// once instead of at its next heartbeat.
//
// Store::CancelJob sends a PostgreSQL NOTIFY on kJobCancelledChannel with the
// job id, committed with the state change. The watcher keeps one dedicated
// connection LISTENing on that channel and calls `on_cancelled(job_id)` on
// its own thread for each. A lost connection is reopened with backoff (100 ms
// doubling to `max_backoff`); a cancel sent while it is down is not heard,
// and the job's heartbeat (which finds the job CANCELLED) still stops it.
//
// Threading: one thread; `on_cancelled` must not block for long.
#ifndef NZBMESH_SERVICES_IMPORTER_CANCEL_WATCHER_H_
#define NZBMESH_SERVICES_IMPORTER_CANCEL_WATCHER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/importer/importer_metrics.h"

namespace nzbmesh::importer {

class CancelWatcher {
 public:
  struct Options {
    std::string database_url;
    // How often the thread looks up from its wait to see Stop().
    absl::Duration stop_check = absl::Milliseconds(200);
    absl::Duration max_backoff = absl::Seconds(10);
  };
  // Starts the thread. `metrics` (may be null; must outlive the watcher) gets
  // whether it is listening and the cancels it hears.
  CancelWatcher(Options options, std::function<void(int64_t job_id)> on_cancelled,
                ImporterMetrics* metrics = nullptr);
  ~CancelWatcher();  // Stop()
  CancelWatcher(const CancelWatcher&) = delete;
  CancelWatcher& operator=(const CancelWatcher&) = delete;

  // Ends the thread (within stop_check) and joins it. Idempotent.
  void Stop();
  // True once the watcher's LISTEN is in place (false after `timeout`).
  bool WaitListening(absl::Duration timeout);
  // Connections opened so far (1 + reconnects).
  int64_t connections() const;

 private:
  void Loop();
  void SetListening(bool on);

  const Options options_;
  const std::function<void(int64_t)> on_cancelled_;
  ImporterMetrics* const metrics_;  // may be null
  mutable absl::Mutex mu_;  // protects the fields below
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool listening_ ABSL_GUARDED_BY(mu_) = false;
  int64_t connections_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_CANCEL_WATCHER_H_
