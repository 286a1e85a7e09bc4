// The speed-test service end to end: a real broker (gRPC, real Pool) in front
// of the fake news server, the speed-test gRPC service in front of it, and a
// real PostgreSQL database per test. T1–T3 of docs/INVARIANTS.md.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/metrics/metrics.h"
#include "common/service/service_main.h"
#include "common/time/clock.h"
#include "nzbmesh/broker/v1/broker.grpc.pb.h"
#include "nzbmesh/speedtest/v1/speedtest.grpc.pb.h"
#include "services/broker/broker_service.h"
#include "services/broker/candidate_pools.h"
#include "services/broker/pool.h"
#include "services/speedtest/result_store.h"
#include "services/speedtest/runner.h"
#include "services/speedtest/speed_tester.h"
#include "services/speedtest/speedtest_service.h"
#include "tests/fakes/nntp_server/nntp_server.h"
#include "tests/services/speedtest/test_database.h"

namespace nzbmesh::speedtest {
namespace {

using ::nzbmesh::testing::FakeNntpServer;
namespace bv1 = ::nzbmesh::broker::v1;

constexpr int64_t kArticleBytes = 128 * 1024;

struct Outcome {
  grpc::Status status;
  std::vector<v1::SpeedTestProgress> progress;  // non-final messages
  v1::SpeedTestResult result;                   // from the final message
  bool got_final = false;
};

class SpeedTestServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = nzbmesh::testing::TestDatabase::Create("speedtest");
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    auto store = PgResultStore::Create(db_->url());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  FakeNntpServer* StartServer() {
    auto s = FakeNntpServer::Start({});
    EXPECT_TRUE(s.ok()) << s.status();
    servers_.push_back(std::move(*s));
    return servers_.back().get();
  }

  std::vector<std::string> Post(FakeNntpServer* server, const std::string& prefix, int n,
                                int64_t size = kArticleBytes) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
      std::string id = absl::StrCat(prefix, "-", i, "@speed.test");
      server->PostYencArticle(id, std::string(size, static_cast<char>('A' + i % 26)), absl::StrCat(prefix, i, ".bin"));
      ids.push_back(id);
    }
    return ids;
  }

  static broker::ProviderOptions Provider(const std::string& name, FakeNntpServer* s, int max_conn, int depth,
                                          bool backup = false) {
    broker::ProviderOptions p;
    p.name = name;
    p.connection.host = "127.0.0.1";
    p.connection.port = s->port();
    p.max_connections = max_conn;
    p.pipeline_depth = depth;
    p.backup = backup;
    return p;
  }

  void StartBroker(broker::PoolOptions o) {
    o.random_seed = 42;
    auto pool = broker::Pool::Create(o, &broker_registry_);
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = std::move(*pool);
    candidates_ = std::move(*broker::CandidatePools::Create({}));
    broker_service_ = std::make_unique<broker::BrokerService>(pool_.get(), candidates_.get());
    ServiceOptions so;
    so.name = "broker";
    so.metrics_listen = "";
    auto sm = ServiceMain::Start(so, {broker_service_.get()}, &broker_registry_);
    ASSERT_TRUE(sm.ok()) << sm.status();
    broker_sm_ = std::move(*sm);
    broker_sm_->OnShutdown([this] { broker_service_->EndLongLivedCalls(); });
    broker_stub_ = bv1::Broker::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", broker_sm_->grpc_port()),
                                                            grpc::InsecureChannelCredentials()));
  }

  void StartSpeedTest(SpeedTesterOptions o) {
    o.clock = &clock_;
    tester_ = std::make_unique<SpeedTester>(o, broker_stub_.get(), store_.get(), &registry_);
    service_ = std::make_unique<SpeedTestService>(tester_.get());
    ServiceOptions so;
    so.name = "speedtest";
    so.metrics_listen = "";
    auto sm = ServiceMain::Start(so, {service_.get()}, &registry_);
    ASSERT_TRUE(sm.ok()) << sm.status();
    sm_ = std::move(*sm);
    stub_ = v1::SpeedTest::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", sm_->grpc_port()), grpc::InsecureChannelCredentials()));
  }

  Outcome Run(const v1::RunSpeedTestRequest& req, grpc::ClientContext* ctx = nullptr) {
    grpc::ClientContext local;
    if (ctx == nullptr) ctx = &local;
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    Outcome out;
    auto reader = stub_->RunSpeedTest(ctx, req);
    v1::SpeedTestProgress p;
    while (reader->Read(&p)) {
      if (p.final()) {
        EXPECT_FALSE(out.got_final) << "two final messages";
        out.got_final = true;
        out.result = p.result();
      } else {
        EXPECT_FALSE(out.got_final) << "progress after the final message";
        out.progress.push_back(p);
      }
    }
    out.status = reader->Finish();
    return out;
  }

  static v1::RunSpeedTestRequest Req(const std::string& provider, double seconds, int64_t bytes,
                                     int connections = 0, bool force = false) {
    v1::RunSpeedTestRequest r;
    r.set_provider(provider);
    r.set_duration_seconds(seconds);
    r.set_bytes(bytes);
    r.set_connections(connections);
    r.set_force(force);
    return r;
  }

  int TotalCalls(FakeNntpServer* s, const std::vector<std::string>& ids) {
    int n = 0;
    for (const auto& id : ids) n += s->calls(id);
    return n;
  }

  void TearDown() override {
    if (sm_) sm_->Shutdown(absl::Seconds(2));
    tester_.reset();  // joins run threads before the broker goes away
    if (broker_sm_) broker_sm_->Shutdown(absl::Seconds(2));
    if (pool_) pool_->Shutdown();
    for (auto& s : servers_) s->Stop();
  }

  SimulatedClock clock_;
  std::unique_ptr<nzbmesh::testing::TestDatabase> db_;
  std::unique_ptr<PgResultStore> store_;
  std::vector<std::unique_ptr<FakeNntpServer>> servers_;
  metrics::Registry broker_registry_, registry_;
  std::unique_ptr<broker::Pool> pool_;
  std::unique_ptr<broker::CandidatePools> candidates_;
  std::unique_ptr<broker::BrokerService> broker_service_;
  std::unique_ptr<ServiceMain> broker_sm_;
  std::unique_ptr<bv1::Broker::Stub> broker_stub_;
  std::unique_ptr<SpeedTester> tester_;
  std::unique_ptr<SpeedTestService> service_;
  std::unique_ptr<ServiceMain> sm_;
  std::unique_ptr<v1::SpeedTest::Stub> stub_;
};

TEST_F(SpeedTestServiceTest, StreamsProgressThenReportsThroughputTtfbAndHistory) {
  FakeNntpServer* server = StartServer();
  auto ids = Post(server, "prog", 6);
  FakeNntpServer::Fault slow;
  slow.latency = absl::Milliseconds(20);
  server->SetDefaultFault(slow);
  broker::PoolOptions po;
  po.providers = {Provider("main", server, 2, 1)};
  StartBroker(po);
  SpeedTesterOptions o;
  o.message_ids["main"] = ids;
  o.progress_interval = absl::Milliseconds(50);
  o.max_runs_per_caller = 0;
  StartSpeedTest(o);

  Outcome out = Run(Req("main", 0.6, 0));
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  ASSERT_TRUE(out.got_final);
  EXPECT_GE(out.progress.size(), 2u);
  for (size_t i = 1; i < out.progress.size(); ++i) {
    EXPECT_GE(out.progress[i].bytes(), out.progress[i - 1].bytes());
  }
  const v1::SpeedTestResult& r = out.result;
  EXPECT_EQ(r.provider(), "main");
  EXPECT_FALSE(r.cached());
  EXPECT_GT(r.articles(), 0);
  EXPECT_EQ(r.bytes() % kArticleBytes, 0) << "only whole articles finish before the deadline";
  EXPECT_GE(r.bytes(), r.articles() * kArticleBytes);
  EXPECT_GT(r.megabytes_per_second(), 0);
  EXPECT_GE(r.ttfb_median_seconds(), 0.019);
  EXPECT_GE(r.ttfb_p95_seconds(), r.ttfb_median_seconds());
  EXPECT_EQ(r.errors(), 0);
  EXPECT_EQ(r.missing(), 0);
  EXPECT_GE(r.connections_used(), 1);
  EXPECT_LE(r.connections_used(), 2);
  EXPECT_LE(server->max_concurrent_connections(), 2);

  grpc::ClientContext ctx;
  v1::ListResultsRequest lr;
  lr.set_provider("main");
  v1::ListResultsResponse resp;
  ASSERT_TRUE(stub_->ListResults(&ctx, lr, &resp).ok());
  ASSERT_EQ(resp.results_size(), 1);
  EXPECT_EQ(resp.results(0).bytes(), r.bytes());
  EXPECT_EQ(resp.results(0).started_unix_ms(), r.started_unix_ms());
}

TEST_F(SpeedTestServiceTest, T1_ConcurrentCallsForOneProviderShareOneRun) {
  FakeNntpServer* server = StartServer();
  auto ids = Post(server, "dedupe", 8);
  FakeNntpServer::Gate* gate = server->AddGate("");
  broker::PoolOptions po;
  po.providers = {Provider("main", server, 2, 1)};
  StartBroker(po);
  SpeedTesterOptions o;
  o.message_ids["main"] = ids;
  o.max_runs_per_caller = 1;  // joins are not runs: five callers, one start
  StartSpeedTest(o);

  constexpr int kCallers = 5;
  std::vector<Outcome> outs(kCallers);
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] { outs[i] = Run(Req("main", 30, 8 * kArticleBytes, 2)); });
  }
  // Every caller is attached to the one run while its replies are held.
  ASSERT_TRUE(server->WaitFor(
      [&] {
        auto st = tester_->GetStats();
        return st.runs == 1 && st.deduplicated == kCallers - 1;
      },
      absl::Seconds(20)));
  gate->ReleaseAll();
  for (auto& t : callers) t.join();

  for (int i = 0; i < kCallers; ++i) {
    ASSERT_TRUE(outs[i].status.ok()) << i << ": " << outs[i].status.error_message();
    ASSERT_TRUE(outs[i].got_final);
    EXPECT_EQ(outs[i].result.started_unix_ms(), outs[0].result.started_unix_ms());
    EXPECT_EQ(outs[i].result.bytes(), outs[0].result.bytes());
  }
  EXPECT_GE(outs[0].result.bytes(), 8 * kArticleBytes);
  auto st = tester_->GetStats();
  EXPECT_EQ(st.runs, 1);
  EXPECT_EQ(st.deduplicated, kCallers - 1);
  EXPECT_EQ(st.rate_limited, 0);
  auto history = tester_->ListResults("main", 0);
  ASSERT_TRUE(history.ok()) << history.status();
  EXPECT_EQ(history->size(), 1u);
}

TEST_F(SpeedTestServiceTest, T3_HundredCallsWithinResultTtlCauseOneRun) {
  FakeNntpServer* server = StartServer();
  auto ids = Post(server, "cache", 4);
  broker::PoolOptions po;
  po.providers = {Provider("main", server, 2, 1)};
  StartBroker(po);
  SpeedTesterOptions o;
  o.message_ids["main"] = ids;
  o.result_ttl = absl::Seconds(60);
  o.max_runs_per_caller = 2;
  StartSpeedTest(o);

  Outcome first = Run(Req("main", 10, 4 * kArticleBytes, 1));
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  EXPECT_FALSE(first.result.cached());
  const int calls_after_first = TotalCalls(server, ids);

  // A poller hammering the API: 100 calls in 1 s (of simulated time; the real
  // calls take far less).
  for (int i = 0; i < 100; ++i) {
    clock_.AdvanceTime(absl::Milliseconds(10));
    Outcome o2 = Run(Req("main", 10, 4 * kArticleBytes, 1));
    ASSERT_TRUE(o2.status.ok()) << o2.status.error_message();
    ASSERT_TRUE(o2.got_final);
    EXPECT_TRUE(o2.result.cached());
    EXPECT_EQ(o2.result.started_unix_ms(), first.result.started_unix_ms());
    EXPECT_TRUE(o2.progress.empty());
  }
  auto st = tester_->GetStats();
  EXPECT_EQ(st.runs, 1);
  EXPECT_EQ(st.cache_hits, 100);
  EXPECT_EQ(TotalCalls(server, ids), calls_after_first) << "a cached answer touched the news server";

  // Past result_ttl the next call runs again.
  clock_.AdvanceTime(absl::Seconds(60));
  Outcome later = Run(Req("main", 10, 4 * kArticleBytes, 1));
  ASSERT_TRUE(later.status.ok()) << later.status.error_message();
  EXPECT_FALSE(later.result.cached());
  EXPECT_EQ(tester_->GetStats().runs, 2);
}

TEST_F(SpeedTestServiceTest, T2_SpeedTestYieldsToPlaybackAndStaysWithinBudget) {
  FakeNntpServer* server = StartServer();
  auto test_ids = Post(server, "bulk", 20, 64 * 1024);
  auto stream_ids = Post(server, "play", 20, 32 * 1024);
  FakeNntpServer::Fault slow;
  slow.latency = absl::Milliseconds(60);
  for (const auto& id : test_ids) server->SetFault(id, slow);
  broker::PoolOptions po;
  po.providers = {Provider("main", server, 2, 1)};  // C = 2 slots
  po.stream_headroom = 8;                            // one session reserves C - 1 = 1
  StartBroker(po);
  SpeedTesterOptions o;
  o.message_ids["main"] = test_ids;
  o.max_runs_per_caller = 0;
  StartSpeedTest(o);

  // A player holds a stream session, as the frontend does while reading.
  grpc::ClientContext session_ctx;
  auto session = broker_stub_->OpenStreamSession(&session_ctx, bv1::OpenStreamSessionRequest());
  bv1::StreamSessionEvent ev;
  ASSERT_TRUE(session->Read(&ev));
  const uint64_t session_id = ev.session_id();

  auto stream_fetch = [&](const std::string& id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    bv1::FetchSegmentRequest req;
    req.set_message_id(id);
    req.set_traffic_class(bv1::STREAM);
    req.set_stream_session_id(session_id);
    const absl::Time t0 = absl::Now();
    auto reader = broker_stub_->FetchSegment(&ctx, req);
    bv1::FetchSegmentResponse resp;
    int64_t bytes = 0;
    while (reader->Read(&resp)) bytes += resp.data().size();
    EXPECT_TRUE(reader->Finish().ok());
    EXPECT_EQ(bytes, 32 * 1024);
    return absl::ToDoubleSeconds(absl::Now() - t0);
  };
  // Warm up both connections, then the baseline.
  {
    std::thread a([&] { stream_fetch(stream_ids[0]); });
    std::thread b([&] { stream_fetch(stream_ids[1]); });
    a.join();
    b.join();
  }
  std::vector<double> baseline, during;
  for (const auto& id : stream_ids) baseline.push_back(stream_fetch(id));

  Outcome test_out;
  std::thread test([&] { test_out = Run(Req("main", 2.0, 0, /*connections=*/4)); });
  // Wait until the speed test holds its slot at the broker.
  auto speedtest_in_flight = [&] {
    grpc::ClientContext ctx;
    bv1::PoolStatus st;
    EXPECT_TRUE(broker_stub_->GetPoolStatus(&ctx, bv1::GetPoolStatusRequest(), &st).ok());
    for (const auto& c : st.classes()) {
      if (c.traffic_class() == bv1::SPEEDTEST) return c.in_flight();
    }
    return int64_t{0};
  };
  ASSERT_TRUE(server->WaitFor([&] { return speedtest_in_flight() >= 1; }, absl::Seconds(10)));
  int64_t max_speedtest_slots = 0;
  for (const auto& id : stream_ids) {
    during.push_back(stream_fetch(id));
    max_speedtest_slots = std::max(max_speedtest_slots, speedtest_in_flight());
  }
  test.join();
  session_ctx.TryCancel();
  session->Finish();

  ASSERT_TRUE(test_out.status.ok()) << test_out.status.error_message();
  EXPECT_GT(test_out.result.articles(), 0);
  const double base_p50 = Percentile(baseline, 0.5), during_p50 = Percentile(during, 0.5);
  // Unchanged within noise: far below one speed-test article's 60 ms latency,
  // which is what a stream queued behind the test would pay.
  EXPECT_LE(during_p50, base_p50 + 0.015) << "baseline p50 " << base_p50 << " s, during " << during_p50 << " s";
  EXPECT_LT(Percentile(during, 0.95), 0.045);
  EXPECT_LE(max_speedtest_slots, 1) << "the speed test used the slot reserved for playback";
  EXPECT_LE(server->max_concurrent_connections(), 2) << "B1 broken during a speed test";
}

TEST_F(SpeedTestServiceTest, RequestsNameTheTestedProviderSoTheBrokerNeverFailsOver) {
  FakeNntpServer* main = StartServer();
  FakeNntpServer* backup = StartServer();
  auto both = Post(main, "both", 1);
  Post(backup, "both", 1);
  auto only_backup = Post(backup, "elsewhere", 1);
  broker::PoolOptions po;
  po.providers = {Provider("main", main, 1, 1), Provider("backup", backup, 1, 1, /*backup=*/true)};
  StartBroker(po);
  SpeedTesterOptions o;
  o.message_ids["main"] = {only_backup[0], both[0]};
  o.max_runs_per_caller = 0;
  StartSpeedTest(o);

  Outcome out = Run(Req("main", 10, kArticleBytes, 1));
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  EXPECT_EQ(out.result.bytes(), kArticleBytes);
  EXPECT_EQ(out.result.articles(), 1);
  EXPECT_EQ(out.result.errors(), 0);
  EXPECT_EQ(out.result.missing(), 1);            // missing on the tested provider...
  EXPECT_EQ(backup->calls(only_backup[0]), 0);  // ...and never fetched from another one
}

TEST_F(SpeedTestServiceTest, T4_CandidateProviderIsTestedThroughTheBrokersTemporaryPool) {
  FakeNntpServer* pooled = StartServer();
  FakeNntpServer* candidate = StartServer();
  auto ids = Post(candidate, "cand", 2);
  broker::PoolOptions po;
  po.providers = {Provider("main", pooled, 1, 1)};
  StartBroker(po);
  SpeedTesterOptions o;
  o.message_ids["trial"] = ids;
  o.max_runs_per_caller = 0;
  StartSpeedTest(o);
  v1::RunSpeedTestRequest req = Req("trial", 10, 2 * kArticleBytes, 2);
  req.mutable_candidate()->set_host("127.0.0.1");
  req.mutable_candidate()->set_port(candidate->port());
  req.mutable_candidate()->set_max_connections(2);
  Outcome out = Run(req);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  EXPECT_GE(out.result.bytes(), 2 * kArticleBytes);
  EXPECT_EQ(pooled->total_commands(), 0);                   // not through the running pool
  EXPECT_LE(candidate->max_concurrent_connections(), 2);    // within the candidate's budget
  EXPECT_GE(candidate->connections_accepted(), 1);
}

TEST_F(SpeedTestServiceTest, MissingArticlesAreCountedAndAllMissingEndsTheRun) {
  FakeNntpServer* server = StartServer();
  broker::PoolOptions po;
  po.providers = {Provider("main", server, 1, 1)};
  StartBroker(po);
  SpeedTesterOptions o;
  o.message_ids["main"] = {"gone-1@x", "gone-2@x"};
  o.max_runs_per_caller = 0;
  StartSpeedTest(o);
  const absl::Time t0 = absl::Now();
  Outcome out = Run(Req("main", 30, 0, 1));
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  EXPECT_EQ(out.result.missing(), 2);
  EXPECT_EQ(out.result.bytes(), 0);
  EXPECT_LT(absl::Now() - t0, absl::Seconds(10)) << "a pass without bytes must end the run";
}

TEST_F(SpeedTestServiceTest, RateLimitPerCallerRefusesNewRunsButNotCachedAnswers) {
  FakeNntpServer* server = StartServer();
  auto ids = Post(server, "rate", 2);
  broker::PoolOptions po;
  po.providers = {Provider("main", server, 1, 1)};
  StartBroker(po);
  SpeedTesterOptions o;
  o.message_ids["main"] = ids;
  o.max_runs_per_caller = 1;
  o.rate_window = absl::Minutes(1);
  StartSpeedTest(o);

  ASSERT_TRUE(Run(Req("main", 10, 2 * kArticleBytes, 1, /*force=*/true)).status.ok());
  Outcome refused = Run(Req("main", 10, 2 * kArticleBytes, 1, /*force=*/true));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.status.error_message().find("rate limit"), std::string::npos) << refused.status.error_message();
  Outcome cached = Run(Req("main", 10, 2 * kArticleBytes, 1));
  ASSERT_TRUE(cached.status.ok()) << cached.status.error_message();
  EXPECT_TRUE(cached.result.cached());
  clock_.AdvanceTime(absl::Minutes(1));
  EXPECT_TRUE(Run(Req("main", 10, 2 * kArticleBytes, 1, /*force=*/true)).status.ok());
  EXPECT_EQ(tester_->GetStats().runs, 2);
  EXPECT_EQ(tester_->GetStats().rate_limited, 1);
}

TEST_F(SpeedTestServiceTest, UnknownProviderAndMissingTestArticlesAreClearErrors) {
  FakeNntpServer* server = StartServer();
  broker::PoolOptions po;
  po.providers = {Provider("main", server, 1, 1)};
  StartBroker(po);
  SpeedTesterOptions o;
  o.message_ids["ghost"] = {"a@b"};
  o.max_runs_per_caller = 0;
  StartSpeedTest(o);
  Outcome ghost = Run(Req("ghost", 1, 0));
  EXPECT_EQ(ghost.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(ghost.status.error_message().find("not in the broker's pool (providers: main)"), std::string::npos)
      << ghost.status.error_message();
  Outcome none = Run(Req("main", 1, 0));
  EXPECT_EQ(none.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(none.status.error_message().find("no test articles configured"), std::string::npos);
  Outcome bad = Run(Req("", 1, 0));
  EXPECT_EQ(bad.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(SpeedTestServiceTest, LastCallerLeavingCancelsTheRun) {
  FakeNntpServer* server = StartServer();
  auto ids = Post(server, "leave", 2);
  FakeNntpServer::Gate* gate = server->AddGate("");
  broker::PoolOptions po;
  po.providers = {Provider("main", server, 1, 1)};
  StartBroker(po);
  SpeedTesterOptions o;
  o.message_ids["main"] = ids;
  o.max_runs_per_caller = 0;
  StartSpeedTest(o);
  grpc::ClientContext ctx;
  Outcome out;
  std::thread t([&] { out = Run(Req("main", 60, 0, 1), &ctx); });
  ASSERT_TRUE(server->WaitFor([&] { return gate->waiting() >= 1; }, absl::Seconds(10)));
  ctx.TryCancel();
  t.join();
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::CANCELLED);
  // The run stops: nothing of it stays queued at the broker, and once the
  // held reply is released (the broker drains it) its slot is free again.
  auto pool_usage = [&](bool in_flight) {
    grpc::ClientContext c;
    bv1::PoolStatus st;
    if (!broker_stub_->GetPoolStatus(&c, bv1::GetPoolStatusRequest(), &st).ok()) return int64_t{-1};
    int64_t n = 0;
    for (const auto& cl : st.classes()) n += in_flight ? cl.in_flight() : cl.queued();
    return n;
  };
  ASSERT_TRUE(server->WaitFor([&] { return pool_usage(false) == 0; }, absl::Seconds(10)));
  EXPECT_EQ(gate->waiting(), 1) << "the cancelled run issued another fetch";
  gate->ReleaseAll();
  ASSERT_TRUE(server->WaitFor([&] { return pool_usage(true) == 0; }, absl::Seconds(10)));
  auto history = tester_->ListResults("main", 0);
  ASSERT_TRUE(history.ok());
  EXPECT_TRUE(history->empty()) << "a cancelled run must not be recorded";
}

TEST(CallerOfTest, StripsThePort) {
  EXPECT_EQ(CallerOf("ipv4:127.0.0.1:53211"), "ipv4:127.0.0.1");
  EXPECT_EQ(CallerOf("ipv6:[::1]:4000"), "ipv6:[::1]");
  EXPECT_EQ(CallerOf("unix:/tmp/s"), "unix:/tmp/s");
}

TEST(PercentileTest, NearestRank) {
  EXPECT_EQ(Percentile({}, 0.5), 0);
  EXPECT_EQ(Percentile({3, 1, 2}, 0.5), 2);
  EXPECT_EQ(Percentile({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.95), 10);
}

}  // namespace
}  // namespace nzbmesh::speedtest
