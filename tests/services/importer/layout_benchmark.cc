// Catalog benchmarks against a real PostgreSQL (NZBMESH_PG_URL; a database
// is created and dropped per run):
//   BM_GetFileLayout70k          Store::GetFileLayout of a 70,000-segment file
//   BM_GetFileLayout70kToProto   the same plus the gRPC response conversion
//   BM_GetFileLayout70kGrpc      the Catalog.GetFileLayout RPC over loopback
//   BM_CompleteJob70k            writing a 70,000-segment release (one transaction)
//   BM_ParseNzb70k               parsing its NZB (the analysis parser)
//   BM_SubmitDuplicate           Store::Submit of known bytes whose release exists (M4 dedup)
//   BM_SubmitNew                 Store::Submit of new bytes (NZB row + job)
// Built with NZB_BENCH_10M (target catalog_10m_benchmark, manual): first fills
// the catalog to 10 million segments, then runs BM_GetFileLayout70k.
//
//   NZBMESH_PG_URL=postgresql://... bazel run -c opt //tests/services/importer:layout_benchmark
#include <cstdlib>
#include <iostream>

#include <benchmark/benchmark.h>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc/credentials.h"
#include "common/metrics/metrics.h"
#include "common/service/service_main.h"
#include "services/importer/analysis/nzb_parser.h"
#include "services/importer/importer_service.h"
#include "services/importer/store.h"
#include "tests/services/importer/pg_fixture.h"

namespace nzbmesh::importer {
namespace {

constexpr int kSegments = 70000;
constexpr int64_t kPartSize = 716800;  // 700 KiB decoded per article: a ~50 GB file

FilePlan BigFile(const std::string& name, int seed) {
  FilePlan f;
  f.name = name;
  for (int i = 0; i < kSegments; ++i) {
    f.segments.push_back({absl::StrCat("part", i + 1, "of", kSegments, ".Xq3vR9", seed, "kLm2Pz7wQe@news.example.com"),
                          i + 1 == kSegments ? 12345 : kPartSize});
    f.size += f.segments.back().size;
  }
  return f;
}

struct Env {
  std::unique_ptr<testing::TestDatabase> db;
  std::unique_ptr<Store> store;
  int64_t catalog_segments = 0;
  int jobs = 0;

  absl::Status AddRelease(const std::vector<FilePlan>& files) {
    const std::string tag = absl::StrCat("bench-", jobs++);
    SubmitRecord r;
    r.nzb = tag;
    r.sha256_hex = tag;
    r.category = "bench";
    r.name = tag;
    auto sub = store->Submit(r);
    if (!sub.ok()) return sub.status();
    auto c = store->ClaimJob("bench", absl::Hours(1));
    if (!c.ok()) return c.status();
    if (!c->has_value()) return absl::InternalError("nothing to claim");
    ReleasePlan plan{"bench", tag, {}, files};
    for (const auto& f : files) catalog_segments += static_cast<int64_t>(f.segments.size());
    return store->CompleteJob((*c)->job.id, "bench", (*c)->job.attempts, plan).status();
  }
};

Env* env = nullptr;

void BM_GetFileLayout70k(benchmark::State& state) {
  for (auto _ : state) {
    auto l = env->store->GetFileLayout("/bench/bench-0/big.mkv");
    if (!l.ok() || l->segments.size() != kSegments) state.SkipWithError("GetFileLayout failed");
    benchmark::DoNotOptimize(l);
  }
  state.counters["catalog_segments"] = static_cast<double>(env->catalog_segments);
}
BENCHMARK(BM_GetFileLayout70k)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_GetFileLayout70kToProto(benchmark::State& state) {
  for (auto _ : state) {
    auto l = env->store->GetFileLayout("/bench/bench-0/big.mkv");
    v1::FileLayout p;
    ToProto(std::move(*l), &p);
    benchmark::DoNotOptimize(p.ByteSizeLong());
  }
}
BENCHMARK(BM_GetFileLayout70kToProto)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_GetFileLayout70kGrpc(benchmark::State& state) {
  CatalogServiceImpl service(env->store.get());
  metrics::Registry registry;
  auto sm = ServiceMain::Start({.name = "importer", .grpc_listen = "127.0.0.1:0", .metrics_listen = ""}, {&service},
                               &registry);
  if (!sm.ok()) {
    state.SkipWithError("cannot start the catalog service");
    return;
  }
  auto stub = v1::Catalog::NewStub(*MakeChannel(absl::StrCat("127.0.0.1:", (*sm)->grpc_port()), {}));
  for (auto _ : state) {
    grpc::ClientContext ctx;
    v1::GetFileLayoutRequest req;
    req.set_path("/bench/bench-0/big.mkv");
    v1::FileLayout resp;
    if (!stub->GetFileLayout(&ctx, req, &resp).ok() || resp.segments_size() != kSegments) {
      state.SkipWithError("GetFileLayout RPC failed");
    }
    state.counters["response_bytes"] = static_cast<double>(resp.ByteSizeLong());
  }
  (*sm)->Shutdown(absl::Seconds(1));
}
BENCHMARK(BM_GetFileLayout70kGrpc)->Unit(benchmark::kMillisecond)->UseRealTime();

#ifndef NZB_BENCH_10M
void BM_CompleteJob70k(benchmark::State& state) {
  FilePlan f = BigFile("big.mkv", 7);
  for (auto _ : state) {
    if (!env->AddRelease({f}).ok()) state.SkipWithError("CompleteJob failed");
  }
}
BENCHMARK(BM_CompleteJob70k)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);

void BM_ParseNzb70k(benchmark::State& state) {
  std::string xml = "<?xml version=\"1.0\"?>\n<nzb xmlns=\"http://www.newzbin.com/DTD/2003/nzb\">\n"
                    "<file poster=\"p\" date=\"1700000000\" subject=\"&quot;big.mkv&quot; yEnc (1/70000)\">"
                    "<groups><group>alt.binaries.test</group></groups><segments>\n";
  for (int i = 0; i < kSegments; ++i) {
    absl::StrAppend(&xml, "<segment bytes=\"739000\" number=\"", i + 1, "\">part", i + 1,
                    "of70000.Xq3vR9kLm2Pz7wQe@news.example.com</segment>\n");
  }
  xml += "</segments></file></nzb>\n";
  for (auto _ : state) {
    auto n = ParseNzb(xml);
    if (!n.ok()) state.SkipWithError("parse failed");
    benchmark::DoNotOptimize(n);
  }
  state.counters["nzb_bytes"] = static_cast<double>(xml.size());
}
BENCHMARK(BM_ParseNzb70k)->Unit(benchmark::kMillisecond)->UseRealTime();

// The dedup decision: lock the NZB row, find a live job (pending, or with
// its release in the catalog).
void BM_SubmitDuplicate(benchmark::State& state) {
  SubmitRecord r;
  r.nzb = "bench-0";
  r.sha256_hex = "bench-0";  // the release made in main()
  r.category = "bench";
  r.name = "bench-0";
  for (auto _ : state) {
    auto sub = env->store->Submit(r);
    if (!sub.ok() || !sub->duplicate) state.SkipWithError("expected a duplicate");
  }
}
BENCHMARK(BM_SubmitDuplicate)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_SubmitNew(benchmark::State& state) {
  SubmitRecord r;
  r.category = "bench";
  r.name = "new";
  static int n = 0;  // unique across repetitions
  for (auto _ : state) {
    r.nzb = r.sha256_hex = absl::StrCat("new-", n++);
    auto sub = env->store->Submit(r);
    if (!sub.ok() || sub->duplicate) state.SkipWithError("expected a new job");
  }
}
BENCHMARK(BM_SubmitNew)->Unit(benchmark::kMicrosecond)->UseRealTime();
#endif

}  // namespace
}  // namespace nzbmesh::importer

int main(int argc, char** argv) {
  using namespace nzbmesh::importer;
  benchmark::Initialize(&argc, argv);
  auto db = testing::TestDatabase::Create();
  if (!db.ok()) {
    std::cerr << db.status() << "\n";
    return 1;
  }
  static Env e;
  e.db = std::move(*db);
  auto store = e.db->OpenStore();
  if (!store.ok()) {
    std::cerr << store.status() << "\n";
    return 1;
  }
  e.store = std::move(*store);
  env = &e;
  absl::Status s = e.AddRelease({BigFile("big.mkv", 0)});
  if (!s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }
#ifdef NZB_BENCH_10M
  // ~143 files of 70,000 segments, 4 files per release.
  const absl::Time start = absl::Now();
  int seed = 1;
  while (e.catalog_segments < 10000000) {
    std::vector<FilePlan> files;
    for (int i = 0; i < 4; ++i) files.push_back(BigFile(absl::StrCat("f", i, ".mkv"), seed++));
    s = e.AddRelease(files);
    if (!s.ok()) {
      std::cerr << s << "\n";
      return 1;
    }
  }
  std::cerr << "filled " << e.catalog_segments << " segments in " << absl::FormatDuration(absl::Now() - start)
            << "\n";
  {
    pqxx::connection conn(e.db->url());
    pqxx::nontransaction n(conn);
    pqxx::row r = n.exec1(
        "SELECT sum(segment_count), count(*), pg_size_pretty(pg_total_relation_size('layouts')) FROM layouts");
    std::cerr << "database: " << r[0].c_str() << " segments in " << r[1].c_str() << " layout rows, " << r[2].c_str()
              << "\n";
  }
#endif
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
