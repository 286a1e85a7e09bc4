// T4: temporary pools for candidate providers, against the fake news server.
#include "services/broker/candidate_pools.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "tests/fakes/nntp_server/nntp_server.h"

namespace nzbmesh::broker {
namespace {

using ::nzbmesh::testing::FakeNntpServer;

class CandidatePoolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = FakeNntpServer::Start({});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    for (int i = 0; i < 4; ++i) {
      server_->PostYencArticle(absl::StrCat("t", i, "@cand"), std::string(64 * 1024, static_cast<char>('a' + i)),
                               absl::StrCat("t", i, ".bin"));
    }
  }
  void TearDown() override { server_->Stop(); }

  ProviderOptions Candidate(int max_connections = 2) {
    ProviderOptions p;
    p.name = "candidate";
    p.connection.host = "127.0.0.1";
    p.connection.port = server_->port();
    p.max_connections = max_connections;
    p.pipeline_depth = 1;
    return p;
  }

  std::unique_ptr<CandidatePools> Make(absl::Duration ttl = absl::Minutes(5)) {
    CandidatePoolsOptions o;
    o.ttl = ttl;
    o.clock = &clock_;
    o.pool_template.random_seed = 7;
    auto p = CandidatePools::Create(o);
    EXPECT_TRUE(p.ok()) << p.status();
    return std::move(*p);
  }

  static FetchResult Fetch(Pool* pool, const std::string& id) {
    absl::Notification done;
    FetchResult out;
    FetchRequest r;
    r.message_id = id;
    r.traffic_class = TrafficClass::kSpeedTest;
    r.deadline = absl::Now() + absl::Seconds(20);
    pool->Fetch(r, [&](FetchResult res) {
      out = std::move(res);
      done.Notify();
    });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
    return out;
  }

  SimulatedClock clock_;
  std::unique_ptr<FakeNntpServer> server_;
};

TEST_F(CandidatePoolsTest, T4_TwoTestsAMinuteApartReuseOnePoolAndOneSetOfDials) {
  auto pools = Make();
  int dials_after_first = 0;
  Pool* first = nullptr;
  {
    auto pool = pools->Acquire(Candidate());
    ASSERT_TRUE(pool.ok()) << pool.status();
    first = pool->get();
    ASSERT_TRUE(Fetch(first, "t0@cand").status.ok());
    ASSERT_TRUE(Fetch(first, "t1@cand").status.ok());
    dials_after_first = server_->connections_accepted();
    EXPECT_GE(dials_after_first, 1);
  }
  clock_.AdvanceTime(absl::Minutes(1));
  {
    auto pool = pools->Acquire(Candidate());
    ASSERT_TRUE(pool.ok()) << pool.status();
    EXPECT_EQ(pool->get(), first);
    ASSERT_TRUE(Fetch(pool->get(), "t2@cand").status.ok());
    ASSERT_TRUE(Fetch(pool->get(), "t3@cand").status.ok());
  }
  EXPECT_EQ(server_->connections_accepted(), dials_after_first) << "the second test dialled again";
  EXPECT_EQ(pools->pools_created(), 1);
  EXPECT_EQ(pools->size(), 1);
}

TEST_F(CandidatePoolsTest, T4_JanitorClosesThePoolAfterTtl) {
  auto pools = Make(absl::Minutes(5));
  {
    auto pool = pools->Acquire(Candidate());
    ASSERT_TRUE(pool.ok()) << pool.status();
    ASSERT_TRUE(Fetch(pool->get(), "t0@cand").status.ok());
  }
  ASSERT_GE(server_->current_connections(), 1);
  clock_.AdvanceTime(absl::Minutes(4));
  // Not yet: the connections stay open before the TTL.
  EXPECT_GE(server_->current_connections(), 1);
  EXPECT_EQ(pools->size(), 1);
  clock_.AdvanceTime(absl::Minutes(1) + absl::Seconds(1));
  EXPECT_TRUE(server_->WaitFor([&] { return server_->current_connections() == 0; }, absl::Seconds(10)))
      << "connections still open after the TTL: " << server_->current_connections();
  EXPECT_TRUE(server_->WaitFor([&] { return pools->size() == 0; }, absl::Seconds(10)));
  // A later test of the same candidate gets a fresh pool.
  auto again = pools->Acquire(Candidate());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(pools->pools_created(), 2);
}

TEST_F(CandidatePoolsTest, T4_PoolInUseIsNotClosedUnderItsHolder) {
  auto pools = Make(absl::Minutes(5));
  auto pool = pools->Acquire(Candidate());
  ASSERT_TRUE(pool.ok()) << pool.status();
  ASSERT_TRUE(Fetch(pool->get(), "t0@cand").status.ok());
  clock_.AdvanceTime(absl::Minutes(6));
  // The janitor sees it in use and re-checks a simulated second later.
  clock_.AdvanceTime(absl::Seconds(2));
  ASSERT_TRUE(Fetch(pool->get(), "t1@cand").status.ok());
  EXPECT_EQ(pools->size(), 1);
  pool->reset();
  clock_.AdvanceTime(absl::Seconds(2));
  EXPECT_TRUE(server_->WaitFor([&] { return pools->size() == 0 && server_->current_connections() == 0; },
                               absl::Seconds(10)));
}

TEST_F(CandidatePoolsTest, T4_CandidateNeverExceedsItsMaxConnections) {
  auto pools = Make();
  auto pool = pools->Acquire(Candidate(/*max_connections=*/2));
  ASSERT_TRUE(pool.ok()) << pool.status();
  FakeNntpServer::Fault slow;
  slow.latency = absl::Milliseconds(20);
  server_->SetDefaultFault(slow);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 30; ++i) {
    threads.emplace_back([&, i] {
      if (Fetch(pool->get(), absl::StrCat("t", i % 4, "@cand")).status.ok()) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 30);
  EXPECT_LE(server_->max_concurrent_connections(), 2);
}

TEST_F(CandidatePoolsTest, T4_ShutdownIsIdempotentAndClosesEverything) {
  auto pools = Make();
  {
    auto pool = pools->Acquire(Candidate());
    ASSERT_TRUE(pool.ok()) << pool.status();
    ASSERT_TRUE(Fetch(pool->get(), "t0@cand").status.ok());
  }
  pools->Shutdown();
  pools->Shutdown();
  EXPECT_TRUE(server_->WaitFor([&] { return server_->current_connections() == 0; }, absl::Seconds(10)));
  auto after = pools->Acquire(Candidate());
  EXPECT_EQ(after.status().code(), absl::StatusCode::kUnavailable);
  pools.reset();  // destructor after Shutdown: a third, implicit call
}

TEST_F(CandidatePoolsTest, DifferentSettingsForAnAccountInUseAreRefused) {
  auto pools = Make();
  auto pool = pools->Acquire(Candidate(2));
  ASSERT_TRUE(pool.ok()) << pool.status();
  auto other = pools->Acquire(Candidate(3));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(other.status().message().find("different settings"), std::string::npos);
  pool->reset();
  auto replaced = pools->Acquire(Candidate(3));
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  EXPECT_EQ(pools->pools_created(), 2);
  EXPECT_EQ(pools->size(), 1);
}

TEST_F(CandidatePoolsTest, RejectsBadCandidates) {
  auto pools = Make();
  ProviderOptions p = Candidate();
  p.connection.port = 0;
  EXPECT_EQ(pools->Acquire(p).status().code(), absl::StatusCode::kInvalidArgument);
  p = Candidate(0);
  EXPECT_EQ(pools->Acquire(p).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nzbmesh::broker
