// What the frontend reports. A hook interface so the HTTP server does not
// depend on the metrics library; PrometheusFrontendMetrics
// (prometheus_frontend_metrics.h) backs it with //common/metrics, tests use
// CountingFrontendMetrics. Every method is called from io or fetcher threads
// and must be cheap and thread-safe.
#ifndef NZBMESH_SERVICES_FRONTEND_FRONTEND_METRICS_H_
#define NZBMESH_SERVICES_FRONTEND_FRONTEND_METRICS_H_

#include <atomic>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace nzbmesh::frontend {

class FrontendMetrics {
 public:
  virtual ~FrontendMetrics() = default;
  // One finished request: method (bounded: known methods or "other") and status.
  virtual void RequestDone(absl::string_view method, int status) {}
  virtual void BytesServed(int64_t bytes) {}
  virtual void StreamStarted() {}
  virtual void StreamEnded(bool client_disconnected) {}
  // Request received -> first body byte written.
  virtual void TimeToFirstByte(absl::Duration d) {}
  // A data response that does not continue where the previous one on the
  // same connection ended.
  virtual void Seek() {}
  virtual void ConnectionRejected() {}  // max_connections reached
  // A segment read served without a new fetch: from the file's LRU, or by
  // joining a fetch of the same segment already in flight.
  virtual void SegmentCacheHit() {}
  // A segment read that started a fetch.
  virtual void SegmentCacheMiss() {}
  // A fetch cancelled because no reader wanted it any more (client gone,
  // seek, stream killed).
  virtual void FetchCancelled() {}
  // A stream ended through DELETE /api/streams/ID.
  virtual void StreamKilled() {}
};

// Plain atomic counters; for tests and for a lead wiring another backend.
class CountingFrontendMetrics : public FrontendMetrics {
 public:
  void RequestDone(absl::string_view, int status) override {
    requests.fetch_add(1);
    if (status >= 500) errors_5xx.fetch_add(1);
  }
  void BytesServed(int64_t b) override { bytes.fetch_add(b); }
  void StreamStarted() override { streams_active.fetch_add(1); }
  void StreamEnded(bool disconnected) override {
    streams_active.fetch_sub(1);
    if (disconnected) client_disconnects.fetch_add(1);
  }
  void Seek() override { seeks.fetch_add(1); }
  void ConnectionRejected() override { rejected.fetch_add(1); }
  void SegmentCacheHit() override { cache_hits.fetch_add(1); }
  void SegmentCacheMiss() override { cache_misses.fetch_add(1); }
  void FetchCancelled() override { fetches_cancelled.fetch_add(1); }
  void StreamKilled() override { streams_killed.fetch_add(1); }

  std::atomic<int64_t> requests{0}, errors_5xx{0}, bytes{0}, streams_active{0}, client_disconnects{0}, seeks{0},
      rejected{0}, cache_hits{0}, cache_misses{0}, fetches_cancelled{0}, streams_killed{0};
};

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_FRONTEND_METRICS_H_
