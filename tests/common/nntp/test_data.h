// Helpers shared by the NNTP client tests: deterministic random payloads and
// SHA-256.
#ifndef NZBMESH_TESTS_COMMON_NNTP_TEST_DATA_H_
#define NZBMESH_TESTS_COMMON_NNTP_TEST_DATA_H_

#include <openssl/evp.h>

#include <cstdint>
#include <random>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/string_view.h"

namespace nzbmesh::nntp::testing {

// `size` pseudo-random bytes (all 256 values, so yEnc escapes are exercised).
inline std::string RandomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t v = rng();
    for (int b = 0; b < 8; ++b) out[i + b] = static_cast<char>(v >> (8 * b));
  }
  for (; i < size; ++i) out[i] = static_cast<char>(rng());
  return out;
}

inline std::string Sha256Hex(absl::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(md), len));
}

}  // namespace nzbmesh::nntp::testing

#endif  // NZBMESH_TESTS_COMMON_NNTP_TEST_DATA_H_
