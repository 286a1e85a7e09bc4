// nzbmesh importer: import queue, workers, catalog and health sweeps over
// PostgreSQL.
//   importer --config=nzbmesh.yaml
// Several importers may share one database (jobs are claimed with
// FOR UPDATE SKIP LOCKED). SIGTERM: first stop the watch folder, the health
// sweep and the workers (their broker calls are cancelled at once, running
// jobs go back to the queue uncounted, leases are released: see WorkerPool),
// then drain gRPC calls for shutdown_grace, and exit 0.
#include <signal.h>

#include "common/config/config.h"
#include "common/grpc/credentials.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/service/service_main.h"
#include "services/importer/broker_client.h"
#include "services/importer/cancel_watcher.h"
#include "services/importer/health.h"
#include "services/importer/importer_config.h"
#include "services/importer/importer_metrics.h"
#include "services/importer/importer_service.h"
#include "services/importer/job_queue.h"
#include "services/importer/pipeline.h"
#include "services/importer/store.h"
#include "services/importer/watch_folder.h"
#include "services/importer/worker.h"

int main(int argc, char** argv) {
  using namespace nzbmesh;
  using namespace nzbmesh::importer;
  signal(SIGPIPE, SIG_IGN);  // a dropped database socket must not kill us
  const std::string config_path = InitService(argc, argv, "importer", "nzbmesh importer: import queue and catalog");
  auto file = config::ConfigFile::Load(config_path);
  if (!file.ok()) {
    log::Error("cannot load config", {{"error", file.status().ToString()}});
    return 2;
  }
  auto cfg = ParseImporterConfig(*file);
  if (!cfg.ok()) {
    log::Error("invalid importer config", {{"error", cfg.status().ToString()}});
    return 2;
  }
  for (const auto& k : cfg->unknown_keys) log::Warning("unknown config key ignored", {{"key", k}});

  metrics::Registry registry;
  ImporterMetrics metrics(registry);
  cfg->store.registry = &registry;
  auto store = Store::Create(cfg->store);
  if (!store.ok()) {
    log::Error("cannot open the database", {{"error", store.status().ToString()}});
    return 1;
  }
  auto channel = MakeChannel(cfg->broker, cfg->broker_tls);
  if (!channel.ok()) {
    log::Error("invalid broker channel settings", {{"error", channel.status().ToString()}});
    return 2;
  }
  std::unique_ptr<BrokerClient> broker = MakeGrpcBrokerClient(*channel);
  JobQueue queue(store->get(), cfg->queue, &metrics);
  ImportPipeline pipeline(broker.get(), cfg->pipeline, &metrics);
  WorkerPool workers(store->get(), broker.get(), &pipeline, cfg->workers, &metrics);
  queue.AddListener([&] { workers.Wake(); });
  queue.AddCancelListener([&](int64_t job_id) { workers.CancelRunning(job_id); });
  // A cancel that another replica took (or this one: CancelRunning is
  // idempotent) stops this process's worker at once, not at its heartbeat.
  CancelWatcher cancels({cfg->store.url}, [&](int64_t job_id) { workers.CancelRunning(job_id); }, &metrics);
  HealthSweeper health(store->get(), broker.get(), cfg->health, &metrics);
  std::unique_ptr<WatchFolder> watch;
  if (!cfg->watch_dir.empty()) {
    WatchFolderOptions wo;
    wo.dir = cfg->watch_dir;
    wo.interval = cfg->watch_interval;
    wo.settle = cfg->watch_settle;
    wo.nzb = cfg->pipeline.nzb;
    watch = std::make_unique<WatchFolder>(&queue, wo);
  }

  ImporterServiceImpl importer_service(&queue);
  CatalogServiceImpl catalog_service(store->get());
  auto sm = ServiceMain::Start(cfg->service, {&importer_service, &catalog_service}, &registry);
  if (!sm.ok()) {
    log::Error("cannot start", {{"error", sm.status().ToString()}});
    return 1;
  }
  log::Info("importer started", {{"grpc_port", (*sm)->grpc_port()}, {"owner", workers.owner()},
                                 {"workers", cfg->workers.workers}, {"broker", cfg->broker}});
  workers.Start();
  health.Start();
  if (watch) watch->Start();

  // Before the gRPC drain, so no job is claimed or left running during it.
  auto stop_background = [&] {
    if (watch) watch->Stop();
    health.Stop();
    workers.Stop();
  };
  (*sm)->OnShutdown(stop_background);
  (*sm)->WaitForTermination();
  stop_background();  // idempotent; covers a shutdown that ran no hooks
  return 0;
}
