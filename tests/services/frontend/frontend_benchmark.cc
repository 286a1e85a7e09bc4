// Frontend benchmarks (results in docs/PERFORMANCE.md). One FrontendServer on
// loopback in this process, the in-process fake fetcher behind it (segments of
// 768,000 bytes served from memory), and 2,000 idle keep-alive connections
// held open for the whole run (each answered one /healthz first):
//   BM_RangeStreams/N       N concurrent 16 MB range GETs read flat out by one
//                           poll() client thread; bytes/s over all streams
//   BM_PacedStreams/N       N streams started at once, each read at a player's
//                           pace (2 MB/s, 64 KiB reads) for 3 s: the slowest
//                           first byte (worst_start_ms), then the worst wait
//                           for bytes a stream wanted (worst_gap_ms), and the
//                           read-ahead peak vs the limit
//   BM_TimeToFirstByte/L    a 64 KiB range GET at a random offset on a fresh
//                           connection, segment not cached, fetch latency L µs
//   BM_DirectFetch/L        one fetch from the same fake fetcher (the baseline)
// Counters: rss_mb (whole process: server, fake fetcher data, clients),
// idle_conns, idle_conn_kb (RSS growth per idle connection at setup).
// Run: bazel run -c opt //tests/services/frontend:frontend_benchmark
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "services/frontend/frontend_server.h"
#include "tests/services/frontend/bench_client.h"
#include "tests/services/frontend/fake_catalog.h"
#include "tests/services/frontend/fake_segment_fetcher.h"

namespace nzbmesh::frontend {
namespace {

using testing::ClientResult;
using testing::ClientStream;
using testing::Connect;
using testing::FakeCatalog;
using testing::FakeImporter;
using testing::FakeSegmentFetcher;
using testing::RangeGet;
using testing::ReadStreams;
using testing::RssMb;
using testing::SendAll;

constexpr int kSegments = 64;
constexpr int64_t kSegmentBytes = 768000;
constexpr int64_t kFileBytes = kSegments * kSegmentBytes;  // 49,152,000
constexpr int kIdleConnections = 2000;
constexpr char kPath[] = "/movies/Bench/bench.mkv";
constexpr char kUrl[] = "/dav/movies/Bench/bench.mkv";
constexpr char kColdPath[] = "/movies/Bench/cold.mkv";
constexpr char kColdUrl[] = "/dav/movies/Bench/cold.mkv";

struct Env {
  FakeSegmentFetcher fetcher;
  FakeCatalog catalog;
  CachingCatalogClient caching{&catalog, {}};
  FakeImporter importer;
  std::unique_ptr<FrontendServer> server;
  std::vector<int> idle;
  double idle_conn_kb = 0;

  void AddFile(const char* path, const std::string& prefix) {
    importer::v1::FileLayout layout;
    std::mt19937_64 rng(7);
    for (int i = 0; i < kSegments; ++i) {
      std::string data(kSegmentBytes, '\0');
      for (auto& c : data) c = static_cast<char>(rng());
      std::string id = absl::StrCat(prefix, i, "@bench");
      fetcher.AddSegment(id, std::move(data));
      auto* s = layout.add_segments();
      s->set_message_id(id);
      s->set_offset(i * kSegmentBytes);
      s->set_size(kSegmentBytes);
    }
    auto* e = layout.mutable_entry();
    e->set_path(path);
    e->set_name("bench.mkv");
    e->set_size(kFileBytes);
    e->set_mtime_unix(1700000000);
    e->set_etag(prefix);
    catalog.AddFile(layout);
  }

  Env() {
    rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    AddFile(kPath, "seg-");
    FrontendServer::Options o;
    o.idle_timeout = absl::Hours(1);
    server = std::move(*FrontendServer::Create(o, {&fetcher, &caching, &importer, nullptr}));
    if (!server->Start().ok()) std::abort();
    double before = RssMb();
    std::string health = "GET /healthz HTTP/1.1\r\nHost: b\r\n\r\n";
    for (int i = 0; i < kIdleConnections; ++i) {
      int fd = Connect(server->port());
      if (fd < 0 || !SendAll(fd, health)) std::abort();
      char buf[512];
      if (recv(fd, buf, sizeof(buf), 0) <= 0) std::abort();
      idle.push_back(fd);
    }
    idle_conn_kb = (RssMb() - before) * 1024.0 / kIdleConnections;
  }
};

Env& GetEnv() {
  static Env* env = new Env();
  return *env;
}

// A second server for cold-segment time to first byte: no segment LRU, so
// every request fetches.
struct ColdEnv {
  FakeSegmentFetcher fetcher;
  FakeCatalog catalog;
  CachingCatalogClient caching{&catalog, {}};
  FakeImporter importer;
  std::unique_ptr<FrontendServer> server;
  ColdEnv() {
    importer::v1::FileLayout layout;
    std::string data(kSegmentBytes, 'x');
    for (int i = 0; i < kSegments; ++i) {
      std::string id = absl::StrCat("cold-", i, "@bench");
      fetcher.AddSegment(id, data);
      auto* s = layout.add_segments();
      s->set_message_id(id);
      s->set_offset(i * kSegmentBytes);
      s->set_size(kSegmentBytes);
    }
    auto* e = layout.mutable_entry();
    e->set_path(kColdPath);
    e->set_name("cold.mkv");
    e->set_size(kFileBytes);
    e->set_mtime_unix(1700000000);
    e->set_etag("cold");
    catalog.AddFile(layout);
    FrontendServer::Options o;
    o.lru_segments_per_file = 0;
    server = std::move(*FrontendServer::Create(o, {&fetcher, &caching, &importer, nullptr}));
    if (!server->Start().ok()) std::abort();
  }
};

ColdEnv& GetColdEnv() {
  static ColdEnv* env = new ColdEnv();
  return *env;
}

void BM_RangeStreams(benchmark::State& state) {
  Env& env = GetEnv();
  const int n = static_cast<int>(state.range(0));
  constexpr int64_t kRange = 16 << 20;
  int64_t bytes = 0;
  int failed = 0;
  int iteration = 0;
  for (auto _ : state) {
    std::vector<ClientStream> streams(n);
    for (int i = 0; i < n; ++i) {
      // Different offsets so streams do not share segments in flight.
      int64_t first = ((iteration * 7 + i * 13) % (kSegments - 22)) * kSegmentBytes + 1000;
      streams[i].fd = Connect(env.server->port());
      SendAll(streams[i].fd, RangeGet(kUrl, first, first + kRange - 1));
    }
    ClientResult r = ReadStreams(streams, 0, absl::Seconds(60));
    bytes += r.bytes;
    failed += r.failed;
    ++iteration;
  }
  state.SetBytesProcessed(bytes);
  state.counters["failed"] = failed;
  state.counters["rss_mb"] = RssMb();
  state.counters["idle_conns"] = static_cast<double>(env.idle.size());
  state.counters["idle_conn_kb"] = env.idle_conn_kb;
}
BENCHMARK(BM_RangeStreams)->Arg(1)->Arg(8)->Arg(64)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_PacedStreams(benchmark::State& state) {
  Env& env = GetEnv();
  const int n = static_cast<int>(state.range(0));
  constexpr double kPace = 2e6;  // bytes/s, a high-bitrate 1080p stream
  absl::Duration worst, worst_start, worst_lag;
  int64_t bytes = 0;
  int failed = 0;
  int64_t peak_read_ahead = 0;
  for (auto _ : state) {
    std::vector<ClientStream> streams(n);
    for (int i = 0; i < n; ++i) {
      // At least 9 MB left after the start: every stream plays the whole 3 s.
      int64_t first = (i % (kSegments - 12)) * kSegmentBytes;
      streams[i].fd = Connect(env.server->port());
      SendAll(streams[i].fd, absl::StrCat("GET ", kUrl, " HTTP/1.1\r\nHost: b\r\nRange: bytes=", first, "-\r\n\r\n"));
    }
    absl::Notification done;
    std::thread sampler([&] {
      while (!done.WaitForNotificationWithTimeout(absl::Milliseconds(10))) {
        peak_read_ahead = std::max(peak_read_ahead, env.server->memory_budget().used());
      }
    });
    ClientResult r = ReadStreams(streams, kPace, absl::Seconds(3));
    done.Notify();
    sampler.join();
    worst = std::max(worst, r.worst_gap);
    worst_start = std::max(worst_start, r.worst_first_byte);
    worst_lag = std::max(worst_lag, r.worst_lag);
    bytes += r.bytes;
    failed += r.failed;
  }
  state.SetBytesProcessed(bytes);
  state.counters["worst_gap_ms"] = absl::ToDoubleMilliseconds(worst);
  state.counters["worst_start_ms"] = absl::ToDoubleMilliseconds(worst_start);
  state.counters["worst_lag_ms"] = absl::ToDoubleMilliseconds(worst_lag);
  state.counters["failed"] = failed;
  state.counters["read_ahead_peak_mb"] = static_cast<double>(peak_read_ahead) / 1e6;
  state.counters["read_ahead_limit_mb"] = static_cast<double>(env.server->memory_budget().limit()) / 1e6;
  state.counters["rss_mb"] = RssMb();
  state.counters["idle_conns"] = static_cast<double>(env.idle.size());
}
BENCHMARK(BM_PacedStreams)->Arg(200)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_TimeToFirstByte(benchmark::State& state) {
  ColdEnv& env = GetColdEnv();
  env.fetcher.SetLatency(absl::Microseconds(state.range(0)));
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int64_t> offset(0, kFileBytes - 65536);
  char buf[65536];
  for (auto _ : state) {
    int64_t first = offset(rng);
    absl::Time t0 = absl::Now();
    int fd = Connect(env.server->port());
    SendAll(fd, RangeGet(kColdUrl, first, first + 65535));
    std::string head;
    bool got_body = false;
    while (!got_body) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        state.SkipWithError("connection closed before the body");
        break;
      }
      head.append(buf, static_cast<size_t>(n));
      size_t end = head.find("\r\n\r\n");
      got_body = end != std::string::npos && head.size() > end + 4;
    }
    state.SetIterationTime(absl::ToDoubleSeconds(absl::Now() - t0));
    close(fd);  // the rest of the response is abandoned (as a seeking player does)
  }
}
BENCHMARK(BM_TimeToFirstByte)->Arg(0)->Arg(2000)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_DirectFetch(benchmark::State& state) {
  ColdEnv& env = GetColdEnv();
  env.fetcher.SetLatency(absl::Microseconds(state.range(0)));
  int i = 0;
  for (auto _ : state) {
    absl::Notification done;
    auto h = env.fetcher.Fetch(absl::StrCat("cold-", i++ % kSegments, "@bench"), {},
                               [&](absl::StatusOr<Segment>) { done.Notify(); });
    done.WaitForNotification();
  }
}
BENCHMARK(BM_DirectFetch)->Arg(0)->Arg(2000)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace nzbmesh::frontend
