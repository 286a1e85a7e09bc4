// ServiceMain: the common shell of every nzbmesh gRPC service.
//
// Start() builds a gRPC server with the services given, the standard
// grpc.health.v1 health service and server reflection, and serves the
// metrics registry on its own port. Ports may be 0 (tests): the bound ports
// are reported by grpc_port()/metrics_port(). Shutdown(grace) first marks the
// health service NOT_SERVING, then lets in-flight calls finish for up to
// `grace` before cancelling them. WaitForTermination() blocks until SIGTERM or
// SIGINT (or RequestShutdown()) and then shuts down with options.shutdown_grace.
//
// Threading: gRPC owns its completion-queue threads; one signal thread per
// process (sigwait) when WaitForTermination is used. Nothing here blocks a
// gRPC thread.
#ifndef NZBMESH_COMMON_SERVICE_SERVICE_MAIN_H_
#define NZBMESH_COMMON_SERVICE_SERVICE_MAIN_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/grpc/credentials.h"
#include "common/metrics/exposer.h"
#include "common/metrics/metrics.h"

namespace nzbmesh {

struct ServiceOptions {
  std::string name;                 // "broker", ...: logs and the health service name
  std::string grpc_listen = "127.0.0.1:0";     // host:port; port 0 = pick one
  std::string metrics_listen = "127.0.0.1:0";  // "" = no metrics endpoint
  absl::Duration shutdown_grace = absl::Seconds(10);
  ServerTlsOptions tls;             // default plaintext
  int max_message_bytes = 64 << 20;
};

class ServiceMain {
 public:
  // `services` and `registry` must outlive the ServiceMain.
  static absl::StatusOr<std::unique_ptr<ServiceMain>> Start(const ServiceOptions& options,
                                                            const std::vector<grpc::Service*>& services,
                                                            metrics::Registry* registry);
  ~ServiceMain();

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return exposer_ ? exposer_->port() : 0; }
  grpc::Server* server() { return server_.get(); }

  // Runs before the gRPC server stops (e.g. to end long-lived streams such as
  // leases and sessions so the grace period is not spent waiting on them).
  void OnShutdown(std::function<void()> hook);

  // Idempotent; safe from any thread.
  void Shutdown(absl::Duration grace);
  void RequestShutdown() { requested_.Notify(); }
  // Blocks until SIGTERM/SIGINT or RequestShutdown(), then Shutdown(grace).
  // Call at most once, from main(). Returns the signal number (0 if requested).
  int WaitForTermination();

 private:
  ServiceMain() = default;
  ServiceOptions options_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<metrics::Exposer> exposer_;
  int grpc_port_ = 0;
  std::vector<std::function<void()>> hooks_;
  absl::Notification requested_;
  absl::Mutex mu_;  // serialises Shutdown
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

// Blocks SIGTERM/SIGINT/SIGHUP in the calling thread (and threads it starts
// later). Call first thing in main() so signals reach only sigwait.
void BlockTerminationSignals();

// Standard process set-up for a service binary: turns off absl::Mutex's
// deadlock detector (mutex_mode.h), blocks the termination signals, parses
// absl flags, sets the log service name. Returns the --config path.
std::string InitService(int argc, char** argv, const char* name, const char* usage);

}  // namespace nzbmesh

#endif  // NZBMESH_COMMON_SERVICE_SERVICE_MAIN_H_
