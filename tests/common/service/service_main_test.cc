#include "common/service/service_main.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/grpc/credentials.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace nzbmesh {
namespace {

TEST(ServiceMainTest, ServesHealthAndMetricsOnPortZeroAndShutsDown) {
  metrics::Registry registry;
  metrics::BuildCounter().Name("nzbmesh_test_total").Help("t").Register(registry).Add({}).Increment(7);
  ServiceOptions options;
  options.name = "testsvc";
  auto sm = ServiceMain::Start(options, {}, &registry);
  ASSERT_TRUE(sm.ok()) << sm.status();
  ASSERT_GT((*sm)->grpc_port(), 0);
  ASSERT_GT((*sm)->metrics_port(), 0);

  auto channel = MakeChannel(absl::StrCat("127.0.0.1:", (*sm)->grpc_port()), {});
  ASSERT_TRUE(channel.ok());
  auto stub = grpc::health::v1::Health::NewStub(*channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(stub->Check(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  grpc::ClientContext ctx2;
  req.set_service("testsvc");
  ASSERT_TRUE(stub->Check(&ctx2, req, &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  std::string out;
  FILE* p = popen(absl::StrCat("curl -s http://127.0.0.1:", (*sm)->metrics_port(), "/metrics").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  EXPECT_NE(out.find("nzbmesh_test_total 7\n"), std::string::npos) << out;

  bool hook_ran = false;
  (*sm)->OnShutdown([&] { hook_ran = true; });
  (*sm)->Shutdown(absl::Seconds(1));
  (*sm)->Shutdown(absl::Seconds(1));  // idempotent
  EXPECT_TRUE(hook_ran);
  grpc::ClientContext ctx3;
  ctx3.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  EXPECT_FALSE(stub->Check(&ctx3, req, &resp).ok());
}

TEST(ServiceMainTest, ReportsAnAddressInUse) {
  ServiceOptions options;
  options.name = "a";
  auto first = ServiceMain::Start(options, {}, nullptr);
  ASSERT_TRUE(first.ok());
  options.grpc_listen = absl::StrCat("127.0.0.1:", (*first)->grpc_port());
  auto second = ServiceMain::Start(options, {}, nullptr);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("cannot listen for gRPC"), std::string::npos);
}

}  // namespace
}  // namespace nzbmesh
