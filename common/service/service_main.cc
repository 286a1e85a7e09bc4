#include "common/service/service_main.h"

#include <pthread.h>
#include <signal.h>

#include <thread>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/config/config.h"
#include "common/log/log.h"
#include "common/service/mutex_mode.h"

ABSL_FLAG(std::string, config, "", "path to nzbmesh.yaml (default: $NZBMESH_CONFIG, then ./nzbmesh.yaml)");

namespace nzbmesh {

absl::StatusOr<std::unique_ptr<ServiceMain>> ServiceMain::Start(const ServiceOptions& options,
                                                                const std::vector<grpc::Service*>& services,
                                                                metrics::Registry* registry) {
  auto sm = std::unique_ptr<ServiceMain>(new ServiceMain());
  sm->options_ = options;
  auto creds = MakeServerCredentials(options.tls);
  if (!creds.ok()) return creds.status();

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.grpc_listen, *creds, &sm->grpc_port_);
  // One server per port: without this a second instance would share the port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  // Detect dead clients (a killed importer holding a lease) within seconds.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  for (grpc::Service* s : services) builder.RegisterService(s);
  sm->server_ = builder.BuildAndStart();
  if (sm->server_ == nullptr || sm->grpc_port_ == 0) {
    return absl::UnavailableError(absl::StrCat(options.name, ": cannot listen for gRPC on ", options.grpc_listen,
                                               " (address in use or not local?)"));
  }
  sm->server_->GetHealthCheckService()->SetServingStatus(true);
  sm->server_->GetHealthCheckService()->SetServingStatus(options.name, true);
  if (!options.metrics_listen.empty() && registry != nullptr) {
    auto exposer = metrics::Exposer::Start(options.metrics_listen, registry);
    if (!exposer.ok()) {
      sm->server_->Shutdown();
      return exposer.status();
    }
    sm->exposer_ = std::move(*exposer);
  }
  log::Info("service started", {{"grpc_port", sm->grpc_port_},
                                {"metrics_port", sm->metrics_port()},
                                {"tls", !options.tls.cert_file.empty()}});
  return sm;
}

ServiceMain::~ServiceMain() { Shutdown(absl::ZeroDuration()); }

void ServiceMain::OnShutdown(std::function<void()> hook) { hooks_.push_back(std::move(hook)); }

void ServiceMain::Shutdown(absl::Duration grace) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  shut_down_ = true;
  if (server_) {
    server_->GetHealthCheckService()->SetServingStatus(false);
    for (auto& hook : hooks_) hook();
    server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(grace));
    server_->Wait();
  }
  if (exposer_) exposer_->Stop();
  log::Info("service stopped");
}

int ServiceMain::WaitForTermination() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  std::atomic<int> sig{0};
  std::thread waiter([&] {
    int s = 0;
    if (sigwait(&set, &s) == 0) sig = s;
    requested_.Notify();
  });
  requested_.WaitForNotification();
  if (sig.load() == 0) pthread_kill(waiter.native_handle(), SIGTERM);  // unblock sigwait
  waiter.join();
  log::Info("shutting down", {{"signal", sig.load()}, {"grace_s", absl::ToDoubleSeconds(options_.shutdown_grace)}});
  Shutdown(options_.shutdown_grace);
  return sig.load();
}

void BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

std::string InitService(int argc, char** argv, const char* name, const char* usage) {
  DisableMutexDeadlockDetection();
  BlockTerminationSignals();
  absl::SetProgramUsageMessage(usage);
  absl::ParseCommandLine(argc, argv);
  log::SetServiceName(name);
  return config::DefaultConfigPath(absl::GetFlag(FLAGS_config));
}

}  // namespace nzbmesh
