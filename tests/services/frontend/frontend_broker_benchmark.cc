// The frontend through the real broker (results in docs/PERFORMANCE.md).
//
// Two processes on loopback:
//   backend (forked child)  the test news server (tests/fakes/nntp_server)
//                           and a real broker: Pool + BrokerService behind
//                           ServiceMain's gRPC server, one provider of 16
//                           connections × pipeline depth 2
//   this process            a real FrontendServer (default options) with the
//                           real GrpcSegmentFetcher over a MakeChannel()
//                           channel, the in-process fake catalog holding the
//                           layouts, and the raw-socket HTTP clients
// so rss_mb is the frontend's process (plus the fake catalog and the
// clients) and backend_rss_mb the broker's and news server's.
//
// The news server holds 64 random articles of 768,000 decoded bytes; files
// are laid out over them cyclically (the broker has no cache and the
// frontend's per-file LRU holds 8 segments, so every read of a segment is a
// fetch from the news server).
//
//   BM_Sequential2GiB       one GET of a 2,797-segment file (2.148 GB,
//                           2.0 GiB) read flat out, against reading the same
//                           segments with FetchSegment (GrpcSegmentFetcher,
//                           one stream session, max_read_ahead = 16 fetches
//                           in flight) in the same iteration; GB/s of both
//                           and their ratio (goal ≥ 0.8)
//   BM_DirectFetchOne/S     one FetchSegment of an uncached segment (the
//                           baseline): S=0 PROBE class, S=1 STREAM class in
//                           an open stream session
//   BM_TimeToFirstByte/B/L/K GET at a random offset on a fresh connection of a
//                           frontend with no segment LRU, until the first
//                           body byte; B=1: a 64 KiB range (PROBE class),
//                           B=0: open-ended "bytes=N-" as a player seeks
//                           (STREAM class, stream session); each GET follows
//                           one direct FetchSegment of the same class on an
//                           idle broker: `ratio` = median GET / median of
//                           those fetches (goal ≤ 1.2); also the ratio to
//                           BM_DirectFetchOne's median and the fetches the
//                           frontend had started when the first byte came;
//                           L=20: over articles the news server answers
//                           after 20 ms (a provider's latency), and for B=0
//                           the time until the next segment is through too;
//                           K=1: every GET on one kept-alive connection
//                           (rclone's client), so no connect or accept
//   BM_PacedStreams/N       N players (50, 200), each its own file, started
//                           at once and read at 2 MB/s in 64 KiB reads for
//                           5 s: worst wait for wanted bytes, slowest start,
//                           peaks of the frontend's RSS, live heap and
//                           read-ahead budget against stream_memory_limit;
//                           the live heap beside the budget's bytes and
//                           malloc's free arena bytes when RSS peaked
//   BM_CloseLatencyBlocked  a GET that has its first segment and is blocked on
//                           the second (the news server holds its reply for
//                           1 s); time from the client's close() to the
//                           frontend having released every broker call of
//                           that response (fetches and stream session)
// Run: bazel run -c opt //tests/services/frontend:frontend_broker_benchmark
// Experiments (not defaults): NZBMESH_BENCH_STREAM_MEMORY_MB,
// NZBMESH_BENCH_MAX_READ_AHEAD, NZBMESH_BENCH_LRU_SEGMENTS and
// NZBMESH_BENCH_INITIAL_READ_AHEAD override those options of the main
// frontend, NZBMESH_BENCH_TTFB_READ_AHEAD the initial read-ahead of the TTFB
// frontend, NZBMESH_BENCH_TTFB_FRESH_READ_AHEAD and
// NZBMESH_BENCH_TTFB_FRESH_DELAY_US its fresh read-ahead and its delay.
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <benchmark/benchmark.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/grpc/credentials.h"
#include "common/metrics/metrics.h"
#include "common/service/service_main.h"
#include "services/broker/broker_service.h"
#include "services/broker/pool.h"
#include "services/frontend/frontend_server.h"
#include "services/frontend/memory_limit.h"
#include "services/frontend/grpc_segment_fetcher.h"
#include "tests/fakes/nntp_server/nntp_server.h"
#include "tests/services/frontend/bench_client.h"
#include "tests/services/frontend/fake_catalog.h"

namespace nzbmesh::frontend {
namespace {

using ::nzbmesh::testing::FakeNntpServer;
using testing::ClientResult;
using testing::ClientStream;
using testing::Connect;
using testing::FakeCatalog;
using testing::FakeImporter;
using testing::ReadStreams;
using testing::RssMb;
using testing::SendAll;

constexpr int kArticles = 64;
constexpr int64_t kSegmentBytes = 768000;
constexpr int kBigSegments = 2797;  // ⌈2 GiB / 768,000⌉
constexpr int64_t kBigBytes = kBigSegments * kSegmentBytes;
constexpr char kBigPath[] = "/movies/Big/big.mkv";
constexpr char kBigUrl[] = "/dav/movies/Big/big.mkv";
constexpr int kPacedStreams = 200;
constexpr int kPacedSegments = 40;  // 30.7 MB: more than 5 s at 2 MB/s plus a full read-ahead
constexpr int kHeldArticles = 8;
constexpr absl::Duration kHeldLatency = absl::Seconds(1);
constexpr char kHeldPath[] = "/movies/Held/held.mkv";
constexpr char kHeldUrl[] = "/dav/movies/Held/held.mkv";
// Articles whose every reply waits kSlowLatency (a real provider's answer
// time, small end) and the file laid over them: the time-to-first-byte runs
// "at provider latency".
constexpr int kSlowArticles = 16;
constexpr absl::Duration kSlowLatency = absl::Milliseconds(20);
constexpr char kSlowPath[] = "/movies/Slow/slow.mkv";
constexpr char kSlowUrl[] = "/dav/movies/Slow/slow.mkv";
constexpr int kProviderConnections = 16;
constexpr int kPipelineDepth = 2;

std::string ArticleId(int i) { return absl::StrCat("bench-", i % kArticles, "@bench"); }
std::string HeldId(int i) { return absl::StrCat("held-", i, "@bench"); }
std::string SlowId(int i) { return absl::StrCat("slow-", i % kSlowArticles, "@bench"); }
std::string PacedPath(int i) { return absl::StrCat("/movies/Paced/p", i, ".mkv"); }

// Decoded bytes of article `i`; the same in both processes.
std::string ArticleData(int i) {
  std::mt19937_64 rng(static_cast<uint64_t>(i) + 1);
  std::string data(kSegmentBytes, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  return data;
}

// --- Backend process --------------------------------------------------------

// Runs in the forked child: the test news server and the broker. Writes the
// broker's gRPC port as a line to `report_fd`, then serves until `control_fd`
// reaches EOF (the benchmark process closed it or died) and exits.
[[noreturn]] void RunBackend(int report_fd, int control_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int devnull = open("/dev/null", O_WRONLY);
  if (devnull >= 0) dup2(devnull, STDOUT_FILENO);  // the benchmark report stays the parent's
  auto server = FakeNntpServer::Start({});
  if (!server.ok()) _exit(3);
  for (int i = 0; i < kArticles; ++i) (*server)->PostYencArticle(ArticleId(i), ArticleData(i), "bench.mkv");
  FakeNntpServer::Fault held;
  held.latency = kHeldLatency;
  for (int i = 0; i < kHeldArticles; ++i) {
    (*server)->PostYencArticle(HeldId(i), ArticleData(i), "held.mkv");
    (*server)->SetFault(HeldId(i), held);
  }
  FakeNntpServer::Fault slow;
  slow.latency = kSlowLatency;
  for (int i = 0; i < kSlowArticles; ++i) {
    (*server)->PostYencArticle(SlowId(i), ArticleData(i), "slow.mkv");
    (*server)->SetFault(SlowId(i), slow);
  }
  metrics::Registry registry;
  broker::PoolOptions po;
  broker::ProviderOptions p;
  p.name = "bench";
  p.connection.host = "127.0.0.1";
  p.connection.port = (*server)->port();
  p.max_connections = kProviderConnections;
  p.pipeline_depth = kPipelineDepth;
  po.providers = {p};
  auto pool = broker::Pool::Create(po, &registry);
  if (!pool.ok()) _exit(4);
  broker::BrokerService service(pool->get());
  ServiceOptions so;
  so.name = "broker";
  so.metrics_listen = "";
  auto sm = ServiceMain::Start(so, {&service}, &registry);
  if (!sm.ok()) _exit(5);
  (*sm)->OnShutdown([&] { service.EndLongLivedCalls(); });
  std::string line = absl::StrCat((*sm)->grpc_port(), "\n");
  if (write(report_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) _exit(6);
  close(report_fd);
  char c;
  while (true) {
    ssize_t n = read(control_fd, &c, 1);
    if (n == 0 || (n < 0 && errno != EINTR)) break;
  }
  (*sm)->Shutdown(absl::Seconds(1));
  (*pool)->Shutdown();
  (*server)->Stop();
  _exit(0);
}

int ThreadCount() {
  FILE* f = fopen("/proc/self/status", "r");
  if (f == nullptr) return -1;
  char line[256];
  int threads = -1;
  while (fgets(line, sizeof(line), f) != nullptr) {
    if (strncmp(line, "Threads:", 8) == 0) threads = atoi(line + 8);
  }
  fclose(f);
  return threads;
}

struct Backend {
  pid_t pid = -1;
  int control_fd = -1;  // closing it ends the backend
  int grpc_port = 0;
};

// Forks the backend. Must run while this process has one thread (fork copies
// only the caller), i.e. before gRPC or the frontend start here.
Backend StartBackend() {
  if (ThreadCount() != 1) {
    fprintf(stderr, "StartBackend: %d threads; fork needs a single-threaded process\n", ThreadCount());
    std::abort();
  }
  int report[2], control[2];
  if (pipe(report) != 0 || pipe(control) != 0) std::abort();
  pid_t pid = fork();
  if (pid < 0) std::abort();
  if (pid == 0) {
    close(report[0]);
    close(control[1]);
    RunBackend(report[1], control[0]);
  }
  close(report[1]);
  close(control[0]);
  fcntl(control[1], F_SETFD, FD_CLOEXEC);
  std::string line;
  char c;
  while (read(report[0], &c, 1) == 1 && c != '\n') line.push_back(c);
  close(report[0]);
  Backend b;
  b.pid = pid;
  b.control_fd = control[1];
  if (!absl::SimpleAtoi(line, &b.grpc_port) || b.grpc_port <= 0) {
    int status = 0;
    waitpid(pid, &status, 0);
    fprintf(stderr, "backend failed to start (exit status %d)\n", WEXITSTATUS(status));
    std::abort();
  }
  return b;
}

// --- Frontend side ----------------------------------------------------------

importer::v1::FileLayout MakeLayout(const std::string& path, const std::vector<std::string>& ids) {
  importer::v1::FileLayout layout;
  for (size_t i = 0; i < ids.size(); ++i) {
    auto* s = layout.add_segments();
    s->set_message_id(ids[i]);
    s->set_offset(static_cast<int64_t>(i) * kSegmentBytes);
    s->set_size(kSegmentBytes);
  }
  auto* e = layout.mutable_entry();
  e->set_path(path);
  e->set_name(path.substr(path.rfind('/') + 1));
  e->set_size(static_cast<int64_t>(ids.size()) * kSegmentBytes);
  e->set_mtime_unix(1700000000);
  e->set_etag(path);
  return layout;
}

// Forwards to another fetcher and counts the fetches started (how much the
// frontend asks the broker for before a response's first byte).
class CountingFetcher : public SegmentFetcher {
 public:
  explicit CountingFetcher(SegmentFetcher* inner) : inner_(inner) {}
  std::unique_ptr<FetchHandle> Fetch(const std::string& message_id, const FetchOptions& options,
                                     FetchCallback done) override {
    started_.fetch_add(1, std::memory_order_relaxed);
    return inner_->Fetch(message_id, options, std::move(done));
  }
  std::unique_ptr<StreamSession> OpenSession(const std::string& label) override { return inner_->OpenSession(label); }
  int StreamShare() const override { return inner_->StreamShare(); }
  int64_t started() const { return started_.load(std::memory_order_relaxed); }

 private:
  SegmentFetcher* const inner_;
  std::atomic<int64_t> started_{0};
};

// The frontend process limits glibc's arenas first thing in main()
// (LimitMallocArenas); this process hosts the frontend, so it does the same
// before any thread starts. MALLOC_ARENA_MAX in the environment overrides it.
const int kMallocArenas = LimitMallocArenas();

struct Env {
  Backend backend;
  std::unique_ptr<GrpcSegmentFetcher> fetcher;
  std::unique_ptr<broker::v1::Broker::Stub> broker_stub;
  FakeCatalog catalog;
  CachingCatalogClient caching{&catalog, {}};
  FakeImporter importer;
  // Default options, as deployed.
  std::unique_ptr<FrontendServer> server;
  // No segment LRU: every time-to-first-byte request fetches.
  std::unique_ptr<CountingFetcher> cold_fetcher;
  std::unique_ptr<FrontendServer> cold;
  std::vector<std::string> big_ids;
  // This process's RSS (MiB) once both frontends listen, before any request:
  // what BM_PacedStreams' peak is compared with (rss_over_idle_mb).
  double idle_rss_mb = 0;

  Env() : backend(StartBackend()) {
    // As the frontend's main() does (the forked backend, a broker, keeps
    // glibc's defaults, as the broker's main does).
    KeepFreedHeap();
    auto channel = MakeChannel(absl::StrCat("127.0.0.1:", backend.grpc_port), ClientTlsOptions{});
    if (!channel.ok()) std::abort();
    fetcher = std::make_unique<GrpcSegmentFetcher>(*channel, GrpcSegmentFetcher::Options{});
    broker_stub = broker::v1::Broker::NewStub(*channel);
    for (int i = 0; i < kBigSegments; ++i) big_ids.push_back(ArticleId(i));
    catalog.AddFile(MakeLayout(kBigPath, big_ids));
    for (int s = 0; s < kPacedStreams; ++s) {
      std::vector<std::string> ids;
      for (int i = 0; i < kPacedSegments; ++i) ids.push_back(ArticleId(s * 7 + i));
      catalog.AddFile(MakeLayout(PacedPath(s), ids));
    }
    std::vector<std::string> held = {ArticleId(0)};
    for (int i = 0; i < kHeldArticles; ++i) held.push_back(HeldId(i));
    std::vector<std::string> slow;
    for (int i = 0; i < kSlowArticles; ++i) slow.push_back(SlowId(i));
    catalog.AddFile(MakeLayout(kSlowPath, slow));
    catalog.AddFile(MakeLayout(kHeldPath, held));

    FrontendServer::Options o;
    if (const char* mb = getenv("NZBMESH_BENCH_STREAM_MEMORY_MB")) o.stream_memory_limit = int64_t{atoi(mb)} << 20;
    if (const char* n = getenv("NZBMESH_BENCH_MAX_READ_AHEAD")) o.max_read_ahead = atoi(n);
    if (const char* n = getenv("NZBMESH_BENCH_LRU_SEGMENTS")) o.lru_segments_per_file = static_cast<size_t>(atoi(n));
    if (const char* n = getenv("NZBMESH_BENCH_INITIAL_READ_AHEAD")) o.initial_read_ahead = atoi(n);
    server = std::move(*FrontendServer::Create(o, {fetcher.get(), &caching, &importer, nullptr}));
    FrontendServer::Options cold_o;
    cold_o.lru_segments_per_file = 0;
    if (const char* n = getenv("NZBMESH_BENCH_TTFB_READ_AHEAD")) cold_o.initial_read_ahead = atoi(n);
    if (const char* n = getenv("NZBMESH_BENCH_TTFB_FRESH_READ_AHEAD")) cold_o.fresh_read_ahead = atoi(n);
    if (const char* n = getenv("NZBMESH_BENCH_TTFB_FRESH_DELAY_US")) {
      cold_o.fresh_read_ahead_delay = absl::Microseconds(atoi(n));
    }
    cold_fetcher = std::make_unique<CountingFetcher>(fetcher.get());
    cold = std::move(*FrontendServer::Create(cold_o, {cold_fetcher.get(), &caching, &importer, nullptr}));
    if (!server->Start().ok() || !cold->Start().ok()) std::abort();
    idle_rss_mb = RssMb();
  }

  // Waits until the frontend has no broker call left (fetches and sessions of
  // finished responses are released asynchronously).
  bool WaitCallsReleased(absl::Duration timeout) const {
    absl::Time deadline = absl::Now() + timeout;
    while (fetcher->outstanding() != 0) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Microseconds(20));
    }
    return true;
  }

  // WaitIdle: that, then until the broker is idle too: no session open and no slot taken (a
  // cancelled fetch keeps its slot while the broker drains its reply, B10),
  // so one request's leftovers do not run during the next one's.
  bool WaitIdle(absl::Duration timeout) const {
    absl::Time deadline = absl::Now() + timeout;
    if (!WaitCallsReleased(timeout)) return false;
    while (true) {
      grpc::ClientContext ctx;
      broker::v1::PoolStatus st;
      if (!broker_stub->GetPoolStatus(&ctx, broker::v1::GetPoolStatusRequest{}, &st).ok()) return false;
      int64_t busy = st.open_sessions();
      for (const auto& p : st.providers()) busy += p.slots_in_use();
      if (busy == 0) return true;
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Microseconds(200));
    }
  }
};

Env& GetEnv() {
  static Env* env = new Env();  // lives until exit; the backend ends with it
  return *env;
}

// CPU time (user + system) process `pid` has used so far, in seconds.
double CpuSeconds(pid_t pid) {
  FILE* f = fopen(absl::StrCat("/proc/", pid, "/stat").c_str(), "r");
  if (f == nullptr) return 0;
  char buf[1024];
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  // Fields after the command name (which may hold spaces): state is field 3,
  // utime and stime are fields 14 and 15.
  const char* p = strrchr(buf, ')');
  if (p == nullptr) return 0;
  unsigned long utime = 0, stime = 0;
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2) return 0;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// CPU seconds both processes spend while it lives (for "where the time goes").
struct CpuMeter {
  explicit CpuMeter(pid_t backend) : backend_(backend), self0_(CpuSeconds(getpid())), backend0_(CpuSeconds(backend)) {}
  double frontend() const { return CpuSeconds(getpid()) - self0_; }
  double backend() const { return CpuSeconds(backend_) - backend0_; }

 private:
  pid_t backend_;
  double self0_, backend0_;
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Reads the response head from `fd` (blocking). Returns false on EOF or a
// status other than `want_status`; `body_prefix` gets the body bytes that came
// with the head, `content_length` the header's value.
bool ReadHead(int fd, int want_status, std::string* body_prefix, int64_t* content_length) {
  std::string head;
  char buf[16384];
  size_t end;
  while ((end = head.find("\r\n\r\n")) == std::string::npos) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    head.append(buf, static_cast<size_t>(n));
  }
  if (head.compare(9, 3, std::to_string(want_status)) != 0) return false;
  size_t cl = head.find("Content-Length: ");
  if (cl == std::string::npos || cl > end) return false;
  if (!absl::SimpleAtoi(head.substr(cl + 16, head.find("\r\n", cl) - cl - 16), content_length)) return false;
  *body_prefix = head.substr(end + 4);
  return true;
}

// One GET of the whole file read flat out; the body's length and its first
// segment are checked. Returns body bytes, or -1 with `error` set.
int64_t ReadWholeFile(int port, const char* url, const std::string& first_segment, std::string* error) {
  int fd = Connect(port);
  if (fd < 0 || !SendAll(fd, absl::StrCat("GET ", url, " HTTP/1.1\r\nHost: b\r\n\r\n"))) {
    *error = "connect";
    return -1;
  }
  timeval tv{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string got;
  int64_t len = 0;
  if (!ReadHead(fd, 200, &got, &len) || len != kBigBytes) {
    close(fd);
    *error = "bad response head";
    return -1;
  }
  std::vector<char> buf(1 << 20);
  int64_t body = static_cast<int64_t>(got.size());
  while (got.size() < first_segment.size()) {
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) break;
    got.append(buf.data(), static_cast<size_t>(n));
    body += n;
  }
  if (got.compare(0, first_segment.size(), first_segment) != 0) {
    close(fd);
    *error = "first segment differs from the posted article";
    return -1;
  }
  while (body < len) {
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) break;
    body += n;
  }
  close(fd);
  if (body != len) {
    *error = absl::StrCat("body ended at ", body, " of ", len);
    return -1;
  }
  return body;
}

// Fetches `ids` through `fetcher` with at most `window` fetches in flight,
// started in order, counted against one stream session. Returns decoded bytes;
// `failed` counts fetches that did not return OK.
int64_t FetchAll(SegmentFetcher* fetcher, const std::vector<std::string>& ids, int window, int* failed) {
  auto session = fetcher->OpenSession("bench-direct");
  absl::Mutex mu;
  int in_flight = 0;
  int64_t bytes = 0;
  int bad = 0;
  std::vector<std::unique_ptr<FetchHandle>> handles;
  handles.reserve(ids.size());
  auto has_room = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return in_flight < window; };
  for (const std::string& id : ids) {
    {
      absl::MutexLock lock(&mu);
      mu.Await(absl::Condition(&has_room));
      ++in_flight;
    }
    FetchOptions o;
    o.stream_session_id = session->id();
    handles.push_back(fetcher->Fetch(id, o, [&](absl::StatusOr<Segment> s) {
      absl::MutexLock lock(&mu);
      --in_flight;
      if (s.ok()) {
        bytes += static_cast<int64_t>(s->data->size());
      } else {
        ++bad;
      }
    }));
  }
  auto drained = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return in_flight == 0; };
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&drained));
  *failed = bad;
  return bytes;
}

void BM_Sequential2GiB(benchmark::State& state) {
  Env& env = GetEnv();
  const std::string first = ArticleData(0);
  absl::Duration direct_time, frontend_time;
  int64_t direct_bytes = 0, frontend_bytes = 0;
  int failed = 0;
  double direct_cpu[2] = {0, 0}, frontend_cpu[2] = {0, 0};  // this process, backend
  double client_cpu = 0;  // the HTTP client's thread (part of frontend_cpu[0])
  for (auto _ : state) {
    absl::Time t0 = absl::Now();
    int f = 0;
    CpuMeter direct_meter(env.backend.pid);
    direct_bytes += FetchAll(env.fetcher.get(), env.big_ids, FrontendServer::Options{}.max_read_ahead, &f);
    direct_time += absl::Now() - t0;
    direct_cpu[0] += direct_meter.frontend();
    direct_cpu[1] += direct_meter.backend();
    failed += f;
    if (!env.WaitIdle(absl::Seconds(10))) state.SkipWithError("direct read left broker calls behind");

    std::string error;
    t0 = absl::Now();
    CpuMeter frontend_meter(env.backend.pid);
    const double client0 = ThreadCpuSeconds();
    int64_t n = ReadWholeFile(env.server->port(), kBigUrl, first, &error);
    absl::Duration took = absl::Now() - t0;
    client_cpu += ThreadCpuSeconds() - client0;
    frontend_cpu[0] += frontend_meter.frontend();
    frontend_cpu[1] += frontend_meter.backend();
    if (n < 0) {
      state.SkipWithError(error.c_str());
      break;
    }
    frontend_bytes += n;
    frontend_time += took;
    state.SetIterationTime(absl::ToDoubleSeconds(took));
    if (!env.WaitIdle(absl::Seconds(10))) state.SkipWithError("frontend left broker calls behind");
  }
  const double direct_gbps = static_cast<double>(direct_bytes) / absl::ToDoubleSeconds(direct_time) / 1e9;
  const double frontend_gbps = static_cast<double>(frontend_bytes) / absl::ToDoubleSeconds(frontend_time) / 1e9;
  state.SetBytesProcessed(frontend_bytes);
  state.counters["frontend_GBps"] = frontend_gbps;
  state.counters["direct_GBps"] = direct_gbps;
  state.counters["ratio"] = frontend_gbps / direct_gbps;
  state.counters["direct_failed"] = failed;
  // CPU seconds per GB read: this process (frontend and clients) and the
  // backend (broker and news server).
  const double direct_gb = static_cast<double>(direct_bytes) / 1e9, frontend_gb = static_cast<double>(frontend_bytes) / 1e9;
  state.counters["direct_cpu_s_per_GB"] = direct_cpu[0] / direct_gb;
  state.counters["direct_backend_cpu_s_per_GB"] = direct_cpu[1] / direct_gb;
  state.counters["frontend_cpu_s_per_GB"] = frontend_cpu[0] / frontend_gb;
  state.counters["client_cpu_s_per_GB"] = client_cpu / frontend_gb;
  state.counters["frontend_backend_cpu_s_per_GB"] = frontend_cpu[1] / frontend_gb;
  state.counters["rss_mb"] = RssMb();
  state.counters["backend_rss_mb"] = RssMb(env.backend.pid);
}
BENCHMARK(BM_Sequential2GiB)->Iterations(2)->UseManualTime()->Unit(benchmark::kMillisecond);

// A GET of `url`'s `range` (e.g. "100-199") on a fresh connection to
// `port`, timed until the first body byte arrives (`first_byte`) and, when
// `want_bytes` > 0, until that many body bytes have (`to_bytes`, what a
// player buffering after a seek waits for); the rest of the response is
// abandoned, as a seeking player does. With `keep_fd` the GET goes on that
// kept-alive connection instead (opened into it when < 0), as rclone's
// client sends its reads, and the rest of the body is read (untimed) so the
// connection can carry the next one. False when the bytes did not come.
struct RangeGetTimes {
  absl::Duration first_byte;
  absl::Duration to_bytes;
};
bool TimedRangeGet(int port, const std::string& url, const std::string& range, int64_t want_bytes,
                   RangeGetTimes* t, int* keep_fd = nullptr) {
  const absl::Time t0 = absl::Now();
  int fd = keep_fd != nullptr && *keep_fd >= 0 ? *keep_fd : Connect(port);
  if (keep_fd != nullptr) *keep_fd = fd;
  SendAll(fd, absl::StrCat("GET ", url, " HTTP/1.1\r\nHost: b\r\nRange: bytes=", range, "\r\n\r\n"));
  std::string body;
  int64_t len = 0;
  bool ok = ReadHead(fd, 206, &body, &len);
  char c;
  int64_t got = static_cast<int64_t>(body.size());
  if (ok && got == 0) {
    ok = recv(fd, &c, 1, 0) == 1;
    got = 1;
  }
  t->first_byte = absl::Now() - t0;
  std::vector<char> buf(1 << 16);
  while (ok && got < want_bytes) {
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    ok = n > 0;
    got += n > 0 ? n : 0;
  }
  t->to_bytes = absl::Now() - t0;
  if (keep_fd == nullptr) {
    close(fd);
    return ok;
  }
  while (ok && got < len) {
    ssize_t n = recv(fd, buf.data(), static_cast<size_t>(std::min<int64_t>(len - got, 1 << 16)), 0);
    ok = n > 0;
    got += n > 0 ? n : 0;
  }
  if (!ok) {
    close(fd);
    *keep_fd = -1;
  }
  return ok;
}

// Median µs of one fetch, [0] PROBE, [1] STREAM in a session; set by
// BM_DirectFetchOne, which runs before BM_TimeToFirstByte.
double g_direct_fetch_median_us[2] = {0, 0};

void BM_DirectFetchOne(benchmark::State& state) {
  Env& env = GetEnv();
  const bool in_session = state.range(0) == 1;
  std::mt19937_64 rng(5);
  std::vector<double> us;
  std::unique_ptr<StreamSession> session;
  FetchOptions o;
  if (in_session) {
    session = env.fetcher->OpenSession("bench-one");
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (session->id() == 0 && absl::Now() < deadline) absl::SleepFor(absl::Microseconds(100));
    o.stream_session_id = session->id();
  } else {
    o.traffic_class = TrafficClass::kProbe;
  }
  for (auto _ : state) {
    const std::string id = ArticleId(static_cast<int>(rng() % kArticles));
    absl::Notification done;
    bool ok = false;
    absl::Time t0 = absl::Now();
    auto h = env.fetcher->Fetch(id, o, [&](absl::StatusOr<Segment> s) {
      ok = s.ok() && s->data->size() == static_cast<size_t>(kSegmentBytes);
      done.Notify();
    });
    done.WaitForNotification();
    const absl::Duration took = absl::Now() - t0;
    if (!ok) {
      state.SkipWithError("fetch failed");
      break;
    }
    us.push_back(absl::ToDoubleMicroseconds(took));
    state.SetIterationTime(absl::ToDoubleSeconds(took));
  }
  g_direct_fetch_median_us[in_session ? 1 : 0] = Median(us);
  state.counters["median_us"] = Median(us);
}
BENCHMARK(BM_DirectFetchOne)->ArgName("session")->Arg(0)->Arg(1)->Iterations(300)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_TimeToFirstByte(benchmark::State& state) {
  Env& env = GetEnv();
  const bool bounded = state.range(0) == 1;
  // latency_ms 20: the file over the articles the news server answers after
  // kSlowLatency; 0: the big file over the immediate ones.
  const bool slow = state.range(1) != 0;
  // keep_alive 1 (bounded reads): every GET on one kept-alive connection.
  const bool keep_alive = state.range(2) != 0;
  int keep_fd = -1;
  const int64_t file_bytes = slow ? kSlowArticles * kSegmentBytes : kBigBytes;
  const char* url = slow ? kSlowUrl : kBigUrl;
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int64_t> offset(0, file_bytes - 2 * kSegmentBytes);
  std::vector<double> us, direct_us, second_us;
  int64_t fetches_by_first_byte = 0;
  // The same fetch the frontend's first one is (PROBE for a bounded read,
  // STREAM for an open-ended one; no session id, as the frontend's first
  // fetch has none), made directly just before each GET, so both see the
  // same machine: `ratio` compares the medians of these pairs.
  FetchOptions direct_o;
  direct_o.traffic_class = bounded ? TrafficClass::kProbe : TrafficClass::kStream;
  std::mt19937_64 article_rng(11);
  for (auto _ : state) {
    {
      const int a = static_cast<int>(article_rng() % (slow ? kSlowArticles : kArticles));
      const std::string id = slow ? SlowId(a) : ArticleId(a);
      absl::Notification done;
      bool fetched = false;
      const absl::Time d0 = absl::Now();
      auto h = env.fetcher->Fetch(id, direct_o, [&](absl::StatusOr<Segment> seg) {
        fetched = seg.ok();
        done.Notify();
      });
      done.WaitForNotification();
      direct_us.push_back(absl::ToDoubleMicroseconds(absl::Now() - d0));
      if (!fetched || !env.WaitIdle(absl::Seconds(10))) {
        state.SkipWithError("direct fetch failed");
        break;
      }
    }
    const int64_t first = offset(rng);
    const std::string range = bounded ? absl::StrCat(first, "-", first + 65535) : absl::StrCat(first, "-");
    // Open-ended: also the time until the segment after the first one is
    // through, the start of the buffer a player fills after a seek.
    const int64_t through_second = bounded ? 0 : (first / kSegmentBytes + 2) * kSegmentBytes - first;
    const int64_t fetches0 = env.cold_fetcher->started();
    RangeGetTimes t;
    const bool ok = TimedRangeGet(env.cold->port(), url, range, through_second, &t, keep_alive ? &keep_fd : nullptr);
    fetches_by_first_byte += env.cold_fetcher->started() - fetches0;
    if (!ok) {
      state.SkipWithError("no body");
      break;
    }
    us.push_back(absl::ToDoubleMicroseconds(t.first_byte));
    if (!bounded) second_us.push_back(absl::ToDoubleMicroseconds(t.to_bytes));
    state.SetIterationTime(absl::ToDoubleSeconds(t.first_byte));
    // Every request starts on an idle broker: the abandoned read-ahead is gone.
    if (!env.WaitIdle(absl::Seconds(10))) {
      state.SkipWithError("broker calls not released after close");
      break;
    }
  }
  if (keep_fd >= 0) close(keep_fd);
  const double median = Median(us);
  const double direct = Median(direct_us);
  state.counters["median_us"] = median;
  state.counters["direct_median_us"] = direct;
  state.counters["ratio"] = direct > 0 ? median / direct : 0;
  if (!bounded) state.counters["through_second_segment_us"] = Median(second_us);
  // Against BM_DirectFetchOne's median (measured before, in its own run).
  const double separate = slow ? 0 : g_direct_fetch_median_us[bounded ? 0 : 1];
  state.counters["ratio_to_separate_run"] = separate > 0 ? median / separate : 0;
  state.counters["fetches_by_first_byte"] =
      us.empty() ? 0 : static_cast<double>(fetches_by_first_byte) / static_cast<double>(us.size());
}
BENCHMARK(BM_TimeToFirstByte)
    ->ArgNames({"bounded", "latency_ms", "keep_alive"})
    ->Args({1, 0, 0})
    ->Args({0, 0, 0})
    ->Args({1, 0, 1})
    ->Iterations(300)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TimeToFirstByte)
    ->ArgNames({"bounded", "latency_ms", "keep_alive"})
    ->Args({1, absl::ToInt64Milliseconds(kSlowLatency), 0})
    ->Args({0, absl::ToInt64Milliseconds(kSlowLatency), 0})
    ->Iterations(60)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// What a GET costs by itself: a bounded 64 KiB range whose segment the
// frontend already holds in its per-file cache (the default frontend; the
// same range was read just before), so no fetch runs — connect, request,
// catalog lookups, reader, response headers and the first byte. The part of
// BM_TimeToFirstByte's GET that is not its fetch.
void BM_TimeToFirstByteCached(benchmark::State& state) {
  Env& env = GetEnv();
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int64_t> offset(0, kBigBytes - 65536);
  std::vector<double> us;
  auto get = [&](const std::string& range, absl::Duration* took) {
    RangeGetTimes t;
    const bool ok = TimedRangeGet(env.server->port(), kBigUrl, range, 0, &t);
    *took = t.first_byte;
    return ok;
  };
  for (auto _ : state) {
    const int64_t first = offset(rng);
    const std::string range = absl::StrCat(first, "-", first + 65535);
    absl::Duration warm, took;
    if (!get(range, &warm) || !env.WaitIdle(absl::Seconds(10)) || !get(range, &took)) {
      state.SkipWithError("GET failed");
      break;
    }
    us.push_back(absl::ToDoubleMicroseconds(took));
    state.SetIterationTime(absl::ToDoubleSeconds(took));
    if (!env.WaitIdle(absl::Seconds(10))) {
      state.SkipWithError("broker calls not released");
      break;
    }
  }
  state.counters["median_us"] = Median(us);
}
BENCHMARK(BM_TimeToFirstByteCached)->Iterations(300)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_PacedStreams(benchmark::State& state) {
  Env& env = GetEnv();
  const int n = static_cast<int>(state.range(0));
  constexpr double kPace = 2e6;  // bytes/s, a high-bitrate 1080p stream
  absl::Duration worst, worst_start, worst_lag;
  int64_t bytes = 0;
  int failed = 0;
  int64_t peak_read_ahead = 0;
  double peak_rss = 0;
  double frontend_cpu = 0, backend_cpu = 0;
  double peak_malloc = 0;  // bytes malloc has handed out and not got back (live heap)
  // Live heap beside the budget's bytes (gRPC call state, HTTP sessions, the
  // clients), and malloc's free bytes in its arena when RSS peaked (slack).
  double peak_beside = 0, free_at_rss_peak = 0;
  for (auto _ : state) {
    std::vector<ClientStream> streams(n);
    for (int i = 0; i < n; ++i) {
      streams[i].fd = Connect(env.server->port());
      SendAll(streams[i].fd, absl::StrCat("GET /dav", PacedPath(i), " HTTP/1.1\r\nHost: b\r\nRange: bytes=0-\r\n\r\n"));
    }
    absl::Notification done;
    std::thread sampler([&] {
      while (!done.WaitForNotificationWithTimeout(absl::Milliseconds(10))) {
        peak_read_ahead = std::max(peak_read_ahead, env.server->memory_budget().used());
        const double rss = RssMb();
        struct mallinfo2 mi = mallinfo2();
        const double heap = static_cast<double>(mi.uordblks + mi.hblkhd) / (1 << 20);
        if (rss > peak_rss) free_at_rss_peak = static_cast<double>(mi.fordblks) / (1 << 20);
        peak_rss = std::max(peak_rss, rss);
        peak_malloc = std::max(peak_malloc, heap);
        peak_beside =
            std::max(peak_beside, heap - static_cast<double>(env.server->memory_budget().used()) / (1 << 20));
      }
    });
    CpuMeter meter(env.backend.pid);
    ClientResult r = ReadStreams(streams, kPace, absl::Seconds(5));
    frontend_cpu += meter.frontend();
    backend_cpu += meter.backend();
    done.Notify();
    sampler.join();
    worst = std::max(worst, r.worst_gap);
    worst_start = std::max(worst_start, r.worst_first_byte);
    worst_lag = std::max(worst_lag, r.worst_lag);
    bytes += r.bytes;
    failed += r.failed;
    if (!env.WaitIdle(absl::Seconds(30))) state.SkipWithError("broker calls not released after the streams");
  }
  state.SetBytesProcessed(bytes);
  state.counters["worst_gap_ms"] = absl::ToDoubleMilliseconds(worst);
  state.counters["worst_start_ms"] = absl::ToDoubleMilliseconds(worst_start);
  state.counters["worst_lag_ms"] = absl::ToDoubleMilliseconds(worst_lag);
  state.counters["failed"] = failed;
  state.counters["read_ahead_peak_mb"] = static_cast<double>(peak_read_ahead) / 1e6;
  state.counters["limit_mb"] = static_cast<double>(env.server->memory_budget().limit()) / 1e6;
  state.counters["rss_peak_mb"] = peak_rss;
  // What the streams added to the idle process (MiB, like limit_mib).
  state.counters["rss_over_idle_mib"] = peak_rss - env.idle_rss_mb;
  state.counters["limit_mib"] = static_cast<double>(env.server->memory_budget().limit()) / (1 << 20);
  state.counters["heap_in_use_peak_mb"] = peak_malloc;
  state.counters["heap_beside_budget_peak_mib"] = peak_beside;
  state.counters["malloc_free_at_rss_peak_mib"] = free_at_rss_peak;
  state.counters["backend_rss_mb"] = RssMb(env.backend.pid);
  state.counters["frontend_cpu_s"] = frontend_cpu;
  state.counters["backend_cpu_s"] = backend_cpu;
}
BENCHMARK(BM_PacedStreams)->Arg(50)->Arg(kPacedStreams)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_CloseLatencyBlocked(benchmark::State& state) {
  Env& env = GetEnv();
  std::vector<double> us;
  for (auto _ : state) {
    int fd = Connect(env.server->port());
    SendAll(fd, absl::StrCat("GET ", kHeldUrl, " HTTP/1.1\r\nHost: b\r\nRange: bytes=0-\r\n\r\n"));
    timeval tv{30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::string body;
    int64_t len = 0;
    bool ok = ReadHead(fd, 206, &body, &len);
    std::vector<char> buf(1 << 16);
    int64_t got = static_cast<int64_t>(body.size());
    while (ok && got < kSegmentBytes) {
      ssize_t n = recv(fd, buf.data(), static_cast<size_t>(std::min<int64_t>(kSegmentBytes - got, 1 << 16)), 0);
      if (n <= 0) ok = false;
      got += n;
    }
    // Blocked: the second segment's reply is held at the news server, so no
    // byte may arrive now.
    pollfd p{fd, POLLIN, 0};
    if (ok && poll(&p, 1, 50) != 0) ok = false;
    if (!ok || env.fetcher->outstanding() < 2) {  // the stream session and the held fetch
      close(fd);
      state.SkipWithError("response not blocked on the held segment");
      break;
    }
    absl::Time t0 = absl::Now();
    close(fd);
    if (!env.WaitCallsReleased(absl::Seconds(10))) {
      state.SkipWithError("broker calls not released within 10 s of the close");
      break;
    }
    const absl::Duration took = absl::Now() - t0;
    us.push_back(absl::ToDoubleMicroseconds(took));
    state.SetIterationTime(absl::ToDoubleSeconds(took));
    // The broker drains the cancelled replies (they arrive after kHeldLatency)
    // before the next iteration, so each starts on an idle pool.
    if (!env.WaitIdle(kHeldLatency + absl::Seconds(10))) {
      state.SkipWithError("broker not idle after the held replies");
      break;
    }
  }
  state.counters["median_us"] = Median(us);
  state.counters["max_us"] = us.empty() ? 0 : *std::max_element(us.begin(), us.end());
}
BENCHMARK(BM_CloseLatencyBlocked)->Iterations(5)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace nzbmesh::frontend
