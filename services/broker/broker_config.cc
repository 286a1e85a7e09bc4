#include "services/broker/broker_config.h"

#include "absl/strings/str_cat.h"
#include "common/grpc/credentials.h"
#include "common/status/status_macros.h"

namespace nzbmesh::broker {

absl::StatusOr<BrokerConfig> ParseBrokerConfig(const config::ConfigFile& file) {
  config::SectionReader s = file.Section("broker");
  BrokerConfig c;
  c.service.name = "broker";
  NZB_ASSIGN_OR_RETURN(c.service.grpc_listen, s.String("grpc_listen", "127.0.0.1:50051"));
  NZB_ASSIGN_OR_RETURN(c.service.metrics_listen, s.String("metrics_listen", "127.0.0.1:9091"));
  NZB_ASSIGN_OR_RETURN(c.service.shutdown_grace, s.Duration("shutdown_grace", absl::Seconds(20)));
  NZB_ASSIGN_OR_RETURN(c.service.tls, ReadServerTls(s, "grpc_tls"));
  PoolOptions& p = c.pool;
  NZB_ASSIGN_OR_RETURN(int64_t headroom, s.Int("stream_headroom", p.stream_headroom));
  NZB_ASSIGN_OR_RETURN(int64_t per_stream, s.Int("max_slots_per_stream", 0));
  NZB_ASSIGN_OR_RETURN(int64_t imports, s.Int("max_concurrent_imports", p.max_concurrent_imports));
  NZB_ASSIGN_OR_RETURN(int64_t imports_streaming,
                       s.Int("max_concurrent_imports_while_streaming", p.max_concurrent_imports_while_streaming));
  NZB_ASSIGN_OR_RETURN(int64_t queue, s.Int("max_queue_per_class", p.max_queue_per_class));
  NZB_ASSIGN_OR_RETURN(p.throttle_restore, s.Duration("throttle_restore", p.throttle_restore));
  NZB_ASSIGN_OR_RETURN(p.drain_limit, s.Duration("drain_limit", p.drain_limit));
  NZB_ASSIGN_OR_RETURN(p.breaker_open_time, s.Duration("breaker_open_time", p.breaker_open_time));
  p.stream_headroom = static_cast<int>(headroom);
  p.max_slots_per_stream = static_cast<int>(per_stream);
  p.max_concurrent_imports = static_cast<int>(imports);
  p.max_concurrent_imports_while_streaming = static_cast<int>(imports_streaming);
  p.max_queue_per_class = static_cast<int>(queue);
  if (headroom < 0 || imports < 1 || imports_streaming < 0 || queue < 1) {
    return absl::InvalidArgumentError(
        "broker: stream_headroom >= 0, max_concurrent_imports >= 1, "
        "max_concurrent_imports_while_streaming >= 0 and max_queue_per_class >= 1 are required");
  }
  NZB_ASSIGN_OR_RETURN(std::vector<config::SectionReader> providers, s.List("providers"));
  for (auto& pr : providers) {
    ProviderOptions o;
    NZB_ASSIGN_OR_RETURN(o.name, pr.String("name"));
    NZB_ASSIGN_OR_RETURN(o.connection.host, pr.String("host"));
    NZB_ASSIGN_OR_RETURN(std::string tls, pr.String("tls", "none"));
    if (tls == "none") {
      o.connection.tls = nntp::TlsMode::kNone;
    } else if (tls == "implicit") {
      o.connection.tls = nntp::TlsMode::kImplicit;
    } else if (tls == "starttls") {
      o.connection.tls = nntp::TlsMode::kStartTls;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(pr.path(), ".tls: expected none, implicit or starttls, got \"", tls, "\""));
    }
    NZB_ASSIGN_OR_RETURN(int64_t port, pr.Int("port", o.connection.tls == nntp::TlsMode::kImplicit ? 563 : 119));
    o.connection.port = static_cast<int>(port);
    NZB_ASSIGN_OR_RETURN(o.connection.tls_verify, pr.Bool("tls_verify", true));
    NZB_ASSIGN_OR_RETURN(o.connection.tls_ca_file, pr.String("tls_ca_file"));
    NZB_ASSIGN_OR_RETURN(o.connection.username, pr.String("username"));
    NZB_ASSIGN_OR_RETURN(o.connection.password, pr.Secret("password"));
    NZB_ASSIGN_OR_RETURN(o.connection.mode_reader, pr.Bool("mode_reader", false));
    NZB_ASSIGN_OR_RETURN(o.connection.dial_timeout, pr.Duration("dial_timeout", o.connection.dial_timeout));
    NZB_ASSIGN_OR_RETURN(o.connection.first_byte_timeout, pr.Duration("first_byte_timeout", o.connection.first_byte_timeout));
    NZB_ASSIGN_OR_RETURN(o.connection.stall_timeout, pr.Duration("stall_timeout", o.connection.stall_timeout));
    NZB_ASSIGN_OR_RETURN(int64_t max_conn, pr.Int("max_connections", 10));
    NZB_ASSIGN_OR_RETURN(int64_t depth, pr.Int("pipeline_depth", 2));
    NZB_ASSIGN_OR_RETURN(int64_t stat_depth, pr.Int("stat_pipeline_depth", 16));
    o.stat_pipeline_depth = static_cast<int>(stat_depth);
    o.max_connections = static_cast<int>(max_conn);
    o.pipeline_depth = static_cast<int>(depth);
    NZB_ASSIGN_OR_RETURN(o.backup, pr.Bool("backup", false));
    NZB_ASSIGN_OR_RETURN(o.backbone, pr.String("backbone"));
    NZB_ASSIGN_OR_RETURN(o.idle_timeout, pr.Duration("idle_timeout", o.idle_timeout));
    NZB_ASSIGN_OR_RETURN(o.keepalive_interval, pr.Duration("keepalive_interval", o.keepalive_interval));
    if (o.name.empty() || o.connection.host.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(pr.path(), ": name and host are required"));
    }
    if (o.max_connections < 1 || o.pipeline_depth < 1 || o.stat_pipeline_depth < 1 || port < 1 || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(
          pr.path(), ": max_connections >= 1, pipeline_depth >= 1, stat_pipeline_depth >= 1 and a valid port are required"));
    }
    p.providers.push_back(std::move(o));
  }
  c.unknown_keys = s.UnknownKeys();
  return c;
}

}  // namespace nzbmesh::broker
