#include "services/importer/importer_config.h"

#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"

namespace nzbmesh::importer {

absl::StatusOr<ImporterConfig> ParseImporterConfig(const config::ConfigFile& file) {
  config::SectionReader s = file.Section("importer");
  ImporterConfig c;
  c.service.name = "importer";
  NZB_ASSIGN_OR_RETURN(c.service.grpc_listen, s.String("grpc_listen", "127.0.0.1:50052"));
  NZB_ASSIGN_OR_RETURN(c.service.metrics_listen, s.String("metrics_listen", "127.0.0.1:9092"));
  NZB_ASSIGN_OR_RETURN(c.service.shutdown_grace, s.Duration("shutdown_grace", absl::Seconds(10)));
  NZB_ASSIGN_OR_RETURN(c.service.tls, ReadServerTls(s, "grpc_tls"));
  NZB_ASSIGN_OR_RETURN(c.broker, s.String("broker", "127.0.0.1:50051"));
  NZB_ASSIGN_OR_RETURN(c.broker_tls, ReadClientTls(s, "broker_tls"));
  if (!s.Has("database_url_env") && !s.Has("database_url_file")) {
    // The documented default: the URL in $NZBMESH_DATABASE_URL.
    auto url = config::ReadSecretEnv("NZBMESH_DATABASE_URL");
    c.store.url = url.ok() ? *url : "";
  } else {
    NZB_ASSIGN_OR_RETURN(c.store.url, s.Secret("database_url"));
  }
  if (c.store.url.empty()) {
    return absl::InvalidArgumentError(
        "importer.database_url_env: no database URL (set NZBMESH_DATABASE_URL or importer.database_url_file)");
  }
  NZB_ASSIGN_OR_RETURN(int64_t db_conns, s.Int("database_connections", 0));
  NZB_ASSIGN_OR_RETURN(c.watch_dir, s.String("watch_dir", ""));
  NZB_ASSIGN_OR_RETURN(c.watch_interval, s.Duration("watch_interval", c.watch_interval));
  NZB_ASSIGN_OR_RETURN(c.watch_settle, s.Duration("watch_settle", c.watch_settle));
  if (c.watch_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("importer.watch_interval: must be positive");
  }
  if (c.watch_settle < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("importer.watch_settle: must not be negative");
  }

  WorkerOptions& w = c.workers;
  NZB_ASSIGN_OR_RETURN(int64_t workers, s.Int("workers", w.workers));
  if (workers < 0 || workers > 256) return absl::InvalidArgumentError("importer.workers: must be within 0..256");
  w.workers = static_cast<int>(workers);
  NZB_ASSIGN_OR_RETURN(w.owner, s.String("owner", ""));
  NZB_ASSIGN_OR_RETURN(w.heartbeat_interval, s.Duration("heartbeat_interval", w.heartbeat_interval));
  NZB_ASSIGN_OR_RETURN(w.heartbeat_timeout, s.Duration("heartbeat_timeout", w.heartbeat_timeout));
  NZB_ASSIGN_OR_RETURN(w.poll_interval, s.Duration("poll_interval", w.poll_interval));
  NZB_ASSIGN_OR_RETURN(w.retry_backoff, s.Duration("retry_backoff", w.retry_backoff));
  NZB_ASSIGN_OR_RETURN(w.broker_retry_delay, s.Duration("broker_retry_delay", w.broker_retry_delay));
  if (w.heartbeat_interval <= absl::ZeroDuration() || w.heartbeat_timeout <= w.heartbeat_interval) {
    return absl::InvalidArgumentError(
        "importer.heartbeat_timeout: must be longer than heartbeat_interval (and both positive)");
  }
  c.store.max_connections = db_conns > 0 ? static_cast<int>(db_conns) : 2 * w.workers + 4;
  c.store.acquire_timeout = std::max(absl::Seconds(5), w.heartbeat_interval);

  NZB_ASSIGN_OR_RETURN(int64_t attempts, s.Int("max_attempts", c.queue.max_attempts));
  if (attempts < 1 || attempts > 100) return absl::InvalidArgumentError("importer.max_attempts: must be within 1..100");
  c.queue.max_attempts = static_cast<int>(attempts);
  NZB_ASSIGN_OR_RETURN(c.queue.max_nzb_bytes, s.Int("max_nzb_bytes", c.queue.max_nzb_bytes));
  c.pipeline.nzb.max_nzb_bytes = c.queue.max_nzb_bytes;

  NZB_ASSIGN_OR_RETURN(int64_t fan, s.Int("import_fetch_concurrency", c.pipeline.fetch_concurrency));
  if (fan < 1 || fan > 1000) {
    return absl::InvalidArgumentError("importer.import_fetch_concurrency: must be within 1..1000");
  }
  c.pipeline.fetch_concurrency = static_cast<int>(fan);
  NZB_ASSIGN_OR_RETURN(int64_t middle, s.Int("stat_sample_middle", c.pipeline.stat_sample_middle));
  c.pipeline.stat_sample_middle = static_cast<int>(std::max<int64_t>(0, middle));
  NZB_ASSIGN_OR_RETURN(c.pipeline.call_timeout, s.Duration("broker_call_timeout", c.pipeline.call_timeout));

  if (s.Has("filter")) {
    NZB_ASSIGN_OR_RETURN(config::SectionReader f, s.Child("filter"));
    NZB_ASSIGN_OR_RETURN(c.pipeline.filter.allowed_extensions, f.StringList("extensions"));
    NZB_ASSIGN_OR_RETURN(c.pipeline.filter.drop_samples, f.Bool("drop_samples", true));
  }
  if (s.Has("health")) {
    NZB_ASSIGN_OR_RETURN(config::SectionReader h, s.Child("health"));
    NZB_ASSIGN_OR_RETURN(c.health.enabled, h.Bool("enabled", false));
    NZB_ASSIGN_OR_RETURN(c.health.interval, h.Duration("interval", c.health.interval));
    NZB_ASSIGN_OR_RETURN(int64_t sample, h.Int("sample", c.health.sample));
    NZB_ASSIGN_OR_RETURN(int64_t per_sweep, h.Int("files_per_sweep", c.health.files_per_sweep));
    if (sample < 1) return absl::InvalidArgumentError("importer.health.sample: must be >= 1");
    if (c.health.interval <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError("importer.health.interval: must be positive");
    }
    c.health.sample = static_cast<int>(sample);
    c.health.files_per_sweep = static_cast<int>(std::max<int64_t>(1, per_sweep));
  }
  c.unknown_keys = s.UnknownKeys();
  return c;
}

}  // namespace nzbmesh::importer
