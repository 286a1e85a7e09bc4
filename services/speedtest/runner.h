// One speed-test run of one provider, through the broker's SPEEDTEST class.
//
// Workers (one thread each, `concurrency` of them) fetch the test articles in
// order, cycling, until the duration or the byte budget is reached, the run
// is cancelled, or a whole pass produced no byte from the provider under
// test. Only bytes served by that provider count (SegmentMetadata.provider):
// FetchSegmentRequest names no provider, so an article the broker served from
// another provider is skipped, neither counted nor an error. Time to first
// byte is measured from the call's start to its first response (it includes
// queueing at the broker: a speed test yields to every other class).
// The calling thread reports progress every `progress_interval` and samples
// GetPoolStatus for the connections really used.
#ifndef NZBMESH_SERVICES_SPEEDTEST_RUNNER_H_
#define NZBMESH_SERVICES_SPEEDTEST_RUNNER_H_

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nzbmesh/broker/v1/broker.grpc.pb.h"
#include "nzbmesh/speedtest/v1/speedtest.pb.h"

namespace nzbmesh::speedtest {

struct RunSpec {
  std::string provider;                  // name in the broker's pool
  std::vector<std::string> message_ids;  // test articles; must not be empty
  absl::Duration duration = absl::Seconds(10);  // > 0
  int64_t max_bytes = 0;                 // 0 = no byte limit
  int concurrency = 0;                   // concurrent fetches; 0 = max_connections × pipeline_depth
  absl::Duration progress_interval = absl::Milliseconds(250);
  absl::Duration status_timeout = absl::Seconds(5);  // GetPoolStatus deadline
};

// Executes one run. `progress` runs on the calling thread. `cancel` (may be
// null) stops the run early; a cancelled run returns CANCELLED. Errors:
// NOT_FOUND (provider not in the broker's pool), UNAVAILABLE (broker down),
// INVALID_ARGUMENT.
absl::StatusOr<v1::SpeedTestResult> ExecuteRun(nzbmesh::broker::v1::Broker::StubInterface* broker,
                                               const RunSpec& spec,
                                               const std::function<void(const v1::SpeedTestProgress&)>& progress,
                                               const std::atomic<bool>* cancel);

// Nearest-rank percentile (q in [0, 1]) of unsorted samples; 0 when empty.
double Percentile(std::vector<double> samples, double q);

}  // namespace nzbmesh::speedtest

#endif  // NZBMESH_SERVICES_SPEEDTEST_RUNNER_H_
