// The storm contract, B rows (budget and scheduling): see docs/INVARIANTS.md.
#include <atomic>
#include <cstdlib>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "tests/fakes/nntp_server/test_cert.h"
#include "tests/services/broker/storm_fixture.h"

namespace nzbmesh::broker {
namespace {

// Long storms run shortened in CI; NZBMESH_STORM_SCALE=1 (the soak target)
// runs them at the durations in INVARIANTS.md.
double StormScale() {
  const char* s = std::getenv("NZBMESH_STORM_SCALE");
  return s != nullptr ? std::atof(s) : 0.2;
}

TEST_F(StormTest, B1_ConnectionsNeverExceedMaxConnections) {
  FakeNntpServer* server = StartServer();
  auto ids = Post({server}, 100, 32 * 1024);
  FakeNntpServer::Fault slow;
  slow.latency = absl::Milliseconds(3);
  server->SetDefaultFault(slow);
  // 5 % of replies dropped mid-body (once each; the retry succeeds).
  for (int i = 0; i < 100; i += 20) {
    FakeNntpServer::Fault drop;
    drop.drop_after_bytes = 5000;
    drop.times = 1;
    server->SetFault(ids[i], drop);
  }
  PoolOptions o;
  o.providers = {Provider("main", server, 4, 2)};
  Pool* pool = MakePool(o);

  Results results;
  std::vector<std::shared_ptr<FetchOp>> ops;
  std::vector<std::string> keys;
  for (int i = 0; i < 1000; ++i) {
    std::string key = absl::StrCat(i);
    keys.push_back(key);
    ops.push_back(pool->Fetch(Req(ids[i % 100], static_cast<TrafficClass>(i % kNumClasses)), results.Callback(key)));
  }
  // 20 % cancelled mid-flight: while the storm is running.
  std::mt19937 rng(1);
  std::set<int> cancelled;
  for (int i = 0; i < 200; ++i) {
    int k;
    do { k = static_cast<int>(rng() % 1000); } while (cancelled.count(k));
    cancelled.insert(k);
  }
  ASSERT_TRUE(WaitUntil([&] { return results.done() >= 100; }));
  for (int k : cancelled) ops[k]->Cancel();
  ASSERT_TRUE(results.WaitDone(1000, absl::Seconds(60)));

  EXPECT_LE(server->max_concurrent_connections(), 4);
  EXPECT_GE(server->max_concurrent_connections(), 2);
  int ok = 0;
  for (int i = 0; i < 1000; ++i) {
    FetchResult r = results.Get(keys[i]);
    if (cancelled.count(i) && r.status.code() == absl::StatusCode::kCancelled) continue;
    ASSERT_TRUE(r.status.ok()) << i << ": " << r.status;
    ASSERT_EQ(*r.data, data_[ids[i % 100]]);
    ++ok;
  }
  EXPECT_GE(ok, 800);
  ExpectNoLeaks();
}

TEST_F(StormTest, B2_CommandsInFlightNeverExceedPipelineDepth) {
  FakeNntpServer* server = StartServer();
  auto ids = Post({server}, 50, 16 * 1024);
  FakeNntpServer::Fault slow;
  slow.latency = absl::Milliseconds(5);
  server->SetDefaultFault(slow);
  PoolOptions o;
  o.providers = {Provider("main", server, 3, 3)};
  Pool* pool = MakePool(o);
  Results results;
  for (int i = 0; i < 600; ++i) pool->Fetch(Req(ids[i % 50]), results.Callback(absl::StrCat(i)));
  ASSERT_TRUE(results.WaitDone(600));
  EXPECT_EQ(server->max_in_flight_per_connection(), 3);  // pipelines were full, never deeper
  EXPECT_LE(server->max_in_flight(), 9);
  EXPECT_LE(server->max_concurrent_connections(), 3);
  ExpectNoLeaks();
}

TEST_F(StormTest, B3_StreamIsDispatchedOnTheFirstFreedSlot) {
  FakeNntpServer* server = StartServer();
  auto imports = Post({server}, 200, 1024, "imp");
  auto stream = Post({server}, 1, 1024, "stream");
  FakeNntpServer::Gate* gate = server->AddGate("");
  PoolOptions o;
  o.providers = {Provider("main", server, 2, 1)};  // C = 2
  Pool* pool = MakePool(o);
  Results results;
  for (const auto& id : imports) pool->Fetch(Req(id, TrafficClass::kImport), results.Callback(id));
  ASSERT_TRUE(WaitUntil([&] { return gate->waiting() == 2; }));
  pool->Fetch(Req(stream[0], TrafficClass::kStream), results.Callback(stream[0]));
  ASSERT_TRUE(WaitUntil([&] { return pool->Status().queued[0] == 1; }));
  gate->Release(1);
  ASSERT_TRUE(WaitUntil([&] { return server->calls(stream[0]) == 1; }));
  // On the wire: the two gated imports, then the stream, nothing in between.
  const std::vector<std::string> bodies = BodiesOnTheWire(*server);
  ASSERT_GE(bodies.size(), 3u);
  EXPECT_EQ(bodies[2], stream[0]);
  gate->ReleaseAll();
  ASSERT_TRUE(results.WaitDone(201));
  EXPECT_TRUE(results.Get(stream[0]).status.ok());
  ExpectNoLeaks();
}

// The ids after the first three of `bodies`, split into those starting with
// `prefix` and the rest, each in wire order.
std::pair<std::vector<std::string>, std::vector<std::string>> SplitAfterThird(const std::vector<std::string>& bodies,
                                                                              absl::string_view prefix) {
  std::pair<std::vector<std::string>, std::vector<std::string>> out;
  for (size_t i = 3; i < bodies.size(); ++i) {
    (absl::StartsWith(bodies[i], prefix) ? out.first : out.second).push_back(bodies[i]);
  }
  return out;
}

// B12: within STREAM, a needed-now fetch goes before every read-ahead fetch
// already waiting (other streams' too); FIFO within each kind.
TEST_F(StormTest, B12_NeededNowStreamFetchGoesBeforeQueuedReadAhead) {
  FakeNntpServer* server = StartServer();
  auto ahead_a = Post({server}, 10, 1024, "ahead-a");
  auto ahead_b = Post({server}, 10, 1024, "ahead-b");
  auto now = Post({server}, 2, 1024, "now");
  FakeNntpServer::Gate* gate = server->AddGate("");
  PoolOptions o;
  o.providers = {Provider("main", server, 1, 1)};  // C = 1: the wire order is the dispatch order
  Pool* pool = MakePool(o);
  const uint64_t a = pool->OpenSession("a"), b = pool->OpenSession("b");
  const uint64_t c = pool->OpenSession("c"), d = pool->OpenSession("d");
  Results results;
  auto fetch = [&](const std::string& id, uint64_t session, bool read_ahead) {
    FetchRequest r = Req(id, TrafficClass::kStream, session);
    r.read_ahead = read_ahead;
    pool->Fetch(std::move(r), results.Callback(id));
  };
  for (const auto& id : ahead_a) fetch(id, a, true);
  ASSERT_TRUE(WaitUntil([&] { return gate->waiting() == 1; }));  // ahead-a-0 holds the one slot
  for (const auto& id : ahead_b) fetch(id, b, true);
  fetch(now[0], c, false);
  fetch(now[1], d, false);
  ASSERT_TRUE(WaitUntil([&] { return pool->Status().queued[0] == 21; }));
  gate->Release(1);
  ASSERT_TRUE(WaitUntil([&] { return server->calls(now[0]) == 1; }));
  gate->ReleaseAll();
  ASSERT_TRUE(results.WaitDone(22));
  const std::vector<std::string> bodies = BodiesOnTheWire(*server);
  // On the wire: the gated read-ahead, both needed-now fetches in arrival
  // order, then the read-ahead — shared out between the two sessions by
  // B11's fewest-slots order, each session's own read-ahead in its order.
  ASSERT_EQ(bodies.size(), 22u);
  EXPECT_EQ(std::vector<std::string>(bodies.begin(), bodies.begin() + 3),
            (std::vector<std::string>{ahead_a[0], now[0], now[1]}));
  const auto [got_a, got_b] = SplitAfterThird(bodies, "ahead-a");
  EXPECT_EQ(got_a, std::vector<std::string>(ahead_a.begin() + 1, ahead_a.end()));
  EXPECT_EQ(got_b, ahead_b);
  std::vector<std::string> want = {ahead_a[0], now[0], now[1]};
  want.insert(want.end(), ahead_a.begin() + 1, ahead_a.end());
  want.insert(want.end(), ahead_b.begin(), ahead_b.end());
  for (const auto& id : want) {
    FetchResult r = results.Get(id);
    EXPECT_TRUE(r.status.ok()) << id << ": " << r.status;
    ASSERT_TRUE(r.data) << id;
    EXPECT_EQ(*r.data, data_[id]) << id;
  }
  for (uint64_t s : {a, b, c, d}) pool->CloseSession(s);
  ExpectNoLeaks();
}

// B13: a promoted read-ahead fetch leaves the read-ahead part for the tail of
// the needed-now part: it goes on the wire after the needed-now fetches that
// were waiting and before every read-ahead fetch, older ones too. Promoting
// one that is on the wire, already promoted or unknown changes nothing.
TEST_F(StormTest, B13_PromotedReadAheadGoesBeforeOlderReadAhead) {
  FakeNntpServer* server = StartServer();
  auto ahead_a = Post({server}, 5, 1024, "ahead-a");
  auto ahead_b = Post({server}, 5, 1024, "ahead-b");
  auto now = Post({server}, 1, 1024, "now");
  FakeNntpServer::Gate* gate = server->AddGate("");
  PoolOptions o;
  o.providers = {Provider("main", server, 1, 1)};  // C = 1: the wire order is the dispatch order
  Pool* pool = MakePool(o);
  const uint64_t a = pool->OpenSession("a"), b = pool->OpenSession("b"), c = pool->OpenSession("c");
  Results results;
  auto fetch = [&](const std::string& id, uint64_t session, bool read_ahead) {
    FetchRequest r = Req(id, TrafficClass::kStream, session);
    r.read_ahead = read_ahead;
    pool->Fetch(std::move(r), results.Callback(id));
  };
  for (const auto& id : ahead_a) fetch(id, a, true);
  ASSERT_TRUE(WaitUntil([&] { return gate->waiting() == 1; }));  // ahead-a-0 holds the one slot
  for (const auto& id : ahead_b) fetch(id, b, true);
  fetch(now[0], c, false);
  ASSERT_TRUE(WaitUntil([&] { return pool->Status().queued[0] == 10; }));

  EXPECT_FALSE(pool->Promote(a, ahead_a[0]));   // on the wire: a no-op
  EXPECT_FALSE(pool->Promote(a, ahead_b[3]));   // another session's fetch
  EXPECT_FALSE(pool->Promote(c, now[0]));       // already needed now
  EXPECT_FALSE(pool->Promote(b, "unknown@x"));  // never asked for
  EXPECT_TRUE(pool->Promote(b, ahead_b[3]));    // the player caught up with it
  EXPECT_FALSE(pool->Promote(b, ahead_b[3]));   // exactly once
  EXPECT_EQ(pool->Status().queued[0], 10);      // moved, not duplicated or lost

  gate->Release(1);
  ASSERT_TRUE(WaitUntil([&] { return server->calls(now[0]) == 1; }));
  gate->ReleaseAll();
  ASSERT_TRUE(results.WaitDone(11));
  const std::vector<std::string> bodies = BodiesOnTheWire(*server);
  // On the wire: the gated read-ahead, the needed-now fetch that was waiting,
  // the promoted one, then the rest of the read-ahead (B11/B12 as before).
  ASSERT_EQ(bodies.size(), 11u);
  EXPECT_EQ(std::vector<std::string>(bodies.begin(), bodies.begin() + 3),
            (std::vector<std::string>{ahead_a[0], now[0], ahead_b[3]}));
  const auto [got_a, got_b] = SplitAfterThird(bodies, "ahead-a");
  EXPECT_EQ(got_a, std::vector<std::string>(ahead_a.begin() + 1, ahead_a.end()));
  EXPECT_EQ(got_b, (std::vector<std::string>{ahead_b[0], ahead_b[1], ahead_b[2], ahead_b[4]}));
  for (const auto& ids : {ahead_a, ahead_b, now}) {
    for (const auto& id : ids) {
      FetchResult r = results.Get(id);
      EXPECT_TRUE(r.status.ok()) << id << ": " << r.status;
      ASSERT_TRUE(r.data) << id;
      EXPECT_EQ(*r.data, data_[id]) << id;
    }
  }
  for (uint64_t s : {a, b, c}) pool->CloseSession(s);
  ExpectNoLeaks();
}

TEST_F(StormTest, B4_OpenSessionsReserveSlotsForPlayback) {
  FakeNntpServer* server = StartServer();
  auto ids = Post({server}, 40, 4096);
  FakeNntpServer::Fault slow;
  slow.latency = absl::Milliseconds(10);
  server->SetDefaultFault(slow);
  PoolOptions o;
  o.providers = {Provider("main", server, 8, 2)};  // C = 16
  o.stream_headroom = 4;
  Pool* pool = MakePool(o);
  auto run_imports = [&](int n) {
    Results results;
    for (int i = 0; i < n; ++i) pool->Fetch(Req(ids[i % 40], TrafficClass::kImport), results.Callback(absl::StrCat(i)));
    ASSERT_TRUE(results.WaitDone(n));
  };
  run_imports(200);
  EXPECT_EQ(server->max_in_flight(), 16);  // no session: imports may use all of C

  const uint64_t s1 = pool->OpenSession("player 1");
  server->ResetCounters();
  run_imports(200);
  EXPECT_EQ(server->max_in_flight(), 12);  // C − 4 × 1

  const uint64_t s2 = pool->OpenSession("player 2");
  server->ResetCounters();
  run_imports(200);
  EXPECT_EQ(server->max_in_flight(), 8);  // C − 4 × 2
  pool->CloseSession(s1);
  pool->CloseSession(s2);
  ExpectNoLeaks();
}

TEST_F(StormTest, B5_OneStreamMayUseUpToMaxSlotsPerStream) {
  FakeNntpServer* server = StartServer();
  auto ids = Post({server}, 50, 4096);
  FakeNntpServer::Fault slow;
  slow.latency = absl::Milliseconds(20);
  server->SetDefaultFault(slow);
  PoolOptions o;
  o.providers = {Provider("main", server, 8, 2)};  // C = 16
  o.max_slots_per_stream = 6;
  Pool* pool = MakePool(o);
  const uint64_t session = pool->OpenSession("player");
  Results results;
  for (const auto& id : ids) pool->Fetch(Req(id, TrafficClass::kStream, session), results.Callback(id));
  ASSERT_TRUE(results.WaitDone(50));
  EXPECT_EQ(server->max_in_flight(), 6);
  pool->CloseSession(session);
  ExpectNoLeaks();
}

TEST_F(StormTest, B11_AStartingStreamGoesBeforeAnotherStreamsReadAhead) {
  FakeNntpServer* server = StartServer();
  auto a = Post({server}, 4, 1024, "a");
  auto b = Post({server}, 1, 1024, "b");
  FakeNntpServer::Gate* gate = server->AddGate("");
  PoolOptions o;
  o.providers = {Provider("main", server, 2, 1)};  // C = 2
  o.max_slots_per_stream = 2;
  Pool* pool = MakePool(o);
  const uint64_t sa = pool->OpenSession("player a");
  Results results;
  // Player a holds both slots and has two more read-ahead requests queued.
  for (const auto& id : a) pool->Fetch(Req(id, TrafficClass::kStream, sa), results.Callback(id));
  ASSERT_TRUE(WaitUntil([&] { return gate->waiting() == 2 && pool->Status().queued[0] == 2; }));
  // Player b starts: its first request is queued last.
  const uint64_t sb = pool->OpenSession("player b");
  pool->Fetch(Req(b[0], TrafficClass::kStream, sb), results.Callback(b[0]));
  ASSERT_TRUE(WaitUntil([&] { return pool->Status().queued[0] == 3; }));
  gate->Release(1);
  ASSERT_TRUE(WaitUntil([&] { return server->calls(b[0]) == 1; }));
  // On the wire: a's two gated requests, then b's first, before a's read-ahead.
  const std::vector<std::string> bodies = BodiesOnTheWire(*server);
  ASSERT_GE(bodies.size(), 3u);
  EXPECT_EQ(bodies[2], b[0]) << absl::StrJoin(bodies, " ");
  gate->ReleaseAll();
  ASSERT_TRUE(results.WaitDone(5));
  for (const auto& id : a) EXPECT_TRUE(results.Get(id).status.ok()) << id;
  EXPECT_TRUE(results.Get(b[0]).status.ok());
  pool->CloseSession(sa);
  pool->CloseSession(sb);
  ExpectNoLeaks();
}

// B13 for a read-ahead fetch in its retry delay: promoted there, it is
// requeued as needed-now (a retry, so at the head of that part) instead of
// behind every needed-now request as read-ahead. C = 1, so the wire order is
// the dispatch order.
TEST_F(StormTest, B13_ReadAheadWaitingForItsRetryIsPromotedToo) {
  FakeNntpServer* server = StartServer();
  auto ids = Post({server}, 5, 1024, "retry");
  const std::string& ahead = ids[0];  // read-ahead of session s; its first attempt is lost
  const std::string& held = ids[1];   // holds the one slot while the retry waits
  const std::string& needed = ids[2]; // another player's needed-now fetch
  FakeNntpServer::Fault lost;
  lost.drop_after_bytes = 0;  // the connection closes without an answer: transient
  lost.times = 1;
  server->SetFault(ahead, lost);
  PoolOptions o;
  o.providers = {Provider("main", server, 1, 1)};
  o.retry_delay_min = o.retry_delay_max = absl::Milliseconds(300);
  Pool* pool = MakePool(o);
  const uint64_t s = pool->OpenSession("s"), t = pool->OpenSession("t"), u = pool->OpenSession("u");
  Results results;
  FetchRequest r = Req(ahead, TrafficClass::kStream, s);
  r.read_ahead = true;
  pool->Fetch(r, results.Callback(ahead));
  ASSERT_TRUE(WaitUntil([&] { return pool->GetUsage().waiting_retry == 1; }));
  FakeNntpServer::Gate* gate = server->AddGate(held);
  pool->Fetch(Req(held, TrafficClass::kStream, t), results.Callback(held));
  ASSERT_TRUE(WaitUntil([&] { return gate->waiting() == 1; }));
  pool->Fetch(Req(needed, TrafficClass::kStream, u), results.Callback(needed));
  for (int i = 3; i < 5; ++i) {
    FetchRequest ra = Req(ids[i], TrafficClass::kStream, u);
    ra.read_ahead = true;
    pool->Fetch(ra, results.Callback(ids[i]));
  }
  EXPECT_FALSE(pool->Promote(t, ahead));  // another session's
  EXPECT_TRUE(pool->Promote(s, ahead));   // its player caught up with it
  EXPECT_FALSE(pool->Promote(s, ahead));  // exactly once
  // The retry timer requeues it: four wait behind the held reply.
  ASSERT_TRUE(WaitUntil([&] { return pool->GetUsage().waiting_retry == 0 && pool->Status().queued[0] == 4; }));
  gate->ReleaseAll();
  ASSERT_TRUE(results.WaitDone(5));
  const std::vector<std::string> bodies = BodiesOnTheWire(*server);
  ASSERT_EQ(bodies.size(), 6u) << absl::StrJoin(bodies, " ");
  EXPECT_EQ(std::vector<std::string>(bodies.begin(), bodies.begin() + 4),
            (std::vector<std::string>{ahead, held, ahead, needed}))
      << absl::StrJoin(bodies, " ");
  for (const auto& id : ids) {
    FetchResult res = results.Get(id);
    ASSERT_TRUE(res.status.ok()) << id << ": " << res.status;
    EXPECT_EQ(*res.data, data_[id]) << id;
  }
  for (uint64_t id : {s, t, u}) pool->CloseSession(id);
  ExpectNoLeaks();
}

TEST_F(StormTest, B14_StatsArePackedSoABodyIsNotSentBehindAStatReply) {
  // A connection answers in order, so a BODY given to a connection waiting
  // for a STAT reply waits for that reply. A health
  // sweep's STATs stay on one connection; a stream's BODY takes the other.
  FakeNntpServer* server = StartServer();
  auto ids = Post({server}, 4, 1024);
  PoolOptions o;
  o.providers = {Provider("main", server, 2, 1)};  // two connections, one BODY each
  Pool* pool = MakePool(o);
  Results results;
  // Both connections open (a gated BODY on each).
  FakeNntpServer::Gate* warm = server->AddGate(ids[2]);
  FakeNntpServer::Gate* warm2 = server->AddGate(ids[3]);
  pool->Fetch(Req(ids[2]), results.Callback("warm"));
  pool->Fetch(Req(ids[3]), results.Callback("warm2"));
  ASSERT_TRUE(WaitUntil([&] { return warm->waiting() == 1 && warm2->waiting() == 1; }));
  warm->ReleaseAll();
  warm2->ReleaseAll();
  ASSERT_TRUE(results.WaitDone(2));
  ASSERT_EQ(server->max_concurrent_connections(), 2);
  // Two STATs whose replies are held: packed onto one connection, the second
  // pipelined behind the first (so only one reaches the gate).
  FakeNntpServer::Gate* gate = server->AddGate(ids[0]);
  for (int i = 0; i < 2; ++i) {
    FetchRequest r = Req(ids[0], TrafficClass::kHealth);
    r.stat_only = true;
    pool->Fetch(r, results.Callback(absl::StrCat("stat", i)));
  }
  ASSERT_TRUE(WaitUntil([&] { return gate->waiting() == 1; }));
  // The stream's BODY is answered while the STAT replies are still held.
  pool->Fetch(Req(ids[1]), results.Callback("body"));
  ASSERT_TRUE(results.WaitDone(3, absl::Seconds(10))) << "the BODY waited behind a STAT reply";
  EXPECT_TRUE(results.Get("body").status.ok());
  EXPECT_EQ(gate->waiting(), 1);
  gate->ReleaseAll();
  ASSERT_TRUE(results.WaitDone(5));
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(results.Get(absl::StrCat("stat", i)).status.ok());
  EXPECT_EQ(server->max_concurrent_connections(), 2);
  ExpectNoLeaks();
}

// B15: a command given to a connection while it reads a reply goes out at
// once (the connection's send hook), not after that reply: the provider's
// latency for it overlaps the reply in progress. One connection, depth 2;
// the first reply is held at the server; the second BODY, handed over while
// the connection waits for it, must reach the server before the first reply
// is released. Plain TCP and TLS (the hook sends on the reading thread, so
// one SSL object sees one thread).
class SendWhileReadingTest : public StormTest {
 protected:
  void ExpectCommandSentWhileAReplyIsRead(bool tls);
};

void SendWhileReadingTest::ExpectCommandSentWhileAReplyIsRead(bool tls) {
  FakeNntpServer::Options so;
  std::unique_ptr<nzbmesh::testing::TestCert> cert;
  if (tls) {
    const char* dir = std::getenv("TEST_TMPDIR");
    auto c = nzbmesh::testing::GenerateSelfSignedCert(dir != nullptr ? dir : "/tmp", "b16");
    ASSERT_TRUE(c.ok()) << c.status();
    cert = std::make_unique<nzbmesh::testing::TestCert>(*c);
    so.tls = true;
    so.cert_file = cert->cert_file;
    so.key_file = cert->key_file;
  }
  FakeNntpServer* server = StartServer(so);
  auto ids = Post({server}, 3, 300000);
  PoolOptions o;
  o.providers = {Provider("main", server, 1, 2)};
  if (tls) {
    o.providers[0].connection.host = "localhost";
    o.providers[0].connection.tls = nntp::TlsMode::kImplicit;
    o.providers[0].connection.tls_ca_file = cert->cert_file;
  }
  Pool* pool = MakePool(o);
  Results results;
  ASSERT_TRUE(FetchSync(Req(ids[2])).status.ok());  // the connection is open and idle
  FakeNntpServer::Gate* gate = server->AddGate(ids[0]);
  pool->Fetch(Req(ids[0]), results.Callback(ids[0]));
  ASSERT_TRUE(WaitUntil([&] { return gate->waiting() == 1; }));  // the reader waits for this reply
  pool->Fetch(Req(ids[1]), results.Callback(ids[1]));
  ASSERT_TRUE(WaitUntil([&] { return server->in_flight() == 2; }, absl::Seconds(10)))
      << "the second BODY was not sent while the first reply was held";
  EXPECT_EQ(gate->waiting(), 1);
  EXPECT_EQ(results.done(), 0);
  gate->ReleaseAll();
  ASSERT_TRUE(results.WaitDone(2));
  for (int i = 0; i < 2; ++i) {
    const FetchResult& r = results.Get(ids[i]);
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_EQ(*r.data, data_[ids[i]]);
  }
  const std::vector<std::string> bodies = BodiesOnTheWire(*server);
  ASSERT_EQ(bodies.size(), 3u);
  EXPECT_EQ(bodies[1], ids[0]);
  EXPECT_EQ(bodies[2], ids[1]);
  EXPECT_EQ(server->max_concurrent_connections(), 1);
  ExpectNoLeaks();
}

TEST_F(SendWhileReadingTest, B15_ACommandIsSentWhileTheConnectionReadsAReply) { ExpectCommandSentWhileAReplyIsRead(false); }

TEST_F(SendWhileReadingTest, B15_ACommandIsSentWhileTheConnectionReadsAReplyOverTls) { ExpectCommandSentWhileAReplyIsRead(true); }

TEST_F(StormTest, B6_ImportLeasesAreBoundedFifoAndNeverLost) {
  FakeNntpServer* server = StartServer();
  PoolOptions o;
  o.providers = {Provider("main", server, 2, 1)};
  o.max_concurrent_imports = 2;
  Pool* pool = MakePool(o);

  absl::Mutex mu;
  int holders = 0, max_holders = 0;
  std::vector<int> grant_order;
  std::vector<bool> granted(50, false), released(50, false);
  std::vector<uint64_t> ids(50);
  for (int i = 0; i < 50; ++i) {
    ids[i] = pool->RequestLease(absl::StrCat("job-", i), [&, i] {
      absl::MutexLock lock(&mu);
      ++holders;
      max_holders = std::max(max_holders, holders);
      grant_order.push_back(i);
      granted[i] = true;
    });
  }
  auto release = [&](int i) {
    {
      absl::MutexLock lock(&mu);
      if (released[i]) return;
      released[i] = true;
      if (granted[i]) --holders;
    }
    pool->ReleaseLease(ids[i]);  // may grant the next waiter synchronously
  };
  std::mt19937 rng(7);
  std::set<int> cancelled;
  for (int round = 0; round < 200; ++round) {
    const int victim = static_cast<int>(rng() % 50);
    bool victim_released;
    {
      absl::MutexLock lock(&mu);
      victim_released = released[victim];
    }
    if (!victim_released && rng() % 4 == 0) {  // cancel: a waiter, or a holder whose grant just raced
      cancelled.insert(victim);
      release(victim);
    }
    int finishing = -1;
    {
      absl::MutexLock lock(&mu);
      for (int g : grant_order) {
        if (!released[g]) {
          finishing = g;
          break;
        }
      }
    }
    if (finishing >= 0) release(finishing);
  }
  {
    absl::MutexLock lock(&mu);
    EXPECT_LE(max_holders, 2);
    EXPECT_EQ(max_holders, 2);
    EXPECT_TRUE(std::is_sorted(grant_order.begin(), grant_order.end())) << "grants were not FIFO";
    // Every waiter that was not cancelled got its lease: none was lost.
    for (int i = 0; i < 50; ++i) {
      if (!cancelled.count(i)) {
        EXPECT_TRUE(granted[i]) << "lease " << i << " was never granted";
      }
    }
  }
  for (int i = 0; i < 50; ++i) release(i);
  ExpectNoLeaks();
}

TEST_F(StormTest, B6_OneImportWhileStreaming) {
  FakeNntpServer* server = StartServer();
  PoolOptions o;
  o.providers = {Provider("main", server, 2, 1)};
  Pool* pool = MakePool(o);
  std::atomic<int> grants{0};
  const uint64_t session = pool->OpenSession("player");
  uint64_t a = pool->RequestLease("a", [&] { ++grants; });
  uint64_t b = pool->RequestLease("b", [&] { ++grants; });
  EXPECT_EQ(grants.load(), 1);
  pool->CloseSession(session);  // the second import may now run
  EXPECT_EQ(grants.load(), 2);
  pool->ReleaseLease(a);
  pool->ReleaseLease(b);
  ExpectNoLeaks();
}

TEST_F(StormTest, B9_CancelledInFlightFetchesLeaveCleanConnections) {
  FakeNntpServer* server = StartServer();
  auto ids = Post({server}, 100, 256 * 1024);
  FakeNntpServer::Fault slow;
  slow.latency = absl::Milliseconds(20);
  slow.bytes_per_second = 20 << 20;  // replies take a while: cancels hit mid-body
  server->SetDefaultFault(slow);
  PoolOptions o;
  o.providers = {Provider("main", server, 4, 2)};
  Pool* pool = MakePool(o);
  Results results;
  std::vector<std::shared_ptr<FetchOp>> ops;
  for (const auto& id : ids) ops.push_back(pool->Fetch(Req(id), results.Callback(id)));
  ASSERT_TRUE(WaitUntil([&] { return server->in_flight() >= 4; }));
  for (auto& op : ops) op->Cancel();
  // Leaves at once: every callback has run when Cancel() returns.
  EXPECT_EQ(results.done(), 100);
  ExpectNoLeaks();
  const int dials = server->connections_accepted();
  server->ClearFaults();
  for (int i = 0; i < 20; ++i) {
    FetchResult r = FetchSync(Req(ids[i]));
    ASSERT_TRUE(r.status.ok()) << r.status;
    ASSERT_TRUE(r.info.crc_checked);
    ASSERT_EQ(*r.data, data_[ids[i]]) << "a connection was left half-read";
  }
  EXPECT_EQ(server->connections_accepted(), dials);  // drained, not dropped
  ExpectNoLeaks();
}

TEST_F(StormTest, B10_ScrubbingCausesNoConnectionChurn) {
  FakeNntpServer* server = StartServer();
  auto ids = Post({server}, 200, 128 * 1024);
  FakeNntpServer::Fault slow;
  slow.latency = absl::Milliseconds(5);
  slow.bytes_per_second = 40 << 20;
  server->SetDefaultFault(slow);
  PoolOptions o;
  o.providers = {Provider("main", server, 6, 2)};
  Pool* pool = MakePool(o);
  const uint64_t session = pool->OpenSession("scrubber");
  // Warm-up: open the whole pool (without the session's per-stream cap).
  {
    Results warm;
    for (int i = 0; i < 24; ++i) pool->Fetch(Req(ids[i], TrafficClass::kStream), warm.Callback(ids[i]));
    ASSERT_TRUE(warm.WaitDone(24));
  }
  const int warm_dials = server->connections_accepted();
  // Scrub storm: 200 in-flight fetches cancelled, spread over the period.
  const absl::Duration period = absl::Seconds(10) * StormScale();
  Results scrub;
  std::vector<std::shared_ptr<FetchOp>> ops;
  for (int i = 0; i < 200; ++i) ops.push_back(pool->Fetch(Req(ids[i], TrafficClass::kStream), scrub.Callback(ids[i])));
  for (int i = 0; i < 200; ++i) {
    absl::SleepFor(period / 200);  // pacing the storm itself, not waiting for a condition
    ops[i]->Cancel();
  }
  ASSERT_TRUE(scrub.WaitDone(200));
  ExpectNoLeaksExceptSession(session);
  EXPECT_LE(server->connections_accepted() - warm_dials, 2);

  // Steady streaming after warm-up dials nothing.
  const int before = server->connections_accepted();
  const absl::Time end = absl::Now() + absl::Seconds(60) * StormScale();
  int i = 0;
  while (absl::Now() < end) {
    FetchResult r = FetchSync(Req(ids[i++ % 200], TrafficClass::kStream, session));
    ASSERT_TRUE(r.status.ok()) << r.status;
  }
  EXPECT_EQ(server->connections_accepted(), before);
  pool->CloseSession(session);
  ExpectNoLeaks();
}

}  // namespace
}  // namespace nzbmesh::broker
