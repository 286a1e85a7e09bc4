// Helpers for tests that read tests/testdata/archives through Bazel runfiles.
#ifndef NZBMESH_TESTS_SERVICES_IMPORTER_ANALYSIS_TEST_FIXTURES_H_
#define NZBMESH_TESTS_SERVICES_IMPORTER_ANALYSIS_TEST_FIXTURES_H_

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include "absl/strings/string_view.h"

#include <openssl/evp.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace nzbmesh::testing {

// Absolute path of tests/testdata/archives in the runfiles tree.
inline std::string ArchivesDir() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/", workspace ? workspace : "nzbmesh",
                      "/tests/testdata/archives");
}

inline std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), len));
}

}  // namespace nzbmesh::testing

#endif  // NZBMESH_TESTS_SERVICES_IMPORTER_ANALYSIS_TEST_FIXTURES_H_
