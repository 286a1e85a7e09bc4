// A real Prometheus server (Debian's `prometheus`) scrapes our exposer and
// must accept the text format: the target is "up" and our samples are
// queryable. This is the test that keeps the hand-written exposition honest.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/metrics/exposer.h"
#include "common/metrics/metrics.h"

namespace nzbmesh::metrics {
namespace {

// A loopback port for Prometheus, from below the kernel's ephemeral range (a
// port bound to 0 and released can be handed out at once as the local port of
// an outgoing connection) and bindable now. Another process may still take
// it before Prometheus binds: the caller retries with another port then.
int CandidatePort(std::mt19937* rng) {
  int ephemeral_lo = 32768;
  if (FILE* f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (fscanf(f, "%d", &ephemeral_lo) != 1) ephemeral_lo = 32768;
    fclose(f);
  }
  std::uniform_int_distribution<int> pick(15000, std::max(15001, ephemeral_lo - 1));
  for (int i = 0; i < 1000; ++i) {
    const int port = pick(*rng);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    const bool free = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    close(fd);
    if (free) return port;
  }
  return 0;
}

std::string Shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

TEST(PrometheusScrapeTest, RealPrometheusAcceptsOurExposition) {
  const char* prom = "/usr/bin/prometheus";
  if (access(prom, X_OK) != 0) GTEST_FAIL() << "prometheus is not installed; run deploy/local/install-deps.sh";

  Registry registry;
  BuildCounter().Name("nzbmesh_test_requests_total").Help("Requests.").Register(registry)
      .Add({{"class", "stream"}}).Increment(42);
  auto& h = BuildHistogram().Name("nzbmesh_test_latency_seconds").Help("Latency.").Register(registry)
                .Add({{"class", "import"}}, LatencyBuckets());
  h.Observe(0.01);
  auto exposer = Exposer::Start("127.0.0.1:0", &registry);
  ASSERT_TRUE(exposer.ok()) << exposer.status();

  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp", "/prom");
  Shell("mkdir -p " + dir);
  {
    std::ofstream cfg(dir + "/prometheus.yml");
    cfg << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        << "scrape_configs:\n  - job_name: nzbmesh\n    static_configs:\n      - targets: ['127.0.0.1:"
        << (*exposer)->port() << "']\n";
  }
  std::mt19937 rng(std::random_device{}());
  int prom_port = 0;
  pid_t pid = -1;
  auto launch = [&] {
    prom_port = CandidatePort(&rng);
    pid = fork();
    if (pid == 0) {
      std::string listen = absl::StrCat("--web.listen-address=127.0.0.1:", prom_port);
      std::string storage = "--storage.tsdb.path=" + dir + "/data";
      std::string config = "--config.file=" + dir + "/prometheus.yml";
      (void)!freopen((dir + "/prometheus.log").c_str(), "w", stderr);
      execl(prom, prom, config.c_str(), storage.c_str(), listen.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  };
  launch();
  ASSERT_GT(pid, 0);
  std::string targets, value;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  bool ok = false;
  int launches = 1;
  while (absl::Now() < deadline) {
    // Prometheus exits at once when its port was taken in the meantime.
    if (waitpid(pid, nullptr, WNOHANG) == pid) {
      ASSERT_LT(launches, 5) << "prometheus keeps exiting: " << Shell("tail -20 " + dir + "/prometheus.log");
      ++launches;
      launch();
      ASSERT_GT(pid, 0);
      continue;
    }
    const std::string api = absl::StrCat("http://127.0.0.1:", prom_port, "/api/v1/");
    targets = Shell("curl -s '" + api + "targets'");
    value = Shell("curl -s '" + api + "query?query=nzbmesh_test_requests_total'");
    if (targets.find("\"health\":\"up\"") != std::string::npos &&
        value.find("\"42\"") != std::string::npos) {
      ok = true;
      break;
    }
    absl::SleepFor(absl::Milliseconds(200));  // polling an external process; bounded by the deadline
  }
  const std::string api = absl::StrCat("http://127.0.0.1:", prom_port, "/api/v1/");
  std::string hist = Shell("curl -s '" + api + "query?query=nzbmesh_test_latency_seconds_count'");
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  ASSERT_TRUE(ok) << "targets: " << targets << "\nquery: " << value << "\nlog: "
                  << Shell("tail -20 " + dir + "/prometheus.log");
  EXPECT_NE(targets.find("\"lastError\":\"\""), std::string::npos) << targets;
  EXPECT_NE(hist.find("\"1\""), std::string::npos) << hist;
}

}  // namespace
}  // namespace nzbmesh::metrics
