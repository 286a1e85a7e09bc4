// One speed-test run of one provider, through the broker's SPEEDTEST class.
//
// Workers (one thread each, `concurrency` of them) fetch the test articles in
// order, cycling, until the duration or the byte budget is reached, the run
// is cancelled, or a whole pass produced no byte from the provider under
// test. Requests name the provider (FetchSegmentRequest.provider: no
// failover), and only bytes the metadata says that provider served count. A
// candidate provider (not in the pool) is fetched through the broker's
// FetchCandidateSegment, i.e. a temporary pool inside the broker. Time to first
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
  std::string provider;                  // name in the broker's pool (a label for candidates)
  bool has_candidate = false;            // test `candidate` instead of a pool provider
  nzbmesh::broker::v1::ProviderConfig candidate;
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
