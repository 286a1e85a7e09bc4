// Broker benchmarks (results in docs/PERFORMANCE.md):
//   BM_DirectNntp          768,000-byte articles fetched in-process with the
//                          NNTP client alone, 16 connections × depth 2
//   BM_BrokerFetchSegment  the same through a real broker gRPC server on
//                          loopback (client stub in this process)
//   BM_StreamLatencyIdle / BM_StreamLatencyUnderImports
//                          one stream fetch on an idle pool vs while 200
//                          imports saturate it
//   BM_DispatchOverhead    queue-to-dispatch latency at ~10k STAT/s
// Run: bazel run -c opt //tests/services/broker:broker_benchmark
#include <benchmark/benchmark.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/time/clock.h"
#include "common/metrics/metrics.h"
#include "common/nntp/connection.h"
#include "common/service/service_main.h"
#include "nzbmesh/broker/v1/broker.grpc.pb.h"
#include "services/broker/broker_service.h"
#include "services/broker/pool.h"
#include "tests/fakes/nntp_server/nntp_server.h"

namespace nzbmesh::broker {
namespace {

using ::nzbmesh::testing::FakeNntpServer;
constexpr int kArticles = 64;
constexpr int64_t kArticleBytes = 768000;

struct Env {
  std::unique_ptr<FakeNntpServer> server;
  std::vector<std::string> ids;
  Env() {
    server = std::move(*FakeNntpServer::Start({}));
    std::mt19937_64 rng(1);
    for (int i = 0; i < kArticles; ++i) {
      std::string data(kArticleBytes, '\0');
      for (auto& c : data) c = static_cast<char>(rng());
      ids.push_back(absl::StrCat("bench-", i, "@bench"));
      server->PostYencArticle(ids.back(), data, "bench.bin");
    }
  }
  ProviderOptions Provider(int conns, int depth) const {
    ProviderOptions p;
    p.name = "bench";
    p.connection.host = "127.0.0.1";
    p.connection.port = server->port();
    p.max_connections = conns;
    p.pipeline_depth = depth;
    return p;
  }
};

Env& GetEnv() {
  static Env* env = new Env();
  return *env;
}

void BM_DirectNntp(benchmark::State& state) {
  Env& env = GetEnv();
  const int conns = 16, depth = 2, per_conn = 8;
  int64_t bytes = 0;
  for (auto _ : state) {
    std::vector<std::thread> threads;
    std::atomic<int64_t> total{0};
    for (int c = 0; c < conns; ++c) {
      threads.emplace_back([&, c] {
        nntp::ConnectionOptions o;
        o.host = "127.0.0.1";
        o.port = env.server->port();
        auto conn = nntp::Connection::Dial(o);
        if (!conn.ok()) return;
        std::string buf;
        buf.reserve(1 << 20);
        int sent = 0, read = 0;
        while (read < per_conn) {
          while (sent < per_conn && sent - read < depth) (*conn)->SendBody(env.ids[(c * per_conn + sent++) % kArticles]);
          (void)(*conn)->Flush();
          auto info = (*conn)->ReadBody(&buf);
          if (info.ok()) total += static_cast<int64_t>(buf.size());
          ++read;
        }
      });
    }
    for (auto& t : threads) t.join();
    bytes += total.load();
  }
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_DirectNntp)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(3);

void BM_BrokerFetchSegment(benchmark::State& state) {
  Env& env = GetEnv();
  metrics::Registry registry;
  PoolOptions po;
  po.providers = {env.Provider(16, 2)};
  auto pool = std::move(*Pool::Create(po, &registry));
  BrokerService service(pool.get());
  ServiceOptions so;
  so.name = "broker";
  auto sm = std::move(*ServiceMain::Start(so, {&service}, &registry));
  const int clients = 32, per_client = 4;
  std::vector<std::unique_ptr<v1::Broker::Stub>> stubs;
  for (int i = 0; i < 4; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 64 << 20);
    stubs.push_back(v1::Broker::NewStub(grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", sm->grpc_port()),
                                                                  grpc::InsecureChannelCredentials(), args)));
  }
  int64_t bytes = 0;
  for (auto _ : state) {
    std::atomic<int64_t> total{0};
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        for (int k = 0; k < per_client; ++k) {
          grpc::ClientContext ctx;
          v1::FetchSegmentRequest req;
          req.set_message_id(env.ids[(c * per_client + k) % kArticles]);
          req.set_traffic_class(v1::STREAM);
          req.set_chunk_bytes(static_cast<uint32_t>(state.range(0)));
          auto reader = stubs[c % stubs.size()]->FetchSegment(&ctx, req);
          v1::FetchSegmentResponse resp;
          while (reader->Read(&resp)) total += static_cast<int64_t>(resp.data().size());
          reader->Finish();
        }
      });
    }
    for (auto& t : threads) t.join();
    bytes += total.load();
  }
  state.SetBytesProcessed(bytes);
  sm->Shutdown(absl::Seconds(1));
  pool->Shutdown();
}
BENCHMARK(BM_BrokerFetchSegment)->Arg(256 << 10)->Arg(1 << 20)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(3);

void StreamLatency(benchmark::State& state, bool with_imports) {
  Env& env = GetEnv();
  metrics::Registry registry;
  PoolOptions po;
  po.providers = {env.Provider(8, 2)};
  auto pool = std::move(*Pool::Create(po, &registry));
  const uint64_t session = pool->OpenSession("bench");
  std::atomic<bool> stop{false};
  std::atomic<int> outstanding{0};
  std::thread importer;
  if (with_imports) {
    importer = std::thread([&] {
      int i = 0;
      while (!stop) {
        if (outstanding.load() < 200) {
          ++outstanding;
          FetchRequest r;
          r.message_id = env.ids[i++ % kArticles];
          r.traffic_class = TrafficClass::kImport;
          pool->Fetch(r, [&](FetchResult) { --outstanding; });
        } else {
          absl::SleepFor(absl::Microseconds(200));
        }
      }
    });
    while (outstanding.load() < 150) absl::SleepFor(absl::Milliseconds(1));
  }
  int i = 0;
  for (auto _ : state) {
    absl::Notification done;
    FetchRequest r;
    r.message_id = env.ids[(i++ * 7) % kArticles];
    r.traffic_class = TrafficClass::kStream;
    r.session_id = session;
    pool->Fetch(r, [&](FetchResult) { done.Notify(); });
    done.WaitForNotification();
  }
  stop = true;
  if (importer.joinable()) importer.join();
  while (outstanding.load() > 0) absl::SleepFor(absl::Milliseconds(1));
  pool->CloseSession(session);
  pool->Shutdown();
}
void BM_StreamLatencyIdle(benchmark::State& state) { StreamLatency(state, false); }
void BM_StreamLatencyUnderImports(benchmark::State& state) { StreamLatency(state, true); }
BENCHMARK(BM_StreamLatencyIdle)->UseRealTime()->Unit(benchmark::kMicrosecond)->MinTime(2);
BENCHMARK(BM_StreamLatencyUnderImports)->UseRealTime()->Unit(benchmark::kMicrosecond)->MinTime(2);

void BM_DispatchOverhead(benchmark::State& state) {
  Env& env = GetEnv();
  metrics::Registry registry;
  PoolOptions po;
  po.providers = {env.Provider(16, 16)};
  std::vector<double> waits;  // guarded by the pool's lock (on_dispatch runs under it)
  waits.reserve(1 << 20);
  po.on_dispatch = [&waits](TrafficClass, absl::Duration d) { waits.push_back(absl::ToDoubleMicroseconds(d)); };
  auto pool = std::move(*Pool::Create(po, &registry));
  const int per_iter = 10000;
  for (auto _ : state) {
    absl::BlockingCounter done(per_iter);
    const absl::Time start = absl::Now();
    for (int i = 0; i < per_iter; ++i) {
      // Paced at 10k requests/s.
      const absl::Time due = start + absl::Microseconds(100) * i;
      const absl::Time now = absl::Now();
      if (due > now) absl::SleepFor(due - now);
      FetchRequest r;
      r.message_id = env.ids[i % kArticles];
      r.traffic_class = TrafficClass::kHealth;
      r.stat_only = true;
      pool->Fetch(r, [&](FetchResult) { done.DecrementCount(); });
    }
    done.Wait();
  }
  pool->Shutdown();
  std::sort(waits.begin(), waits.end());
  auto pct = [&](double q) { return waits.empty() ? 0 : waits[static_cast<size_t>(q * (waits.size() - 1))]; };
  state.counters["dispatch_p50_us"] = pct(0.50);
  state.counters["dispatch_p99_us"] = pct(0.99);
  state.counters["requests"] = static_cast<double>(waits.size());
}
BENCHMARK(BM_DispatchOverhead)->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(2);

}  // namespace
}  // namespace nzbmesh::broker
