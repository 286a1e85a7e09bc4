// SpeedTester: the speed-test service's domain object. It answers a request
// from the result cache (T3), joins the run already in flight for that
// provider (T1), or starts a run (subject to a per-caller rate limit), and
// fans progress and the final result out to every subscriber.
//
// Cache and dedupe are keyed by provider only: a caller joining a run or
// answered from the cache gets that run's result even if it asked for a
// different duration or byte count. `force` skips the cache (but still joins
// a run in flight, which is as fresh as it gets). Only calls that start a run
// count against the caller's rate limit; cache hits and joins are free.
//
// Threading: each run has one thread (plus its fetch workers, see runner.h).
// Sinks are called on run threads (or inline from Subscribe for cache hits
// and immediate errors), never under mu_. Subscribe/Unsubscribe never block
// on the network.
#ifndef NZBMESH_SERVICES_SPEEDTEST_SPEED_TESTER_H_
#define NZBMESH_SERVICES_SPEEDTEST_SPEED_TESTER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/metrics/metrics.h"
#include "common/time/clock.h"
#include "nzbmesh/broker/v1/broker.grpc.pb.h"
#include "nzbmesh/speedtest/v1/speedtest.pb.h"
#include "services/speedtest/result_store.h"

namespace nzbmesh::speedtest {

struct SpeedTesterOptions {
  // A successful result answers later requests for this long; 0 = no cache.
  absl::Duration result_ttl = absl::Seconds(60);
  // Runs one caller (peer address) may start per rate_window; 0 = unlimited.
  int max_runs_per_caller = 6;
  absl::Duration rate_window = absl::Minutes(1);
  // Run length when the request says 0, and the longest one allowed.
  absl::Duration default_duration = absl::Seconds(10);
  absl::Duration max_duration = absl::Seconds(120);
  // Test articles per provider, and for providers not listed.
  std::map<std::string, std::vector<std::string>> message_ids;
  std::vector<std::string> default_message_ids;
  absl::Duration progress_interval = absl::Milliseconds(250);
  // Cache ages and rate windows (tests pass a SimulatedClock). Measurements
  // always use real time.
  Clock* clock = Clock::Real();
};

class SpeedTester {
 public:
  // Receives one run's progress, then exactly one OnFinal.
  class Sink {
   public:
    virtual ~Sink() = default;
    virtual void OnProgress(const v1::SpeedTestProgress& progress) = 0;
    virtual void OnFinal(const absl::StatusOr<v1::SpeedTestResult>& result) = 0;
  };

  // `broker` must outlive this; `store` may be null (no history).
  SpeedTester(const SpeedTesterOptions& options, nzbmesh::broker::v1::Broker::StubInterface* broker,
              ResultStore* store, metrics::Registry* registry);
  ~SpeedTester();  // cancels runs in flight and waits for their threads

  // Delivers a cached result, joins the run in flight or starts one. Returns a
  // subscription id for Unsubscribe. When it returns an error, `sink` is not
  // called (INVALID_ARGUMENT, FAILED_PRECONDITION: no test articles,
  // RESOURCE_EXHAUSTED: rate limit, UNAVAILABLE: shutting down).
  absl::StatusOr<uint64_t> Subscribe(const v1::RunSpeedTestRequest& request, const std::string& caller,
                                     std::shared_ptr<Sink> sink);
  // The sink gets no more calls (except one already running). When the last
  // subscriber of a run leaves, the run is cancelled. Idempotent.
  void Unsubscribe(const std::string& provider, uint64_t id);

  absl::StatusOr<std::vector<v1::SpeedTestResult>> ListResults(const std::string& provider, int limit);

  struct Stats {
    int64_t runs = 0, deduplicated = 0, cache_hits = 0, rate_limited = 0;
  };
  Stats GetStats();

 private:
  struct Run {
    std::map<uint64_t, std::shared_ptr<Sink>> sinks;
    std::atomic<bool> cancel{false};
  };
  struct Cached {
    v1::SpeedTestResult result;
    absl::Time at;
  };

  void RunMain(std::string provider, std::shared_ptr<Run> run, v1::RunSpeedTestRequest request,
               std::vector<std::string> ids);
  void ReapThreadsLocked(std::vector<std::thread>* to_join) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<std::shared_ptr<Sink>> SinksOf(const std::shared_ptr<Run>& run);

  const SpeedTesterOptions options_;
  nzbmesh::broker::v1::Broker::StubInterface* const broker_;
  ResultStore* const store_;
  Clock* const clock_;

  metrics::Family<metrics::Counter>& runs_family_;
  metrics::Counter& runs_ok_;
  metrics::Counter& runs_failed_;
  metrics::Counter& deduplicated_;
  metrics::Counter& cache_hits_;
  metrics::Counter& rate_limited_;
  metrics::Family<metrics::Gauge>& last_mbps_;
  metrics::Histogram& duration_;

  absl::Mutex mu_;  // protects everything below
  std::map<std::string, std::shared_ptr<Run>> runs_ ABSL_GUARDED_BY(mu_);  // in flight, by provider
  std::map<std::string, Cached> cache_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::deque<absl::Time>> starts_by_caller_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  // Run threads; `done` is set as a thread's last action, then it is joined
  // by the next run start (or the destructor).
  struct RunThread {
    std::shared_ptr<std::atomic<bool>> done;
    std::thread thread;
  };
  std::vector<RunThread> threads_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nzbmesh::speedtest

#endif  // NZBMESH_SERVICES_SPEEDTEST_SPEED_TESTER_H_
