// FrontendMetrics backed by //common/metrics (Prometheus text format). Handles
// are resolved at construction; every update is a lock-free atomic.
//   nzbmesh_frontend_http_requests_total{method, code}   code = 1xx..5xx
//   nzbmesh_frontend_bytes_sent_total
//   nzbmesh_frontend_active_streams
//   nzbmesh_frontend_stream_ttfb_seconds     histogram
//   nzbmesh_frontend_seeks_total
//   nzbmesh_frontend_client_disconnects_total
//   nzbmesh_frontend_connections_rejected_total
//   nzbmesh_frontend_read_ahead_bytes               (after ObserveMemoryBudget)
//   nzbmesh_frontend_segment_cache_hits_total
//   nzbmesh_frontend_segment_cache_misses_total
//   nzbmesh_frontend_fetches_cancelled_total
//   nzbmesh_frontend_streams_killed_total
#ifndef NZBMESH_SERVICES_FRONTEND_PROMETHEUS_FRONTEND_METRICS_H_
#define NZBMESH_SERVICES_FRONTEND_PROMETHEUS_FRONTEND_METRICS_H_

#include <map>
#include <string>

#include "common/metrics/metrics.h"
#include "services/frontend/frontend_metrics.h"
#include "services/frontend/reader_support.h"

namespace nzbmesh::frontend {

class PrometheusFrontendMetrics : public FrontendMetrics {
 public:
  // `registry` must outlive this object.
  explicit PrometheusFrontendMetrics(metrics::Registry& registry);

  // Publishes the read-ahead memory in use (FrontendServer::memory_budget());
  // `budget` must outlive the registry's scrapes.
  void ObserveMemoryBudget(const MemoryBudget* budget);

  void RequestDone(absl::string_view method, int status) override;
  void BytesServed(int64_t bytes) override { bytes_->Increment(static_cast<double>(bytes)); }
  void StreamStarted() override { streams_->Increment(); }
  void StreamEnded(bool client_disconnected) override;
  void TimeToFirstByte(absl::Duration d) override { ttfb_->Observe(absl::ToDoubleSeconds(d)); }
  void Seek() override { seeks_->Increment(); }
  void ConnectionRejected() override { rejected_->Increment(); }
  void SegmentCacheHit() override { cache_hits_->Increment(); }
  void SegmentCacheMiss() override { cache_misses_->Increment(); }
  void FetchCancelled() override { cancelled_->Increment(); }
  void StreamKilled() override { killed_->Increment(); }

 private:
  metrics::Registry& registry_;
  // [method][status class 1..5]
  std::map<std::string, metrics::Counter*> requests_;
  metrics::Counter* bytes_;
  metrics::Gauge* streams_;
  metrics::Histogram* ttfb_;
  metrics::Counter* seeks_;
  metrics::Counter* disconnects_;
  metrics::Counter* rejected_;
  metrics::Gauge* read_ahead_;
  metrics::Counter* cache_hits_;
  metrics::Counter* cache_misses_;
  metrics::Counter* cancelled_;
  metrics::Counter* killed_;
};

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_PROMETHEUS_FRONTEND_METRICS_H_
