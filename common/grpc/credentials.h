// gRPC transport security from certificate files named in config.
// Default is plaintext (services listen on loopback or inside a cluster
// network); TLS and mutual TLS are one config block away:
//   grpc_tls: {cert_file: ..., key_file: ..., client_ca_file: ..., require_client_cert: true}
//   <peer>_tls: {ca_file: ..., cert_file: ..., key_file: ...}   # client side
#ifndef NZBMESH_COMMON_GRPC_CREDENTIALS_H_
#define NZBMESH_COMMON_GRPC_CREDENTIALS_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "common/config/config.h"

namespace nzbmesh {

struct ServerTlsOptions {
  std::string cert_file;       // "" = plaintext
  std::string key_file;
  std::string client_ca_file;  // verify client certificates against this CA
  bool require_client_cert = false;  // mutual TLS
};

struct ClientTlsOptions {
  bool enabled = false;
  std::string ca_file;    // "" = system roots
  std::string cert_file;  // client certificate for mutual TLS
  std::string key_file;
  std::string server_name_override;  // for tests with certificates issued to a name
};

absl::StatusOr<ServerTlsOptions> ReadServerTls(config::SectionReader& section, const std::string& key);
absl::StatusOr<ClientTlsOptions> ReadClientTls(config::SectionReader& section, const std::string& key);

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const ServerTlsOptions& o);

// A channel to `target` ("host:port"), with keepalive pings so a dead peer is
// noticed (leases and stream sessions rely on broken calls being detected).
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& target, const ClientTlsOptions& o);

}  // namespace nzbmesh

#endif  // NZBMESH_COMMON_GRPC_CREDENTIALS_H_
