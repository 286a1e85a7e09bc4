// The `importer` section of nzbmesh.yaml:
//
//   importer:
//     grpc_listen: 127.0.0.1:50052
//     metrics_listen: 127.0.0.1:9092
//     broker: 127.0.0.1:50051
//     database_url_env: NZBMESH_DATABASE_URL    # or database_url_file
//     watch_dir: ""                  # optional; *.nzb files dropped here are queued
//     watch_interval: 5s             # between scans of watch_dir
//     watch_settle: 60s              # an unparsable file unchanged this long is rejected (.failed)
//     workers: 2
//     import_fetch_concurrency: 8    # broker calls in flight per job (M3)
//     heartbeat_interval: 5s
//     heartbeat_timeout: 30s         # a claim not extended this long is requeued (M2)
//     max_attempts: 3
//     retry_backoff: 30s
//     health: {enabled: false, interval: 1h, sample: 10}
//     filter: {extensions: [], drop_samples: true}
#ifndef NZBMESH_SERVICES_IMPORTER_IMPORTER_CONFIG_H_
#define NZBMESH_SERVICES_IMPORTER_IMPORTER_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config/config.h"
#include "common/grpc/credentials.h"
#include "common/service/service_main.h"
#include "services/importer/health.h"
#include "services/importer/job_queue.h"
#include "services/importer/pipeline.h"
#include "services/importer/store.h"
#include "services/importer/worker.h"

namespace nzbmesh::importer {

struct ImporterConfig {
  ServiceOptions service;
  std::string broker;              // host:port of the broker
  ClientTlsOptions broker_tls;
  Store::Options store;            // url from database_url_env / database_url_file
  std::string watch_dir;           // "" = no watch folder
  absl::Duration watch_interval = absl::Seconds(5);
  absl::Duration watch_settle = absl::Seconds(60);  // WatchFolderOptions::settle
  WorkerOptions workers;
  PipelineOptions pipeline;
  JobQueue::Options queue;
  HealthOptions health;
  std::vector<std::string> unknown_keys;  // reported as warnings at start-up
};

// Reads and validates the importer section. Errors name the key.
absl::StatusOr<ImporterConfig> ParseImporterConfig(const config::ConfigFile& file);

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_IMPORTER_CONFIG_H_
