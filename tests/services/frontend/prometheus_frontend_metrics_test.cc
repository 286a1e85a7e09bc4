#include "services/frontend/prometheus_frontend_metrics.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace nzbmesh::frontend {
namespace {

TEST(PrometheusFrontendMetrics, ExportsRequestsBytesAndReadAhead) {
  metrics::Registry registry;
  PrometheusFrontendMetrics m(registry);
  MemoryBudget budget(0);
  budget.ForceReserve(4096);
  m.ObserveMemoryBudget(&budget);
  m.RequestDone("GET", 206);
  m.RequestDone("BREW", 418);
  m.BytesServed(1000);
  m.StreamStarted();
  m.StreamEnded(true);
  m.SegmentCacheHit();
  m.SegmentCacheHit();
  m.SegmentCacheMiss();
  m.FetchCancelled();
  m.StreamKilled();
  std::string text = registry.Serialize();
  EXPECT_TRUE(absl::StrContains(text, "nzbmesh_frontend_http_requests_total{code=\"2xx\",method=\"GET\"} 1")) << text;
  EXPECT_TRUE(absl::StrContains(text, "nzbmesh_frontend_http_requests_total{code=\"4xx\",method=\"other\"} 1")) << text;
  EXPECT_TRUE(absl::StrContains(text, "nzbmesh_frontend_bytes_sent_total 1000")) << text;
  EXPECT_TRUE(absl::StrContains(text, "nzbmesh_frontend_client_disconnects_total 1")) << text;
  EXPECT_TRUE(absl::StrContains(text, "nzbmesh_frontend_read_ahead_bytes 4096")) << text;
  EXPECT_TRUE(absl::StrContains(text, "nzbmesh_frontend_segment_cache_hits_total 2")) << text;
  EXPECT_TRUE(absl::StrContains(text, "nzbmesh_frontend_segment_cache_misses_total 1")) << text;
  EXPECT_TRUE(absl::StrContains(text, "nzbmesh_frontend_fetches_cancelled_total 1")) << text;
  EXPECT_TRUE(absl::StrContains(text, "nzbmesh_frontend_streams_killed_total 1")) << text;
}

}  // namespace
}  // namespace nzbmesh::frontend
