// The broker's gRPC surface end to end: a real gRPC server (ServiceMain) over
// a real Pool against the fake news server.
#include <grpcpp/grpcpp.h>

#include <thread>

#include "common/grpc/credentials.h"
#include "common/service/service_main.h"
#include "nzbmesh/broker/v1/broker.grpc.pb.h"
#include "common/time/clock.h"
#include "services/broker/broker_service.h"
#include "services/broker/candidate_pools.h"
#include "tests/services/broker/storm_fixture.h"

namespace nzbmesh::broker {
namespace {

namespace v1 = ::nzbmesh::broker::v1;

class BrokerServiceTest : public StormTest {
 protected:
  void StartBroker(PoolOptions o) {
    MakePool(o);
    CandidatePoolsOptions co;
    co.clock = &clock_;
    candidates_ = std::move(*CandidatePools::Create(co));
    service_ = std::make_unique<BrokerService>(pool_.get(), candidates_.get());
    ServiceOptions so;
    so.name = "broker";
    auto sm = ServiceMain::Start(so, {service_.get()}, &registry_);
    ASSERT_TRUE(sm.ok()) << sm.status();
    sm_ = std::move(*sm);
    sm_->OnShutdown([this] { service_->EndLongLivedCalls(); });
    stub_ = NewStub();
  }
  std::unique_ptr<v1::Broker::Stub> NewStub() {
    // A fresh channel per stub: a test can break one client without the others.
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", sm_->grpc_port()),
                                             grpc::InsecureChannelCredentials(), args);
    return v1::Broker::NewStub(channel);
  }
  void TearDown() override {
    if (sm_) sm_->Shutdown(absl::Seconds(2));
    if (candidates_) candidates_->Shutdown();
    StormTest::TearDown();
  }
  SimulatedClock clock_;
  std::unique_ptr<CandidatePools> candidates_;
  std::unique_ptr<BrokerService> service_;
  std::unique_ptr<ServiceMain> sm_;
  std::unique_ptr<v1::Broker::Stub> stub_;
};

// BrokerServiceBase lists the callback layer of every method by hand; a
// method missing from it would be served by a synchronous handler.
TEST(BrokerServiceBaseTest, EveryMethodIsCallbackOrRaw) {
  BrokerService service(nullptr);
  EXPECT_FALSE(service.has_synchronous_methods());
  EXPECT_FALSE(service.has_async_methods());
  EXPECT_TRUE(service.has_callback_methods());
}

TEST_F(BrokerServiceTest, FetchSegmentStreamsMetadataThenBytes) {
  FakeNntpServer* server = StartServer();
  auto ids = Post({server}, 1, 700 * 1024);
  PoolOptions o;
  o.providers = {Provider("main", server, 2, 2)};
  StartBroker(o);
  grpc::ClientContext ctx;
  v1::FetchSegmentRequest req;
  req.set_message_id(ids[0]);
  req.set_traffic_class(v1::STREAM);
  auto reader = stub_->FetchSegment(&ctx, req);
  v1::FetchSegmentResponse resp;
  std::string bytes;
  int messages = 0;
  v1::SegmentMetadata md;
  while (reader->Read(&resp)) {
    if (messages++ == 0) {
      ASSERT_TRUE(resp.has_metadata());
      md = resp.metadata();
    }
    bytes += resp.data();
  }
  grpc::Status st = reader->Finish();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(bytes, data_[ids[0]]);
  EXPECT_EQ(md.decoded_size(), 700 * 1024);
  EXPECT_TRUE(md.crc_verified());
  EXPECT_EQ(md.provider(), "main");
  EXPECT_EQ(md.name(), "seg-0.bin");
  EXPECT_EQ(messages, 1);  // the whole article fits the default 1 MiB chunk
}

// Chunks are slices of the pooled buffer (segment_wire.h): every chunk in
// order, metadata on the first only, sizes as asked.
TEST_F(BrokerServiceTest, FetchSegmentInChunksKeepsOrderAndMetadataOnFirst) {
  FakeNntpServer* server = StartServer();
  auto ids = Post({server}, 3, 700 * 1024);
  PoolOptions o;
  o.providers = {Provider("main", server, 2, 2)};
  StartBroker(o);
  for (const auto& id : ids) {
    grpc::ClientContext ctx;
    v1::FetchSegmentRequest req;
    req.set_message_id(id);
    req.set_traffic_class(v1::STREAM);
    req.set_chunk_bytes(64 * 1024);
    auto reader = stub_->FetchSegment(&ctx, req);
    v1::FetchSegmentResponse resp;
    std::string bytes;
    std::vector<size_t> sizes;
    while (reader->Read(&resp)) {
      EXPECT_EQ(resp.has_metadata(), sizes.empty());
      if (resp.has_metadata()) {
        EXPECT_EQ(resp.metadata().decoded_size(), 700 * 1024);
      }
      sizes.push_back(resp.data().size());
      bytes += resp.data();
    }
    grpc::Status st = reader->Finish();
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(bytes, data_[id]);
    ASSERT_EQ(sizes.size(), 11u);  // 10 × 64 KiB + 60 KiB
    for (size_t i = 0; i + 1 < sizes.size(); ++i) EXPECT_EQ(sizes[i], 64u * 1024);
    EXPECT_EQ(sizes.back(), 60u * 1024);
  }
}

TEST_F(BrokerServiceTest, MissingArticleIsNotFoundAndBadClassIsInvalid) {
  FakeNntpServer* server = StartServer();
  PoolOptions o;
  o.providers = {Provider("main", server, 2, 2)};
  StartBroker(o);
  {
    grpc::ClientContext ctx;
    v1::FetchSegmentRequest req;
    req.set_message_id("gone@x");
    req.set_traffic_class(v1::IMPORT);
    auto reader = stub_->FetchSegment(&ctx, req);
    v1::FetchSegmentResponse resp;
    EXPECT_FALSE(reader->Read(&resp));
    grpc::Status st = reader->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_NE(st.error_message().find("missing on main"), std::string::npos);
  }
  {
    grpc::ClientContext ctx;
    v1::FetchSegmentRequest req;
    req.set_message_id("x@y");
    auto reader = stub_->FetchSegment(&ctx, req);
    v1::FetchSegmentResponse resp;
    EXPECT_FALSE(reader->Read(&resp));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST_F(BrokerServiceTest, StatSegmentsStreamsEveryAnswer) {
  FakeNntpServer* server = StartServer();
  auto ids = Post({server}, 20, 1000);
  PoolOptions o;
  o.providers = {Provider("main", server, 2, 2)};
  StartBroker(o);
  grpc::ClientContext ctx;
  v1::StatSegmentsRequest req;
  req.set_traffic_class(v1::HEALTH);
  for (const auto& id : ids) req.add_message_ids(id);
  req.add_message_ids("absent@x");
  auto reader = stub_->StatSegments(&ctx, req);
  v1::StatSegmentsResponse resp;
  std::map<std::string, bool> seen;
  while (reader->Read(&resp)) seen[resp.message_id()] = resp.exists();
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(seen.size(), 21u);
  EXPECT_FALSE(seen["absent@x"]);
  EXPECT_TRUE(seen[ids[7]]);
  EXPECT_EQ(server->calls(ids[7]), 1);
}

TEST_F(BrokerServiceTest, B7_BrokenLeaseIsReleasedWithinOneSecond) {
  FakeNntpServer* server = StartServer();
  PoolOptions o;
  o.providers = {Provider("main", server, 2, 2)};
  o.max_concurrent_imports = 1;
  StartBroker(o);

  // Holder: its own channel, as if in its own process.
  auto holder_stub = NewStub();
  auto holder_ctx = std::make_unique<grpc::ClientContext>();
  v1::AcquireImportLeaseRequest req;
  req.set_holder("importer-a/job-1");
  auto holder = holder_stub->AcquireImportLease(holder_ctx.get(), req);
  v1::ImportLeaseEvent ev;
  ASSERT_TRUE(holder->Read(&ev));
  ASSERT_TRUE(ev.granted());

  // Waiter.
  grpc::ClientContext waiter_ctx;
  req.set_holder("importer-b/job-2");
  std::atomic<bool> granted{false};
  absl::Time granted_at;
  std::thread waiter([&] {
    auto w = stub_->AcquireImportLease(&waiter_ctx, req);
    v1::ImportLeaseEvent e;
    if (w->Read(&e) && e.granted()) {
      granted_at = absl::Now();
      granted = true;
    }
    waiter_ctx.TryCancel();
    w->Finish();
  });
  ASSERT_TRUE(WaitUntil([&] { return pool_->Status().leases_waiting == 1; }));
  EXPECT_FALSE(granted.load());

  // The holder "dies": its call is cut and its channel is gone.
  const absl::Time killed = absl::Now();
  holder_ctx->TryCancel();
  holder.reset();
  holder_stub.reset();
  ASSERT_TRUE(WaitUntil([&] { return granted.load(); }, absl::Seconds(5)));
  EXPECT_LT(granted_at - killed, absl::Seconds(1));
  waiter.join();
  ExpectNoLeaks();
}

TEST_F(BrokerServiceTest, SessionsCountWhileOpenAndPoolStatusShowsThem) {
  FakeNntpServer* server = StartServer();
  PoolOptions o;
  o.providers = {Provider("main", server, 4, 2)};
  o.stream_headroom = 3;
  StartBroker(o);
  grpc::ClientContext sctx;
  v1::OpenStreamSessionRequest sreq;
  sreq.set_label("movie.mkv");
  auto session = stub_->OpenStreamSession(&sctx, sreq);
  v1::StreamSessionEvent sev;
  ASSERT_TRUE(session->Read(&sev));
  EXPECT_GT(sev.session_id(), 0u);

  grpc::ClientContext pctx;
  v1::PoolStatus status;
  ASSERT_TRUE(stub_->GetPoolStatus(&pctx, v1::GetPoolStatusRequest(), &status).ok());
  EXPECT_EQ(status.open_sessions(), 1);
  EXPECT_EQ(status.capacity_slots(), 8);
  EXPECT_EQ(status.reserved_for_stream(), 3);
  ASSERT_EQ(status.providers_size(), 1);
  EXPECT_EQ(status.providers(0).name(), "main");
  EXPECT_EQ(status.providers(0).breaker_state(), "closed");

  sctx.TryCancel();
  session->Finish();
  ASSERT_TRUE(WaitUntil([&] { return pool_->Status().open_sessions == 0; }, absl::Seconds(2)));
}

// A session is told when other sessions (any frontend's) open and close, so
// every frontend divides the capacity among all players (F13).
TEST_F(BrokerServiceTest, SessionsAreToldTheOpenSessionCountAsItChanges) {
  FakeNntpServer* server = StartServer();
  PoolOptions o;
  o.providers = {Provider("main", server, 4, 2)};
  StartBroker(o);
  v1::OpenStreamSessionRequest sreq;
  sreq.set_label("a.mkv");
  // Each Read blocks until the broker sends; the deadline bounds it.
  grpc::ClientContext actx;
  actx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto a = stub_->OpenStreamSession(&actx, sreq);
  v1::StreamSessionEvent ev;
  ASSERT_TRUE(a->Read(&ev));
  const uint64_t a_id = ev.session_id();
  EXPECT_GT(a_id, 0u);
  EXPECT_EQ(ev.capacity_slots(), 8);
  EXPECT_EQ(ev.open_sessions(), 1);

  sreq.set_label("b.mkv");
  grpc::ClientContext bctx;
  auto b = stub_->OpenStreamSession(&bctx, sreq);
  v1::StreamSessionEvent bev;
  ASSERT_TRUE(b->Read(&bev));
  EXPECT_EQ(bev.open_sessions(), 2);
  // a learns of b.
  ASSERT_TRUE(a->Read(&ev));
  EXPECT_EQ(ev.session_id(), a_id);
  EXPECT_EQ(ev.capacity_slots(), 8);
  EXPECT_EQ(ev.open_sessions(), 2);

  bctx.TryCancel();
  b->Finish();
  ASSERT_TRUE(a->Read(&ev));
  EXPECT_EQ(ev.open_sessions(), 1);

  actx.TryCancel();
  a->Finish();
  ASSERT_TRUE(WaitUntil([&] { return pool_->Status().open_sessions == 0; }, absl::Seconds(2)));
}

TEST_F(BrokerServiceTest, TestProviderDialsAuthenticatesAndPings) {
  FakeNntpServer::Options so;
  so.require_auth = true;
  so.username = "alice";
  so.password = "secret";
  FakeNntpServer* server = StartServer(so);
  PoolOptions o;
  o.providers = {Provider("main", server, 2, 2)};
  StartBroker(o);
  v1::TestProviderRequest req;
  auto* p = req.mutable_provider();
  p->set_host("127.0.0.1");
  p->set_port(server->port());
  p->set_username("alice");
  p->set_password("secret");
  p->set_max_connections(1);
  {
    grpc::ClientContext ctx;
    v1::TestProviderResponse resp;
    ASSERT_TRUE(stub_->TestProvider(&ctx, req, &resp).ok());
    EXPECT_TRUE(resp.ok()) << resp.error();
    EXPECT_FALSE(resp.server_greeting().empty());
  }
  p->set_password("wrong");
  {
    grpc::ClientContext ctx;
    v1::TestProviderResponse resp;
    ASSERT_TRUE(stub_->TestProvider(&ctx, req, &resp).ok());
    EXPECT_FALSE(resp.ok());
    EXPECT_NE(resp.error().find("UNAUTHENTICATED"), std::string::npos) << resp.error();
  }
}

TEST_F(BrokerServiceTest, ProviderFieldRestrictsAFetchToOneProviderWithoutFailover) {
  FakeNntpServer* a = StartServer();
  FakeNntpServer* b = StartServer();
  auto ids = Post({a}, 1, 1000);
  PoolOptions o;
  o.providers = {Provider("a", a, 2, 2), Provider("b", b, 2, 2)};
  StartBroker(o);
  auto fetch = [&](const std::string& provider) {
    grpc::ClientContext ctx;
    v1::FetchSegmentRequest req;
    req.set_message_id(ids[0]);
    req.set_traffic_class(v1::SPEEDTEST);
    req.set_provider(provider);
    auto reader = stub_->FetchSegment(&ctx, req);
    v1::FetchSegmentResponse resp;
    while (reader->Read(&resp)) {
    }
    return reader->Finish();
  };
  EXPECT_EQ(fetch("b").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(a->calls(ids[0]), 0);
  EXPECT_TRUE(fetch("a").ok());
  EXPECT_EQ(fetch("nope").error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(BrokerServiceTest, T4_CandidateProviderReusesOneTemporaryPoolThenClosesIt) {
  FakeNntpServer* main = StartServer();
  FakeNntpServer* candidate = StartServer();
  auto ids = Post({candidate}, 2, 50000);
  PoolOptions o;
  o.providers = {Provider("main", main, 2, 2)};
  StartBroker(o);
  auto fetch = [&](const std::string& id) {
    grpc::ClientContext ctx;
    v1::FetchCandidateSegmentRequest req;
    req.mutable_provider()->set_host("127.0.0.1");
    req.mutable_provider()->set_port(candidate->port());
    req.mutable_provider()->set_max_connections(2);
    req.set_message_id(id);
    auto reader = stub_->FetchCandidateSegment(&ctx, req);
    v1::FetchSegmentResponse resp;
    std::string bytes;
    while (reader->Read(&resp)) bytes += resp.data();
    EXPECT_TRUE(reader->Finish().ok());
    return bytes;
  };
  EXPECT_EQ(fetch(ids[0]), data_[ids[0]]);
  const int dials = candidate->connections_accepted();
  clock_.AdvanceTime(absl::Minutes(1));
  EXPECT_EQ(fetch(ids[1]), data_[ids[1]]);
  EXPECT_EQ(candidate->connections_accepted(), dials);  // one set of dials
  EXPECT_LE(candidate->max_concurrent_connections(), 2);
  EXPECT_EQ(main->total_commands(), 0);  // never through the running pool
  clock_.AdvanceTime(absl::Minutes(6));
  // The server may finish the second call's reactor (which holds the pool)
  // just after the client saw its status; a pool still in use past its TTL is
  // looked at again a (simulated) second later, so time keeps moving here.
  ASSERT_TRUE(WaitUntil(
      [&] {
        clock_.AdvanceTime(absl::Seconds(1));
        return candidate->current_connections() == 0;
      },
      absl::Seconds(10)));
  candidates_->Shutdown();
  candidates_->Shutdown();  // idempotent
}

}  // namespace
}  // namespace nzbmesh::broker
