// nzbmesh frontend: WebDAV / range GET for players, SABnzbd API for *arr apps.
//   frontend --config=nzbmesh.yaml
// Reads the `frontend` section. SIGTERM: /readyz turns 503, responses in
// progress get `shutdown_grace` (30 s) to finish, then connections close.
#include <openssl/evp.h>
#include <signal.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/config/config.h"
#include "common/grpc/credentials.h"
#include "common/log/log.h"
#include "common/metrics/exposer.h"
#include "common/metrics/metrics.h"
#include "common/service/service_main.h"
#include "common/status/status_macros.h"
#include "services/frontend/catalog_client.h"
#include "services/frontend/frontend_server.h"
#include "services/frontend/grpc_catalog_client.h"
#include "services/frontend/grpc_segment_fetcher.h"
#include "services/frontend/memory_limit.h"
#include "services/frontend/prometheus_frontend_metrics.h"

namespace nzbmesh::frontend {
namespace {

std::string Sha256Hex(const std::string& s) {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), md, &len, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned i = 0; i < len; ++i) absl::StrAppend(&hex, absl::Hex(md[i], absl::kZeroPad2));
  return hex;
}

struct FrontendConfig {
  FrontendServer::Options server;
  std::string metrics_listen;
  std::string broker, importer;
  ClientTlsOptions broker_tls, importer_tls;
  absl::Duration shutdown_grace = absl::Seconds(30);
  std::vector<std::string> unknown_keys;
};

absl::StatusOr<FrontendConfig> ParseConfig(const config::ConfigFile& file) {
  config::SectionReader s = file.Section("frontend");
  FrontendConfig c;
  NZB_ASSIGN_OR_RETURN(std::string listen, s.String("http_listen", "127.0.0.1:8080"));
  NZB_ASSIGN_OR_RETURN(auto hp, metrics::SplitHostPort(listen));
  c.server.listen_address = hp.first;
  c.server.port = hp.second;
  NZB_ASSIGN_OR_RETURN(c.metrics_listen, s.String("metrics_listen", "127.0.0.1:9093"));
  NZB_ASSIGN_OR_RETURN(c.broker, s.String("broker", "127.0.0.1:50051"));
  NZB_ASSIGN_OR_RETURN(c.importer, s.String("importer", "127.0.0.1:50052"));
  NZB_ASSIGN_OR_RETURN(c.broker_tls, ReadClientTls(s, "broker_tls"));
  NZB_ASSIGN_OR_RETURN(c.importer_tls, ReadClientTls(s, "importer_tls"));
  NZB_ASSIGN_OR_RETURN(c.shutdown_grace, s.Duration("shutdown_grace", c.shutdown_grace));
  NZB_ASSIGN_OR_RETURN(c.server.api_key, s.Secret("api_key"));
  NZB_ASSIGN_OR_RETURN(c.server.complete_dir, s.String("complete_dir", c.server.complete_dir));
  NZB_ASSIGN_OR_RETURN(int64_t io_threads, s.Int("io_threads", c.server.io_threads));
  NZB_ASSIGN_OR_RETURN(int64_t max_conn, s.Int("max_connections", c.server.max_connections));
  NZB_ASSIGN_OR_RETURN(int64_t read_ahead, s.Int("max_read_ahead", c.server.max_read_ahead));
  NZB_ASSIGN_OR_RETURN(int64_t fresh_ahead, s.Int("fresh_read_ahead", c.server.fresh_read_ahead));
  NZB_ASSIGN_OR_RETURN(c.server.fresh_read_ahead_delay,
                       s.Duration("fresh_read_ahead_delay", c.server.fresh_read_ahead_delay));
  NZB_ASSIGN_OR_RETURN(int64_t initial_ahead, s.Int("initial_read_ahead", c.server.initial_read_ahead));
  NZB_ASSIGN_OR_RETURN(int64_t mem_mb, s.Int("stream_memory_limit_mb", c.server.stream_memory_limit >> 20));
  NZB_ASSIGN_OR_RETURN(int64_t lru, s.Int("lru_segments_per_file", static_cast<int64_t>(c.server.lru_segments_per_file)));
  NZB_ASSIGN_OR_RETURN(c.server.missing_segment_ttl, s.Duration("missing_segment_ttl", c.server.missing_segment_ttl));
  NZB_ASSIGN_OR_RETURN(c.server.request_timeout, s.Duration("request_timeout", c.server.request_timeout));
  NZB_ASSIGN_OR_RETURN(c.server.idle_timeout, s.Duration("idle_timeout", c.server.idle_timeout));
  NZB_ASSIGN_OR_RETURN(c.server.write_timeout, s.Duration("write_timeout", c.server.write_timeout));
  NZB_ASSIGN_OR_RETURN(c.server.addurl_timeout, s.Duration("addurl_timeout", c.server.addurl_timeout));
  NZB_ASSIGN_OR_RETURN(int64_t addurl_redirects, s.Int("addurl_max_redirects", c.server.addurl_max_redirects));
  NZB_ASSIGN_OR_RETURN(c.server.addurl_ca_file, s.String("addurl_ca_file", c.server.addurl_ca_file));
  NZB_ASSIGN_OR_RETURN(c.server.probe_max_bytes, s.Int("probe_max_bytes", c.server.probe_max_bytes));
  NZB_ASSIGN_OR_RETURN(c.server.probe_sequential_window,
                       s.Duration("probe_sequential_window", c.server.probe_sequential_window));
  c.server.addurl_max_redirects = static_cast<int>(addurl_redirects);
  NZB_ASSIGN_OR_RETURN(std::vector<std::string> cats, s.StringList("categories"));
  if (!cats.empty()) c.server.categories = cats;
  c.server.io_threads = static_cast<int>(io_threads);
  c.server.max_connections = static_cast<int>(max_conn);
  c.server.max_read_ahead = static_cast<int>(read_ahead);
  c.server.fresh_read_ahead = static_cast<int>(fresh_ahead);
  c.server.initial_read_ahead = static_cast<int>(initial_ahead);
  c.server.stream_memory_limit = mem_mb << 20;
  c.server.lru_segments_per_file = static_cast<size_t>(lru);
  NZB_ASSIGN_OR_RETURN(std::vector<config::SectionReader> users, s.List("webdav_users"));
  for (auto& u : users) {
    FrontendServer::WebDavUser user;
    NZB_ASSIGN_OR_RETURN(user.username, u.String("username"));
    NZB_ASSIGN_OR_RETURN(user.password_sha256, u.String("password_sha256"));
    if (user.password_sha256.empty()) {
      NZB_ASSIGN_OR_RETURN(std::string pw, u.Secret("password"));
      if (pw.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(u.path(), ": set password_sha256, password_env or password_file"));
      }
      user.password_sha256 = Sha256Hex(pw);
    }
    if (user.username.empty()) return absl::InvalidArgumentError(absl::StrCat(u.path(), ".username is empty"));
    c.server.webdav_users.push_back(std::move(user));
  }
  c.unknown_keys = s.UnknownKeys();
  return c;
}

int Run(const std::string& config_path, int malloc_arenas) {
  if (malloc_arenas > 0) {
    log::Info("malloc arenas limited (MALLOC_ARENA_MAX overrides)", {{"arena_max", malloc_arenas}});
  }
  auto file = config::ConfigFile::Load(config_path);
  if (!file.ok()) {
    log::Error("cannot load config", {{"error", file.status().ToString()}});
    return 2;
  }
  auto cfg = ParseConfig(*file);
  if (!cfg.ok()) {
    log::Error("invalid frontend config", {{"error", cfg.status().ToString()}});
    return 2;
  }
  for (const auto& k : cfg->unknown_keys) log::Warning("unknown config key ignored", {{"key", k}});
  if (cfg->server.webdav_users.empty()) log::Warning("no webdav_users: /dav/ is open for reading and DELETE is refused");
  if (const auto limit = CgroupMemoryLimit()) {
    const int64_t fit = FitStreamMemoryLimit(cfg->server.stream_memory_limit, limit);
    if (fit < cfg->server.stream_memory_limit) {
      log::Warning("stream_memory_limit lowered to fit the container's memory limit",
                   {{"configured_mb", absl::StrCat(cfg->server.stream_memory_limit >> 20)},
                    {"container_limit_mb", absl::StrCat(*limit >> 20)},
                    {"stream_memory_limit_mb", absl::StrCat(fit >> 20)}});
      cfg->server.stream_memory_limit = fit;
    }
  }

  auto broker_channel = MakeChannel(cfg->broker, cfg->broker_tls);
  auto importer_channel = MakeChannel(cfg->importer, cfg->importer_tls);
  if (!broker_channel.ok() || !importer_channel.ok()) {
    log::Error("cannot create gRPC channels",
               {{"error", (broker_channel.ok() ? importer_channel.status() : broker_channel.status()).ToString()}});
    return 2;
  }
  metrics::Registry registry;
  PrometheusFrontendMetrics metrics(registry);
  GrpcSegmentFetcher fetcher(*broker_channel, GrpcSegmentFetcher::Options{});
  GrpcCatalogClient catalog_rpc(*importer_channel);
  CachingCatalogClient catalog(&catalog_rpc, CachingCatalogClient::Options{});
  GrpcImporterClient importer(*importer_channel);
  auto server = FrontendServer::Create(cfg->server, {&fetcher, &catalog, &importer, &metrics});
  if (!server.ok()) {
    log::Error("invalid frontend config", {{"error", server.status().ToString()}});
    return 2;
  }
  metrics.ObserveMemoryBudget(&(*server)->memory_budget());
  if (absl::Status s = (*server)->Start(); !s.ok()) {
    log::Error("cannot start", {{"error", s.ToString()}});
    return 1;
  }
  std::unique_ptr<metrics::Exposer> exposer;
  if (!cfg->metrics_listen.empty()) {
    auto e = metrics::Exposer::Start(cfg->metrics_listen, &registry);
    if (!e.ok()) {
      log::Error("cannot serve metrics", {{"error", e.status().ToString()}});
      return 1;
    }
    exposer = std::move(*e);
  }
  log::Info("frontend started", {{"http_port", (*server)->port()},
                                 {"metrics_port", exposer ? exposer->port() : 0},
                                 {"broker", cfg->broker},
                                 {"importer", cfg->importer}});
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  // Waits for the signal, handing freed heap back while nothing streams.
  IdleHeapTrimmer trimmer([&server] { return (*server)->active_streams() == 0; });
  int sig = -1;
  while (sig <= 0) {
    const timespec tick{10, 0};
    sig = sigtimedwait(&set, nullptr, &tick);
    if (sig <= 0) trimmer.Tick();
  }
  log::Info("shutting down", {{"signal", sig}, {"grace_s", absl::ToDoubleSeconds(cfg->shutdown_grace)}});
  (*server)->Shutdown(cfg->shutdown_grace);
  if (exposer) exposer->Stop();
  log::Info("frontend stopped");
  return 0;
}

}  // namespace
}  // namespace nzbmesh::frontend

int main(int argc, char** argv) {
  // Before any thread exists: threads created later share the arenas.
  const int arenas = nzbmesh::frontend::LimitMallocArenas();
  nzbmesh::frontend::KeepFreedHeap();
  const std::string path = nzbmesh::InitService(argc, argv, "frontend", "nzbmesh frontend: WebDAV, range GET, SABnzbd API");
  return nzbmesh::frontend::Run(path, arenas);
}
