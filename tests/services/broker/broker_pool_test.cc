// Pool behaviours beyond the storm rows: queue limits, reconfiguration
// (SIGHUP), circuit breaker recovery, idle connection closing.
#include "tests/services/broker/storm_fixture.h"

namespace nzbmesh::broker {
namespace {

TEST_F(StormTest, FullClassQueueIsResourceExhaustedAtOnce) {
  FakeNntpServer* server = StartServer();
  auto ids = Post({server}, 1, 1000);
  FakeNntpServer::Gate* gate = server->AddGate("");
  PoolOptions o;
  o.providers = {Provider("main", server, 1, 1)};
  o.max_queue_per_class = 5;
  Pool* pool = MakePool(o);
  Results results;
  for (int i = 0; i < 6; ++i) pool->Fetch(Req(ids[0], TrafficClass::kImport), results.Callback(absl::StrCat(i)));
  ASSERT_TRUE(WaitUntil([&] { return gate->waiting() == 1; }));
  // 1 on the wire + 5 queued: the next one is refused immediately, inline.
  pool->Fetch(Req(ids[0], TrafficClass::kImport), results.Callback("over"));
  EXPECT_EQ(results.done(), 1);
  EXPECT_EQ(results.Get("over").status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(results.Get("over").status.message().find("import queue is full"), std::string::npos);
  // Other classes have their own queues.
  pool->Fetch(Req(ids[0], TrafficClass::kStream), results.Callback("stream"));
  EXPECT_EQ(results.done(), 1);
  gate->ReleaseAll();
  ASSERT_TRUE(results.WaitDone(8));
  EXPECT_TRUE(results.Get("stream").status.ok());
  ExpectNoLeaks();
}

TEST_F(StormTest, ReconfigureAddsRemovesAndResizesWithoutDroppingWork) {
  FakeNntpServer* a = StartServer();
  FakeNntpServer* b = StartServer();
  auto ids = Post({a, b}, 40, 20000);
  FakeNntpServer::Fault slow;
  slow.latency = absl::Milliseconds(30);
  a->SetDefaultFault(slow);
  PoolOptions o;
  o.providers = {Provider("a", a, 2, 1)};
  Pool* pool = MakePool(o);
  Results results;
  for (const auto& id : ids) pool->Fetch(Req(id), results.Callback(id));
  ASSERT_TRUE(WaitUntil([&] { return a->in_flight() == 2; }));
  // Replace "a" by "b" while a's work is in flight and more is queued.
  ASSERT_TRUE(pool->Reconfigure({Provider("b", b, 4, 2)}).ok());
  ASSERT_TRUE(results.WaitDone(40));
  for (const auto& id : ids) {
    FetchResult r = results.Get(id);
    ASSERT_TRUE(r.status.ok()) << id << ": " << r.status;
    ASSERT_EQ(*r.data, data_[id]);
  }
  EXPECT_GT(b->total_commands(), 0);
  ASSERT_TRUE(WaitUntil([&] { return a->current_connections() == 0; }));  // a's connections closed
  // Resize b.
  ASSERT_TRUE(pool->Reconfigure({Provider("b", b, 1, 1)}).ok());
  b->ResetCounters();
  Results more;
  for (const auto& id : ids) pool->Fetch(Req(id), more.Callback(id));
  ASSERT_TRUE(more.WaitDone(40));
  EXPECT_LE(b->max_in_flight(), 1);
  EXPECT_EQ(pool->Status().providers.size(), 1u);
  EXPECT_FALSE(pool->Reconfigure({Provider("x", b, 0, 1)}).ok());  // invalid: rejected, nothing changes
  ExpectNoLeaks();
}

TEST_F(StormTest, BrokenProviderIsFencedThenComesBackByItself) {
  FakeNntpServer* server = StartServer();
  auto ids = Post({server}, 1, 1000);
  PoolOptions o;
  ProviderOptions p = Provider("main", server, 2, 1);
  p.connection.first_byte_timeout = absl::Milliseconds(100);
  o.providers = {p};
  o.breaker_failure_threshold = 3;
  o.breaker_open_time = absl::Milliseconds(300);
  o.attempt_timeout_min = absl::Milliseconds(100);
  Pool* pool = MakePool(o);
  FakeNntpServer::Fault stall;
  stall.stall = true;
  server->SetDefaultFault(stall);
  // Timeouts trip the breaker...
  for (int i = 0; i < 2; ++i) FetchSync(Req(ids[0]));
  ASSERT_TRUE(WaitUntil([&] { return pool->Status().providers[0].breaker == "open"; }, absl::Seconds(5)));
  // ...after which requests fail fast instead of queueing.
  const absl::Time t0 = absl::Now();
  FetchResult fast = FetchSync(Req(ids[0]));
  EXPECT_EQ(fast.status.code(), absl::StatusCode::kUnavailable) << fast.status;
  EXPECT_NE(fast.status.message().find("circuit open"), std::string::npos);
  EXPECT_LT(absl::Now() - t0, absl::Milliseconds(100));
  // The provider recovers; the half-open probe succeeds and the circuit closes.
  server->ClearFaults();
  ASSERT_TRUE(WaitUntil([&] { return pool->Status().providers[0].breaker == "half_open"; }, absl::Seconds(5)));
  FetchResult ok = FetchSync(Req(ids[0]));
  EXPECT_TRUE(ok.status.ok()) << ok.status;
  EXPECT_EQ(pool->Status().providers[0].breaker, "closed");
  ExpectNoLeaks();
}

TEST_F(StormTest, IdleConnectionsCloseAfterIdleTimeout) {
  FakeNntpServer* server = StartServer();
  auto ids = Post({server}, 8, 1000);
  PoolOptions o;
  ProviderOptions p = Provider("main", server, 4, 1);
  p.idle_timeout = absl::Milliseconds(200);
  o.providers = {p};
  Pool* pool = MakePool(o);
  Results results;
  for (const auto& id : ids) pool->Fetch(Req(id), results.Callback(id));
  ASSERT_TRUE(results.WaitDone(8));
  ASSERT_TRUE(WaitUntil([&] { return server->current_connections() == 0; }, absl::Seconds(5)));
  EXPECT_EQ(pool->Status().providers[0].open, 0);
  ExpectNoLeaks();
}

TEST_F(StormTest, StatsPipelineUpToStatPipelineDepthBesideTheBodyPipeline) {
  FakeNntpServer* server = StartServer();
  auto ids = Post({server}, 8, 20000);
  FakeNntpServer::Fault slow;
  slow.latency = absl::Milliseconds(30);
  server->SetDefaultFault(slow);
  PoolOptions o;
  ProviderOptions p = Provider("main", server, 1, 2);
  p.stat_pipeline_depth = 16;
  o.providers = {p};
  Pool* pool = MakePool(o);
  Results results;
  for (int i = 0; i < 64; ++i) {
    FetchRequest r = Req(ids[i % 8], TrafficClass::kHealth);
    r.stat_only = true;
    pool->Fetch(r, results.Callback(absl::StrCat("stat", i)));
  }
  for (int i = 0; i < 8; ++i) pool->Fetch(Req(ids[i], TrafficClass::kStream), results.Callback(absl::StrCat("body", i)));
  ASSERT_TRUE(results.WaitDone(72));
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(results.Get(absl::StrCat("body", i)).status.ok());
  for (int i = 0; i < 64; ++i) ASSERT_TRUE(results.Get(absl::StrCat("stat", i)).status.ok());
  EXPECT_EQ(server->max_concurrent_connections(), 1);
  EXPECT_LE(server->max_in_flight_per_connection(), 16 + 2);
  EXPECT_GE(server->max_in_flight_per_connection(), 16);  // STATs really pipelined 16 deep
  ExpectNoLeaks();
}

}  // namespace
}  // namespace nzbmesh::broker
