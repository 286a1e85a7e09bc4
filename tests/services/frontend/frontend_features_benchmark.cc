// Benchmarks of the issue-6 frontend features (results in docs/PERFORMANCE.md):
//   BM_ReadClassifier/N  one Classify() with N (client, file) pairs remembered:
//                        the per-request cost of choosing PROBE vs STREAM
//   BM_AddUrl/KiB        one SABnzbd mode=addurl through a real FrontendServer
//                        on loopback: the frontend downloads a KiB-sized NZB
//                        from a loopback HTTP origin and submits it to the
//                        in-process importer; latency per call and bytes/s
// Run: bazel run -c opt //tests/services/frontend:frontend_features_benchmark
#include <benchmark/benchmark.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/frontend/frontend_server.h"
#include "services/frontend/read_classifier.h"
#include "tests/services/frontend/fake_catalog.h"
#include "tests/services/frontend/fake_segment_fetcher.h"
#include "tests/services/frontend/http_test_client.h"
#include "tests/services/frontend/loopback_http_server.h"

namespace nzbmesh::frontend {
namespace {

void BM_ReadClassifier(benchmark::State& state) {
  const int pairs = static_cast<int>(state.range(0));
  ReadClassifier::Options o;
  o.max_tracked = static_cast<size_t>(pairs);
  ReadClassifier c(o);
  absl::Time now = absl::Now();
  std::vector<std::string> paths;
  for (int i = 0; i < pairs; ++i) paths.push_back(absl::StrCat("/tv/Show/Season 1/Show.S01E", i, ".mkv"));
  for (int i = 0; i < pairs; ++i) c.Classify("192.168.1.20", paths[i], 0, 65536, true, now);
  int64_t i = 0, probes = 0;
  for (auto _ : state) {
    // Alternates a continuation (STREAM) and a scattered peek (PROBE) on a remembered file.
    const std::string& p = paths[static_cast<size_t>(i / 2 % pairs)];
    int64_t first = i % 2 == 0 ? 65536 : 900000000;
    probes += c.Classify("192.168.1.20", p, first, first + 65536, true, now) == TrafficClass::kProbe;
    ++i;
  }
  state.counters["probe_share"] = static_cast<double>(probes) / static_cast<double>(std::max<int64_t>(1, i));
}
BENCHMARK(BM_ReadClassifier)->Arg(16)->Arg(4096);

void BM_AddUrl(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0)) * 1024;
  testing::LoopbackHttpServer origin;
  std::string nzb = absl::StrCat("<?xml version=\"1.0\"?><nzb>", std::string(bytes - 30, 'x'), "</nzb>");
  origin.Route("/get.nzb", testing::LoopbackHttpServer::Response(
                               200, "OK", "Content-Disposition: attachment; filename=\"Bench.nzb\"\r\n", nzb));
  testing::FakeSegmentFetcher fetcher;
  testing::FakeCatalog catalog;
  testing::FakeImporter importer;
  FrontendServer::Options o;
  o.api_key = std::string(1, 'k');  // (not = "k": GCC 12 -Wrestrict false positive)
  auto server = FrontendServer::Create(o, {&fetcher, &catalog, &importer, nullptr});
  if (!server.ok() || !(*server)->Start().ok()) {
    state.SkipWithError("frontend did not start");
    return;
  }
  const std::string request =
      absl::StrCat("GET /sabnzbd/api?mode=addurl&apikey=k&output=json&name=http%3A%2F%2F127.0.0.1%3A", origin.port(),
                   "%2Fget.nzb HTTP/1.1\r\nHost: b\r\n\r\n");
  for (auto _ : state) {
    testing::HttpResponse r = testing::Fetch((*server)->port(), request);
    if (r.status != 200 || r.body.find("\"status\":true") == std::string::npos) {
      state.SkipWithError("addurl failed");
      break;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(nzb.size()));
  (*server)->Shutdown(absl::Seconds(1));
}
BENCHMARK(BM_AddUrl)->Arg(64)->Arg(4096)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace nzbmesh::frontend
