// Broker benchmarks (results in docs/PERFORMANCE.md):
//   BM_DirectNntp          768,000-byte articles fetched with the NNTP client
//                          alone, 16 connections × depth 2
//   BM_BrokerFetchSegment  the same articles through FetchSegment of a broker
//                          with a 16 × 2 pool (args: chunk_bytes, client
//                          malloc keeps freed heap)
//   BM_BrokerToDirect      both, alternating round by round, so that both see
//                          the same machine load; counters give the ratio
//     In these three the client runs in this process and the news server and
//     the broker in another (broker_bench_server): nothing but sockets is
//     shared. cli_cpu/srv_cpu are the core-seconds per GB each side burned.
//   BM_StreamLatencyIdle / BM_StreamLatencyUnderImports
//                          one stream fetch on an idle pool vs while 200
//                          imports saturate it (in-process pool)
//   BM_DispatchOverhead    queue-to-dispatch latency at ~10k STAT/s
// Run: bazel run -c opt //tests/services/broker:broker_benchmark
#include <benchmark/benchmark.h>
#include <grpcpp/grpcpp.h>
#include <malloc.h>
#include <spawn.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/metrics/metrics.h"
#include "common/nntp/connection.h"
#include "nzbmesh/broker/v1/broker.grpc.pb.h"
#include "services/broker/pool.h"
#include "tests/fakes/nntp_server/nntp_server.h"

extern char** environ;

namespace nzbmesh::broker {
namespace {

using ::nzbmesh::testing::FakeNntpServer;
constexpr int kArticles = 64;
constexpr int64_t kArticleBytes = 768000;

// A provider of `conns` × `depth` slots on `server`.
ProviderOptions ProviderOn(const FakeNntpServer& server, const std::string& name, int conns, int depth) {
  ProviderOptions p;
  p.name = name;
  p.connection.host = "127.0.0.1";
  p.connection.port = server.port();
  p.max_connections = conns;
  p.pipeline_depth = depth;
  return p;
}

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
  ProviderOptions Provider(int conns, int depth) const { return ProviderOn(*server, "bench", conns, depth); }
};

Env& GetEnv() {
  static Env* env = new Env();
  return *env;
}

// The news server and the broker in a child process (broker_bench_server,
// built next to this binary); ports read from its stdout. The child exits
// when its stdin closes, i.e. when this process exits.
struct RemoteEnv {
  pid_t pid = -1;
  int nntp_port = 0;
  int grpc_port = 0;
  std::vector<std::string> ids;
  std::vector<std::unique_ptr<v1::Broker::Stub>> stubs;

  RemoteEnv() {
    char exe[4096];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) Die("readlink /proc/self/exe");
    exe[n] = '\0';
    std::string path(exe);
    path = path.substr(0, path.rfind('/') + 1) + "broker_bench_server";
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) Die("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    std::string a1 = absl::StrCat(kArticles), a2 = absl::StrCat(kArticleBytes), a3 = "16", a4 = "2";
    char* argv[] = {path.data(), a1.data(), a2.data(), a3.data(), a4.data(), nullptr};
    if (posix_spawn(&pid, path.c_str(), &fa, nullptr, argv, environ) != 0) Die("spawn " + path);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    // in[1] stays open for our lifetime: its close is the child's signal to exit.
    std::string line;
    char c;
    while (read(out[0], &c, 1) == 1 && c != '\n') line.push_back(c);
    close(out[0]);
    if (std::sscanf(line.c_str(), "%d %d", &nntp_port, &grpc_port) != 2) Die("broker_bench_server did not start");
    for (int i = 0; i < kArticles; ++i) ids.push_back(absl::StrCat("bench-", i, "@bench"));
    // Four HTTP/2 connections, as four frontends would have.
    for (int i = 0; i < 4; ++i) {
      grpc::ChannelArguments args;
      args.SetInt("grpc.use_local_subchannel_pool", 1);
      args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 64 << 20);
      stubs.push_back(v1::Broker::NewStub(grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", grpc_port),
                                                                    grpc::InsecureChannelCredentials(), args)));
    }
  }
  static void Die(const std::string& what) {
    std::fprintf(stderr, "broker_benchmark: %s\n", what.c_str());
    std::abort();
  }
  // CPU seconds used so far by this process and by the server process.
  double ClientCpu() const {
    rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
  }
  double ServerCpu() const {
    std::ifstream f(absl::StrCat("/proc/", pid, "/stat"));
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::istringstream rest(stat.substr(stat.rfind(')') + 2));  // after "pid (comm) "
    std::string field;
    double ticks = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i >= 14) ticks += std::stod(field);  // utime, stime
    }
    return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
};

RemoteEnv& GetRemote() {
  static RemoteEnv* env = new RemoteEnv();
  return *env;
}

// One round of 128 articles with the NNTP client alone: 16 connections, each
// keeping 2 BODY commands in flight. Returns the decoded bytes.
int64_t DirectRound(RemoteEnv& env) {
  const int conns = 16, depth = 2, per_conn = 8;
  std::vector<std::thread> threads;
  std::atomic<int64_t> total{0};
  for (int c = 0; c < conns; ++c) {
    threads.emplace_back([&, c] {
      nntp::ConnectionOptions o;
      o.host = "127.0.0.1";
      o.port = env.nntp_port;
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
  return total.load();
}

// The first error of a broker round, for the benchmark's error message.
absl::Mutex g_round_error_mu;
std::string g_round_error ABSL_GUARDED_BY(g_round_error_mu);

// The same 128 articles through FetchSegment: 32 concurrent calls (the
// broker's 16 × 2 slots), 4 after another on each.
int64_t BrokerRound(RemoteEnv& env, uint32_t chunk_bytes) {
  const int clients = 32, per_client = 4;
  std::atomic<int64_t> total{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (int k = 0; k < per_client; ++k) {
        grpc::ClientContext ctx;
        v1::FetchSegmentRequest req;
        req.set_message_id(env.ids[(c * per_client + k) % kArticles]);
        req.set_traffic_class(v1::STREAM);
        req.set_chunk_bytes(chunk_bytes);
        auto reader = env.stubs[c % env.stubs.size()]->FetchSegment(&ctx, req);
        v1::FetchSegmentResponse resp;
        int64_t got = 0;
        while (reader->Read(&resp)) got += static_cast<int64_t>(resp.data().size());
        grpc::Status st = reader->Finish();
        if (st.ok()) {
          total += got;
        } else {
          absl::MutexLock lock(&g_round_error_mu);
          if (g_round_error.empty()) {
            g_round_error = absl::StrCat(req.message_id(), ": ", st.error_code(), " ", st.error_message());
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  return total.load();
}

// Every round fetches 128 whole articles; anything less is a failure, not a
// slower result.
bool RoundOk(benchmark::State& state, int64_t bytes, const char* what) {
  if (bytes == 128 * kArticleBytes) return true;
  absl::MutexLock lock(&g_round_error_mu);
  state.SkipWithError(
      absl::StrCat(what, " round got ", bytes, " bytes, not 128 articles; first error: ", g_round_error).c_str());
  return false;
}

void SetCpuCounters(benchmark::State& state, const RemoteEnv& env, double cli0, double srv0, int64_t bytes) {
  const double gb = static_cast<double>(bytes) / 1e9;
  if (gb <= 0) return;
  state.counters["cli_cpu_s/GB"] = (env.ClientCpu() - cli0) / gb;
  state.counters["srv_cpu_s/GB"] = (env.ServerCpu() - srv0) / gb;
}

void BM_DirectNntp(benchmark::State& state) {
  RemoteEnv& env = GetRemote();
  const double cli0 = env.ClientCpu(), srv0 = env.ServerCpu();
  int64_t bytes = 0;
  for (auto _ : state) {
    const int64_t got = DirectRound(env);
    if (!RoundOk(state, got, "direct")) break;
    bytes += got;
  }
  state.SetBytesProcessed(bytes);
  SetCpuCounters(state, env, cli0, srv0, bytes);
}
BENCHMARK(BM_DirectNntp)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(3);

// A client that keeps freed heap memory instead of handing it back to the
// kernel. With glibc's default 128 KiB trim threshold, the client's arenas
// shrink after each burst of gRPC read slices and protobuf strings and every
// next burst page-faults fresh zeroed pages: about half the client's CPU on
// these machines (docs/PERFORMANCE.md). Sticky for the rest of the run.
void KeepFreedHeap() { mallopt(M_TRIM_THRESHOLD, 256 << 20); }

// Args: chunk_bytes; 1 = KeepFreedHeap() in the client first.
void BM_BrokerFetchSegment(benchmark::State& state) {
  RemoteEnv& env = GetRemote();
  if (state.range(1) != 0) KeepFreedHeap();
  const auto chunk = static_cast<uint32_t>(state.range(0));
  BrokerRound(env, chunk);  // warm the HTTP/2 connections and windows
  const double cli0 = env.ClientCpu(), srv0 = env.ServerCpu();
  int64_t bytes = 0;
  for (auto _ : state) {
    const int64_t got = BrokerRound(env, chunk);
    if (!RoundOk(state, got, "broker")) break;
    bytes += got;
  }
  state.SetBytesProcessed(bytes);
  SetCpuCounters(state, env, cli0, srv0, bytes);
}
// Default client malloc first (KeepFreedHeap cannot be undone).
BENCHMARK(BM_BrokerFetchSegment)
    ->ArgNames({"chunk", "keep_heap"})
    ->Args({64 << 10, 0})
    ->Args({256 << 10, 0})
    ->Args({1 << 20, 0})
    ->Args({64 << 10, 1})
    ->Args({1 << 20, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(3);

// Direct and broker rounds alternate, so a change in machine load hits both.
// On a loaded machine wall-clock speed also depends on how much CPU the
// scheduler grants each side (the broker path has more runnable threads), so
// cpu_ratio compares what both paths cost instead: direct core-seconds per
// byte (both processes) over broker core-seconds per byte.
// The client keeps its freed heap (KeepFreedHeap), as a frontend should.
void BM_BrokerToDirect(benchmark::State& state) {
  RemoteEnv& env = GetRemote();
  KeepFreedHeap();
  const auto chunk = static_cast<uint32_t>(state.range(0));
  BrokerRound(env, chunk);
  int64_t direct_bytes = 0, broker_bytes = 0;
  absl::Duration direct_time, broker_time;
  double direct_cpu = 0, broker_cpu = 0;
  auto cpu = [&env] { return env.ClientCpu() + env.ServerCpu(); };
  for (auto _ : state) {
    const absl::Time t0 = absl::Now();
    const double c0 = cpu();
    const int64_t direct_got = DirectRound(env);
    const absl::Time t1 = absl::Now();
    const double c1 = cpu();
    const int64_t broker_got = BrokerRound(env, chunk);
    broker_time += absl::Now() - t1;
    broker_cpu += cpu() - c1;
    direct_time += t1 - t0;
    direct_cpu += c1 - c0;
    if (!RoundOk(state, direct_got, "direct") || !RoundOk(state, broker_got, "broker")) return;
    direct_bytes += direct_got;
    broker_bytes += broker_got;
  }
  const double direct = static_cast<double>(direct_bytes) / absl::ToDoubleSeconds(direct_time) / 1e9;
  const double broker = static_cast<double>(broker_bytes) / absl::ToDoubleSeconds(broker_time) / 1e9;
  state.counters["direct_GB/s"] = direct;
  state.counters["broker_GB/s"] = broker;
  state.counters["ratio"] = broker / direct;
  if (broker_cpu > 0 && direct_bytes > 0) {
    state.counters["cpu_ratio"] =
        (direct_cpu / static_cast<double>(direct_bytes)) / (broker_cpu / static_cast<double>(broker_bytes));
  }
}
BENCHMARK(BM_BrokerToDirect)->Arg(1 << 20)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(6);

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

// B15 at a real provider's pace: every reply starts 20 ms after its command
// arrives (pipelined commands overlap their latencies, as on a real link)
// and is sent at 40 MB/s (768 KB in ~19 ms). One player keeps a read-ahead
// window of 8 STREAM fetches on 4 connections × depth 2: as each fetch ends
// the next is handed to the connection still reading its other reply. With
// send_while_reading (arg 1) that command goes out at once and its latency
// overlaps the reply in progress; without (arg 0, the behaviour before B15)
// it goes out after that reply, so each connection alternates latency and
// transfer.
void BM_StreamAtProviderLatency(benchmark::State& state) {
  static FakeNntpServer* server = [] {
    FakeNntpServer* s = FakeNntpServer::Start({})->release();
    std::mt19937_64 rng(2);
    for (int i = 0; i < 16; ++i) {
      std::string data(kArticleBytes, '\0');
      for (auto& c : data) c = static_cast<char>(rng());
      s->PostYencArticle(absl::StrCat("lat-", i, "@bench"), data, "lat.bin");
    }
    FakeNntpServer::Fault f;
    f.latency = absl::Milliseconds(20);
    f.bytes_per_second = 40'000'000;
    s->SetDefaultFault(f);
    return s;
  }();
  metrics::Registry registry;
  PoolOptions po;
  po.providers = {ProviderOn(*server, "latency", 4, 2)};
  po.send_while_reading = state.range(0) != 0;
  constexpr int kWindow = 8, kPerRound = 64;
  po.max_slots_per_stream = kWindow;  // the window fills the 4 × 2 slots
  auto pool = std::move(*Pool::Create(po, &registry));
  const uint64_t session = pool->OpenSession("bench");
  // The player's side runs on its own thread, as a frontend's next
  // FetchSegment arrives over gRPC a little after the last one finished (not
  // inline on the connection thread that delivered it).
  absl::Mutex mu;
  absl::CondVar changed;
  int finished = 0, to_start = 0;
  int64_t got = 0;
  bool quit = false;
  std::thread player([&] {
    int next = 0;
    while (true) {
      {
        absl::MutexLock lock(&mu);
        while (to_start == 0 && !quit) changed.Wait(&mu);
        if (quit) return;
        --to_start;
      }
      FetchRequest r;
      r.message_id = absl::StrCat("lat-", next++ % 16, "@bench");
      r.traffic_class = TrafficClass::kStream;
      r.session_id = session;
      r.read_ahead = true;
      pool->Fetch(r, [&](FetchResult res) {
        absl::MutexLock lock(&mu);
        ++finished;
        if (res.status.ok() && res.data) got += static_cast<int64_t>(res.data->size());
        changed.SignalAll();
      });
    }
  });
  int64_t bytes = 0;
  for (auto _ : state) {
    absl::MutexLock lock(&mu);
    finished = 0;
    got = 0;
    int started = kWindow;
    to_start = kWindow;
    changed.SignalAll();
    int seen = 0;
    while (finished < kPerRound) {
      while (finished == seen) changed.Wait(&mu);
      // Each finished fetch makes room for the next one in the window.
      const int more = std::min(finished - seen, kPerRound - started);
      seen = finished;
      started += more;
      to_start += more;
      if (more > 0) changed.SignalAll();
    }
    if (got != kPerRound * kArticleBytes) {
      state.SkipWithError("a fetch failed");
      break;
    }
    bytes += got;
  }
  {
    absl::MutexLock lock(&mu);
    quit = true;
    changed.SignalAll();
  }
  player.join();
  state.SetBytesProcessed(bytes);
  pool->CloseSession(session);
  pool->Shutdown();
}
BENCHMARK(BM_StreamAtProviderLatency)
    ->ArgName("send_while_reading")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

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
