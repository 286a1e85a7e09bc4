#include "common/grpc/credentials.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"

namespace nzbmesh {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) return absl::FailedPreconditionError(absl::StrCat("cannot read ", what, " ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

absl::StatusOr<ServerTlsOptions> ReadServerTls(config::SectionReader& section, const std::string& key) {
  ServerTlsOptions o;
  if (!section.Has(key)) return o;
  NZB_ASSIGN_OR_RETURN(config::SectionReader tls, section.Child(key));
  NZB_ASSIGN_OR_RETURN(o.cert_file, tls.String("cert_file"));
  NZB_ASSIGN_OR_RETURN(o.key_file, tls.String("key_file"));
  NZB_ASSIGN_OR_RETURN(o.client_ca_file, tls.String("client_ca_file"));
  NZB_ASSIGN_OR_RETURN(o.require_client_cert, tls.Bool("require_client_cert"));
  if (o.cert_file.empty() != o.key_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(tls.path(), ": cert_file and key_file go together"));
  }
  return o;
}

absl::StatusOr<ClientTlsOptions> ReadClientTls(config::SectionReader& section, const std::string& key) {
  ClientTlsOptions o;
  if (!section.Has(key)) return o;
  NZB_ASSIGN_OR_RETURN(config::SectionReader tls, section.Child(key));
  o.enabled = true;
  NZB_ASSIGN_OR_RETURN(o.ca_file, tls.String("ca_file"));
  NZB_ASSIGN_OR_RETURN(o.cert_file, tls.String("cert_file"));
  NZB_ASSIGN_OR_RETURN(o.key_file, tls.String("key_file"));
  NZB_ASSIGN_OR_RETURN(o.server_name_override, tls.String("server_name_override"));
  return o;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const ServerTlsOptions& o) {
  if (o.cert_file.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl(o.require_client_cert
                                            ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                            : (o.client_ca_file.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                                                        : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY));
  NZB_ASSIGN_OR_RETURN(std::string cert, ReadFile(o.cert_file, "certificate"));
  NZB_ASSIGN_OR_RETURN(std::string key, ReadFile(o.key_file, "private key"));
  ssl.pem_key_cert_pairs.push_back({key, cert});
  if (!o.client_ca_file.empty()) {
    NZB_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadFile(o.client_ca_file, "client CA"));
  } else if (o.require_client_cert) {
    return absl::InvalidArgumentError("require_client_cert needs client_ca_file");
  }
  return grpc::SslServerCredentials(ssl);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& target, const ClientTlsOptions& o) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 64 << 20);
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (!o.enabled) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    if (!o.ca_file.empty()) {
      NZB_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadFile(o.ca_file, "CA"));
    }
    if (!o.cert_file.empty()) {
      NZB_ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadFile(o.cert_file, "client certificate"));
      NZB_ASSIGN_OR_RETURN(ssl.pem_private_key, ReadFile(o.key_file, "client key"));
    }
    if (!o.server_name_override.empty()) args.SetSslTargetNameOverride(o.server_name_override);
    creds = grpc::SslCredentials(ssl);
  }
  return grpc::CreateCustomChannel(target, creds, args);
}

}  // namespace nzbmesh
