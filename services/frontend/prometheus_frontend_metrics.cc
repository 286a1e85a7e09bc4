#include "services/frontend/prometheus_frontend_metrics.h"

#include "absl/strings/str_cat.h"

namespace nzbmesh::frontend {
namespace {

const char* const kMethods[] = {"GET",  "HEAD", "OPTIONS",   "PROPFIND", "DELETE", "POST",   "PUT",
                                "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK",     "UNLOCK", "other"};

}  // namespace

PrometheusFrontendMetrics::PrometheusFrontendMetrics(metrics::Registry& registry) : registry_(registry) {
  auto& req = metrics::BuildCounter()
                  .Name("nzbmesh_frontend_http_requests_total")
                  .Help("HTTP requests answered, by method and status class.")
                  .Register(registry);
  for (const char* m : kMethods) {
    for (int c = 1; c <= 5; ++c) {
      requests_[absl::StrCat(m, c)] = &req.Add({{"method", m}, {"code", absl::StrCat(c, "xx")}});
    }
  }
  bytes_ = &metrics::BuildCounter()
                .Name("nzbmesh_frontend_bytes_sent_total")
                .Help("Response body bytes written to clients.")
                .Register(registry)
                .Add({});
  streams_ = &metrics::BuildGauge()
                  .Name("nzbmesh_frontend_active_streams")
                  .Help("Data responses in progress.")
                  .Register(registry)
                  .Add({});
  ttfb_ = &metrics::BuildHistogram()
               .Name("nzbmesh_frontend_stream_ttfb_seconds")
               .Help("Request received to first body byte written.")
               .Register(registry)
               .Add({}, metrics::LatencyBuckets());
  seeks_ = &metrics::BuildCounter()
                .Name("nzbmesh_frontend_seeks_total")
                .Help("Data responses that did not continue where the previous one on the connection ended.")
                .Register(registry)
                .Add({});
  disconnects_ = &metrics::BuildCounter()
                      .Name("nzbmesh_frontend_client_disconnects_total")
                      .Help("Responses ended by the client going away; their fetches were cancelled.")
                      .Register(registry)
                      .Add({});
  rejected_ = &metrics::BuildCounter()
                   .Name("nzbmesh_frontend_connections_rejected_total")
                   .Help("Connections closed on accept because max_connections was reached.")
                   .Register(registry)
                   .Add({});
  read_ahead_ = &metrics::BuildGauge()
                     .Name("nzbmesh_frontend_read_ahead_bytes")
                     .Help("Decoded-segment bytes held against stream_memory_limit: every stream's "
                           "read-ahead and the per-file segment caches.")
                     .Register(registry)
                     .Add({});
  cache_hits_ = &metrics::BuildCounter()
                     .Name("nzbmesh_frontend_segment_cache_hits_total")
                     .Help("Segment reads served without a new fetch (file LRU, or joined a fetch in flight).")
                     .Register(registry)
                     .Add({});
  cache_misses_ = &metrics::BuildCounter()
                       .Name("nzbmesh_frontend_segment_cache_misses_total")
                       .Help("Segment reads that started a fetch from the broker.")
                       .Register(registry)
                       .Add({});
  cancelled_ = &metrics::BuildCounter()
                    .Name("nzbmesh_frontend_fetches_cancelled_total")
                    .Help("Segment fetches cancelled because no reader wanted them any more.")
                    .Register(registry)
                    .Add({});
  killed_ = &metrics::BuildCounter()
                 .Name("nzbmesh_frontend_streams_killed_total")
                 .Help("Streams ended by an operator through DELETE /api/streams/ID.")
                 .Register(registry)
                 .Add({});
}

void PrometheusFrontendMetrics::ObserveMemoryBudget(const MemoryBudget* budget) {
  metrics::Gauge* g = read_ahead_;
  registry_.AddCollectCallback([g, budget] { g->Set(static_cast<double>(budget->used())); });
}

void PrometheusFrontendMetrics::RequestDone(absl::string_view method, int status) {
  int c = status / 100;
  if (c < 1 || c > 5) c = 5;
  auto it = requests_.find(absl::StrCat(method, c));
  if (it == requests_.end()) it = requests_.find(absl::StrCat("other", c));
  it->second->Increment();
}

void PrometheusFrontendMetrics::StreamEnded(bool client_disconnected) {
  streams_->Decrement();
  if (client_disconnected) disconnects_->Increment();
}

}  // namespace nzbmesh::frontend
