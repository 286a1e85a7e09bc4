// Serves a Registry as GET /metrics (Prometheus text format 0.0.4) on its own
// port, like prometheus-cpp's Exposer. One accept thread answers requests one
// at a time with short socket timeouts: scrapes are rare and small, and a slow
// or hostile client can delay a scrape by at most the timeout, never hang it.
#ifndef NZBMESH_COMMON_METRICS_EXPOSER_H_
#define NZBMESH_COMMON_METRICS_EXPOSER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/metrics/metrics.h"

namespace nzbmesh::metrics {

class Exposer {
 public:
  // `listen` is "host:port"; port 0 picks a free port (see port()).
  // `registry` must outlive the Exposer.
  static absl::StatusOr<std::unique_ptr<Exposer>> Start(const std::string& listen, const Registry* registry);
  ~Exposer();  // stops and joins

  int port() const { return port_; }
  void Stop();

 private:
  Exposer(int fd, int port, const Registry* registry);
  void Serve();
  void HandleClient(int fd);

  const int listen_fd_;
  const int port_;
  const Registry* const registry_;
  int wake_pipe_[2] = {-1, -1};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// Parses "host:port" (host may be empty, "*" or "0.0.0.0" for any, or a
// bracketed IPv6 literal). Exposed for ServiceMain and tests.
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& listen);

}  // namespace nzbmesh::metrics

#endif  // NZBMESH_COMMON_METRICS_EXPOSER_H_
