// gRPC face of the speed test: thin handlers over SpeedTester.
// RunSpeedTest is a callback ServerWriteReactor per call: progress is
// coalesced (a slow reader sees the latest progress, never a backlog), the
// final message is always delivered, and OnCancel unsubscribes (the last
// subscriber leaving cancels the run).
#ifndef NZBMESH_SERVICES_SPEEDTEST_SPEEDTEST_SERVICE_H_
#define NZBMESH_SERVICES_SPEEDTEST_SPEEDTEST_SERVICE_H_

#include <string>

#include "nzbmesh/speedtest/v1/speedtest.grpc.pb.h"
#include "services/speedtest/speed_tester.h"

namespace nzbmesh::speedtest {

class SpeedTestService final : public v1::SpeedTest::CallbackService {
 public:
  // `tester` must outlive the service.
  explicit SpeedTestService(SpeedTester* tester) : tester_(tester) {}

  grpc::ServerWriteReactor<v1::SpeedTestProgress>* RunSpeedTest(grpc::CallbackServerContext* ctx,
                                                                const v1::RunSpeedTestRequest* req) override;
  grpc::ServerUnaryReactor* ListResults(grpc::CallbackServerContext* ctx, const v1::ListResultsRequest* req,
                                        v1::ListResultsResponse* resp) override;

 private:
  SpeedTester* const tester_;
};

// The caller identity used for rate limiting: the peer's address without its
// port ("ipv4:127.0.0.1:53211" → "ipv4:127.0.0.1").
std::string CallerOf(const std::string& peer);

}  // namespace nzbmesh::speedtest

#endif  // NZBMESH_SERVICES_SPEEDTEST_SPEEDTEST_SERVICE_H_
