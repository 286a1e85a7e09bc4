// Shared fixture for the broker storm tests: a real Pool against one or more
// fault-injecting FakeNntpServers on loopback. Tests wait on counters with
// deadlines; none sleeps to wait for a condition.
#ifndef NZBMESH_TESTS_SERVICES_BROKER_STORM_FIXTURE_H_
#define NZBMESH_TESTS_SERVICES_BROKER_STORM_FIXTURE_H_

#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/metrics/metrics.h"
#include "services/broker/pool.h"
#include "tests/fakes/nntp_server/nntp_server.h"

namespace nzbmesh::broker {

using ::nzbmesh::testing::FakeNntpServer;

// Collects asynchronous fetch results.
class Results {
 public:
  std::function<void(FetchResult)> Callback(const std::string& id) {
    return [this, id](FetchResult r) {
      absl::MutexLock lock(&mu_);
      by_id_[id] = std::move(r);
      ++done_;
    };
  }
  bool WaitDone(int n, absl::Duration timeout = absl::Seconds(30)) {
    absl::MutexLock lock(&mu_);
    auto cond = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&cond), timeout);
  }
  int done() {
    absl::MutexLock lock(&mu_);
    return done_;
  }
  FetchResult Get(const std::string& id) {
    absl::MutexLock lock(&mu_);
    return by_id_[id];
  }

 private:
  absl::Mutex mu_;
  int done_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, FetchResult> by_id_ ABSL_GUARDED_BY(mu_);
};

class StormTest : public ::testing::Test {
 protected:
  FakeNntpServer* StartServer(FakeNntpServer::Options o = {}) {
    auto s = FakeNntpServer::Start(o);
    EXPECT_TRUE(s.ok()) << s.status();
    servers_.push_back(std::move(*s));
    return servers_.back().get();
  }

  static ProviderOptions Provider(const std::string& name, FakeNntpServer* s, int max_conn, int depth) {
    ProviderOptions p;
    p.name = name;
    p.connection.host = "127.0.0.1";
    p.connection.port = s->port();
    p.connection.first_byte_timeout = absl::Seconds(10);
    p.connection.stall_timeout = absl::Seconds(10);
    p.max_connections = max_conn;
    p.pipeline_depth = depth;
    return p;
  }

  Pool* MakePool(PoolOptions o) {
    if (o.random_seed == 0) o.random_seed = 42;
    auto p = Pool::Create(o, &registry_);
    EXPECT_TRUE(p.ok()) << p.status();
    pool_ = std::move(*p);
    return pool_.get();
  }

  // Posts `n` articles of `size` random bytes on every server given.
  std::vector<std::string> Post(const std::vector<FakeNntpServer*>& servers, int n, size_t size,
                                const std::string& prefix = "seg") {
    std::vector<std::string> ids;
    std::mt19937_64 rng(n * 7919 + size);
    for (int i = 0; i < n; ++i) {
      std::string data(size, '\0');
      for (auto& c : data) c = static_cast<char>(rng());
      std::string id = absl::StrCat(prefix, "-", i, "@storm.test");
      for (auto* s : servers) s->PostYencArticle(id, data, absl::StrCat(prefix, "-", i, ".bin"));
      data_[id] = data;
      ids.push_back(id);
    }
    return ids;
  }

  FetchResult FetchSync(FetchRequest r) {
    Results results;
    std::string id = r.message_id;
    pool_->Fetch(std::move(r), results.Callback(id));
    EXPECT_TRUE(results.WaitDone(1, absl::Seconds(60)));
    return results.Get(id);
  }

  static FetchRequest Req(const std::string& id, TrafficClass c = TrafficClass::kStream, uint64_t session = 0) {
    FetchRequest r;
    r.message_id = id;
    r.traffic_class = c;
    r.session_id = session;
    return r;
  }

  // B8: after any storm, slots, queues, retries, sessions and leases all return to 0.
  // The message-ids of the BODY commands `server` received, in wire order.
  static std::vector<std::string> BodiesOnTheWire(const FakeNntpServer& server) {
    std::vector<std::string> bodies;
    for (const auto& c : server.command_log()) {
      if (c.command == "BODY") bodies.push_back(c.message_id);
    }
    return bodies;
  }

  void ExpectNoLeaks() {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    Pool::Usage u;
    while (absl::Now() < deadline) {
      u = pool_->GetUsage();
      if (u.slots_in_use == 0 && u.queued == 0 && u.waiting_retry == 0 && u.sessions == 0 && u.leases_held == 0 &&
          u.leases_waiting == 0) {
        return;
      }
      absl::SleepFor(absl::Milliseconds(5));  // polling a condition with a deadline
    }
    ADD_FAILURE() << "B8 leak: slots=" << u.slots_in_use << " queued=" << u.queued << " retry=" << u.waiting_retry
                  << " sessions=" << u.sessions << " leases=" << u.leases_held << "/" << u.leases_waiting;
  }

  // B8 while one session is deliberately still open.
  void ExpectNoLeaksExceptSession(uint64_t) {
    ASSERT_TRUE(WaitUntil([&] {
      Pool::Usage u = pool_->GetUsage();
      return u.slots_in_use == 0 && u.queued == 0 && u.waiting_retry == 0 && u.sessions == 1;
    })) << "slots/queues did not return to 0";
  }

  bool WaitUntil(const std::function<bool()>& cond, absl::Duration timeout = absl::Seconds(30)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (cond()) return true;
      absl::SleepFor(absl::Milliseconds(2));  // polling a condition with a deadline
    }
    return cond();
  }

  void TearDown() override {
    if (pool_) pool_->Shutdown();
    for (auto& s : servers_) s->Stop();
  }

  metrics::Registry registry_;
  std::vector<std::unique_ptr<FakeNntpServer>> servers_;
  std::unique_ptr<Pool> pool_;
  std::map<std::string, std::string> data_;
};

}  // namespace nzbmesh::broker

#endif  // NZBMESH_TESTS_SERVICES_BROKER_STORM_FIXTURE_H_
