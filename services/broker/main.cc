// nzbmesh broker: the only process that opens NNTP connections.
//   broker --config=nzbmesh.yaml
// SIGHUP reloads the providers (add, remove, resize) without dropping
// in-flight work; SIGTERM drains (health NOT_SERVING, then up to
// shutdown_grace for in-flight calls).
#include <signal.h>

#include <thread>

#include "common/config/config.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/service/service_main.h"
#include "services/broker/broker_config.h"
#include "services/broker/broker_service.h"
#include "services/broker/candidate_pools.h"
#include "services/broker/pool.h"

int main(int argc, char** argv) {
  using namespace nzbmesh;
  const std::string config_path = InitService(argc, argv, "broker", "nzbmesh broker: NNTP pool and budget authority");
  auto file = config::ConfigFile::Load(config_path);
  if (!file.ok()) {
    log::Error("cannot load config", {{"error", file.status().ToString()}});
    return 2;
  }
  auto cfg = broker::ParseBrokerConfig(*file);
  if (!cfg.ok()) {
    log::Error("invalid broker config", {{"error", cfg.status().ToString()}});
    return 2;
  }
  for (const auto& k : cfg->unknown_keys) log::Warning("unknown config key ignored", {{"key", k}});
  if (cfg->pool.providers.empty()) log::Warning("no providers configured; every fetch will fail with UNAVAILABLE");

  metrics::Registry registry;
  auto pool = broker::Pool::Create(cfg->pool, &registry);
  if (!pool.ok()) {
    log::Error("invalid broker config", {{"error", pool.status().ToString()}});
    return 2;
  }
  broker::CandidatePoolsOptions candidate_options;
  candidate_options.pool_template = cfg->pool;
  candidate_options.pool_template.providers.clear();
  auto candidates = broker::CandidatePools::Create(candidate_options);
  if (!candidates.ok()) {
    log::Error("cannot create candidate pools", {{"error", candidates.status().ToString()}});
    return 1;
  }
  broker::BrokerService service(pool->get(), candidates->get());
  auto sm = ServiceMain::Start(cfg->service, {&service}, &registry);
  if (!sm.ok()) {
    log::Error("cannot start", {{"error", sm.status().ToString()}});
    return 1;
  }
  (*sm)->OnShutdown([&] { service.EndLongLivedCalls(); });

  // SIGHUP: reload providers.
  std::thread reloader([&, path = config_path] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    while (true) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) return;
      if (sig != SIGHUP) return;
      auto f = config::ConfigFile::Load(path);
      auto c = f.ok() ? broker::ParseBrokerConfig(*f) : absl::StatusOr<broker::BrokerConfig>(f.status());
      if (!c.ok()) {
        log::Error("reload failed; keeping the running providers", {{"error", c.status().ToString()}});
        continue;
      }
      absl::Status s = (*pool)->Reconfigure(c->pool.providers);
      if (!s.ok()) log::Error("reload failed", {{"error", s.ToString()}});
      service.SessionStateChanged();  // sessions learn the new capacity now
    }
  });
  reloader.detach();

  (*sm)->WaitForTermination();
  (*candidates)->Shutdown();
  (*pool)->Shutdown();
  return 0;
}
