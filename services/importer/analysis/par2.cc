#include "services/importer/analysis/par2.h"

#include <cstring>

#include <openssl/evp.h>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "services/importer/analysis/unicode.h"

namespace nzbmesh::importer {
namespace {

constexpr absl::string_view kMagic("PAR2\0PKT", 8);
constexpr absl::string_view kFileDescType("PAR 2.0\0FileDesc", 16);
constexpr absl::string_view kUnicodeNameType("PAR 2.0\0UniFileN", 16);
constexpr size_t kHeaderSize = 64;

uint64_t Le64(absl::string_view b, size_t at) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[at + i]);
  return v;
}

Md5Digest DigestAt(absl::string_view b, size_t at) {
  Md5Digest d;
  std::memcpy(d.data(), b.data() + at, 16);
  return d;
}

std::string Key(const Md5Digest& d) { return std::string(reinterpret_cast<const char*>(d.data()), 16); }


}  // namespace

Md5Digest Md5(absl::string_view data) {
  Md5Digest d{};
  unsigned int len = 0;
  // EVP_Digest with MD5 cannot fail for in-memory input short of OOM.
  EVP_Digest(data.data(), data.size(), d.data(), &len, EVP_md5(), nullptr);
  return d;
}

std::string Md5Hex(const Md5Digest& digest) {
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest.data()), 16));
}

absl::StatusOr<Par2ParseResult> ParsePar2(absl::string_view data) {
  Par2ParseResult result;
  absl::flat_hash_map<std::string, size_t> by_file_id;
  absl::flat_hash_map<std::string, std::string> unicode_names;
  size_t pos = 0;
  while (true) {
    pos = data.find(kMagic, pos);
    if (pos == absl::string_view::npos || data.size() - pos < kHeaderSize) break;
    const uint64_t length = Le64(data, pos + 8);
    if (length < kHeaderSize || length % 4 != 0 || length > data.size() - pos) {
      ++result.bad_packets;
      pos += 1;
      continue;
    }
    absl::string_view packet = data.substr(pos, length);
    if (Md5(packet.substr(32)) != DigestAt(packet, 16)) {
      ++result.bad_packets;
      pos += 1;
      continue;
    }
    ++result.packets;
    const absl::string_view type = packet.substr(48, 16);
    absl::string_view body = packet.substr(kHeaderSize);
    if (type == kFileDescType && body.size() >= 56) {
      Par2FileDescription desc;
      desc.recovery_set_id = DigestAt(packet, 32);
      desc.file_id = DigestAt(body, 0);
      desc.md5 = DigestAt(body, 16);
      desc.md5_16k = DigestAt(body, 32);
      const uint64_t len = Le64(body, 48);
      desc.length = len > static_cast<uint64_t>(INT64_MAX) ? -1 : static_cast<int64_t>(len);
      absl::string_view name = body.substr(56);
      const size_t nul = name.find('\0');
      desc.name = std::string(name.substr(0, nul));
      if (desc.length >= 0 && by_file_id.emplace(Key(desc.file_id), result.files.size()).second) {
        result.files.push_back(std::move(desc));
      }
    } else if (type == kUnicodeNameType && body.size() >= 16) {
      unicode_names.emplace(std::string(body.substr(0, 16)), Utf16LeToUtf8(body.substr(16)));
    }
    pos += length;
  }
  for (auto& [id, name] : unicode_names) {
    auto it = by_file_id.find(id);
    if (it != by_file_id.end() && !name.empty()) result.files[it->second].name = name;
  }
  if (result.packets == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("no valid PAR2 packet found in ", data.size(), " bytes (",
                     result.bad_packets, " damaged)"));
  }
  return result;
}

void Par2NameIndex::Add(const Par2ParseResult& result) {
  for (const Par2FileDescription& d : result.files) {
    std::vector<Par2FileDescription>& bucket = by_md5_16k_[Key(d.md5_16k)];
    bool dup = false;
    for (const Par2FileDescription& e : bucket) dup |= e.file_id == d.file_id;
    if (!dup) {
      bucket.push_back(d);
      ++count_;
    }
  }
}

const Par2FileDescription* Par2NameIndex::FindByContent(absl::string_view first_bytes,
                                                        std::optional<int64_t> size) const {
  return FindByMd5_16k(Md5(first_bytes.substr(0, kPar2HashPrefixBytes)), size);
}

const Par2FileDescription* Par2NameIndex::FindByMd5_16k(const Md5Digest& md5_16k,
                                                        std::optional<int64_t> size) const {
  auto it = by_md5_16k_.find(Key(md5_16k));
  if (it == by_md5_16k_.end()) return nullptr;
  for (const Par2FileDescription& d : it->second) {
    if (!size || d.length == *size) return &d;
  }
  return nullptr;
}

}  // namespace nzbmesh::importer
