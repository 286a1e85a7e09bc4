// PAR2 packet parsing for name recovery. Obfuscated posts hide real file
// names; the PAR2 index lists every protected file with its name, size, MD5
// and the MD5 of its first 16 KiB, so the first 16 KiB of an obfuscated file
// (which the importer fetches anyway) identify it.
//
// Every packet's MD5 is verified (OpenSSL EVP); damaged packets are counted
// and skipped. Pure; thread-safe.
#ifndef NZBMESH_SERVICES_IMPORTER_ANALYSIS_PAR2_H_
#define NZBMESH_SERVICES_IMPORTER_ANALYSIS_PAR2_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nzbmesh::importer {

using Md5Digest = std::array<uint8_t, 16>;

Md5Digest Md5(absl::string_view data);
std::string Md5Hex(const Md5Digest& digest);

// PAR2 hashes the first 16 KiB of each file (the whole file when shorter).
inline constexpr int64_t kPar2HashPrefixBytes = 16384;

struct Par2FileDescription {
  Md5Digest recovery_set_id{};
  Md5Digest file_id{};
  Md5Digest md5{};      // Of the whole file.
  Md5Digest md5_16k{};  // Of the first min(16 KiB, length) bytes.
  int64_t length = 0;
  // The protected file's name as the poster had it (UTF-8; from the Unicode
  // filename packet when one exists). Not sanitised.
  std::string name;
};

struct Par2ParseResult {
  // One entry per file id, in first-seen order.
  std::vector<Par2FileDescription> files;
  int packets = 0;      // Packets whose MD5 verified.
  int bad_packets = 0;  // Packets found by magic whose length or MD5 was wrong.
};

// Scans `data` (a .par2 or .volNN+MM.par2 file, or any prefix of one) for
// packets. INVALID_ARGUMENT when not a single valid packet is found.
absl::StatusOr<Par2ParseResult> ParsePar2(absl::string_view data);

// md5_16k -> file descriptions, merged from any number of PAR2 files.
class Par2NameIndex {
 public:
  void Add(const Par2ParseResult& result);

  // `first_bytes` is the beginning of a file: its first 16 KiB, or all of it
  // when shorter (longer input is cut to 16 KiB). `size`, when known, picks
  // among files that share their first 16 KiB. nullptr when unknown.
  const Par2FileDescription* FindByContent(absl::string_view first_bytes,
                                           std::optional<int64_t> size = std::nullopt) const;
  const Par2FileDescription* FindByMd5_16k(const Md5Digest& md5_16k,
                                           std::optional<int64_t> size = std::nullopt) const;
  size_t size() const { return count_; }

 private:
  absl::flat_hash_map<std::string, std::vector<Par2FileDescription>> by_md5_16k_;
  size_t count_ = 0;
};

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_ANALYSIS_PAR2_H_
