// A throwaway self-signed certificate for TLS tests, generated with the
// OpenSSL API at test start (hermetic: no openssl binary, no checked-in keys).
#ifndef NZBMESH_TESTS_FAKES_NNTP_SERVER_TEST_CERT_H_
#define NZBMESH_TESTS_FAKES_NNTP_SERVER_TEST_CERT_H_

#include <string>

#include "absl/status/statusor.h"

namespace nzbmesh::testing {

struct TestCert {
  std::string cert_file;  // PEM certificate; also usable as the client's CA file
  std::string key_file;   // PEM private key (EC P-256)
};

// Writes "<dir>/<basename>.crt" and ".key": a self-signed CA certificate for
// CN=localhost with subjectAltName DNS:localhost, IP:127.0.0.1, valid for a day.
absl::StatusOr<TestCert> GenerateSelfSignedCert(const std::string& dir,
                                                const std::string& basename = "nntp-test");

}  // namespace nzbmesh::testing

#endif  // NZBMESH_TESTS_FAKES_NNTP_SERVER_TEST_CERT_H_
