#include "services/frontend/prometheus_frontend_metrics.h"

#include "absl/strings/str_cat.h"

namespace nzbmesh::frontend {
namespace {

const char* const kMethods[] = {"GET",  "HEAD", "OPTIONS",   "PROPFIND", "DELETE", "POST",   "PUT",
                                "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK",     "UNLOCK", "other"};

}  // namespace

PrometheusFrontendMetrics::PrometheusFrontendMetrics(metrics::Registry& registry) : registry_(registry) {
  auto& req = metrics::BuildCounter()
                  .Name("nzbmesh_frontend_requests_total")
                  .Help("HTTP requests answered, by method and status class.")
                  .Register(registry);
  for (const char* m : kMethods) {
    for (int c = 1; c <= 5; ++c) {
      requests_[absl::StrCat(m, c)] = &req.Add({{"method", m}, {"code", absl::StrCat(c, "xx")}});
    }
  }
  bytes_ = &metrics::BuildCounter()
                .Name("nzbmesh_frontend_bytes_served_total")
                .Help("Response body bytes written to clients.")
                .Register(registry)
                .Add({});
  streams_ = &metrics::BuildGauge()
                  .Name("nzbmesh_frontend_active_streams")
                  .Help("Data responses in progress.")
                  .Register(registry)
                  .Add({});
  ttfb_ = &metrics::BuildHistogram()
               .Name("nzbmesh_frontend_time_to_first_byte_seconds")
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
                     .Help("Read-ahead memory reserved by all streams.")
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
