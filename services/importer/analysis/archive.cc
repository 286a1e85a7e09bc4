#include "services/importer/analysis/archive.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"
#include "services/importer/analysis/archive_internal.h"
#include "services/importer/analysis/filenames.h"

namespace nzbmesh::importer {
namespace archive_internal {

// Corrupt archives travel as DATA_LOSS inside the mapper; MapArchive turns
// them into ArchiveRejection::kCorrupt unless the reader itself failed.
absl::Status Corrupt(absl::string_view what) { return absl::DataLossError(what); }

absl::StatusOr<std::string> CountingReader::Read(int volume, int64_t offset, int64_t length) {
  if (volume < 0 || volume >= volume_count() || offset < 0 || length < 0 ||
      offset > volumes_[volume].size || length > volumes_[volume].size - offset) {
    return Corrupt(absl::StrCat("read of ", length, " bytes at ", offset,
                                " lies outside volume ", volume));
  }
  ++read_calls_;
  bytes_read_ += length;
  absl::StatusOr<std::string> out = reader_(volume, offset, length);
  if (!out.ok()) {
    if (reader_failure_.ok()) reader_failure_ = out.status();
    return out.status();
  }
  if (static_cast<int64_t>(out->size()) != length) {
    absl::Status st = absl::DataLossError(
        absl::StrCat("reader returned ", out->size(), " bytes instead of ", length, " at offset ",
                     offset, " of volume ", volumes_[volume].name));
    if (reader_failure_.ok()) reader_failure_ = st;
    return st;
  }
  return out;
}

}  // namespace archive_internal

namespace {

using archive_internal::CountingReader;
using archive_internal::RarPart;
using archive_internal::RarVolumeScan;

int Precedence(ArchiveRejection r) {
  switch (r) {
    case ArchiveRejection::kUnsupportedEncrypted: return 4;
    case ArchiveRejection::kUnsupportedSolid: return 3;
    case ArchiveRejection::kUnsupportedCompressed: return 2;
    case ArchiveRejection::kCorrupt: return 1;
    case ArchiveRejection::kNone: return 0;
  }
  return 0;
}

// Orders RAR volumes by the numbers in their headers when every volume has a
// distinct one in [0, n); otherwise keeps the caller's order.
std::vector<int> RarOrder(const std::vector<RarVolumeScan>& scans) {
  const int n = static_cast<int>(scans.size());
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::vector<int> by_number(n, -1);
  for (int i = 0; i < n; ++i) {
    const auto& num = scans[i].volume_number;
    if (!num || *num < 0 || *num >= n || by_number[*num] != -1) return order;
    by_number[*num] = i;
  }
  return by_number;
}

// Stitches per-volume parts into members in volume order.
void StitchRar(const std::vector<RarVolumeScan>& scans, const std::vector<int>& order,
               ArchiveMapping* mapping) {
  bool open = false;  // The last member continues in the next volume.
  auto finish_corrupt = [&](std::string why) {
    ArchiveMember& m = mapping->members.back();
    m.rejection = ArchiveRejection::kCorrupt;
    m.rejection_detail = std::move(why);
  };
  for (int vol : order) {
    for (const RarPart& p : scans[vol].parts) {
      const bool continues = open && p.split_before && !mapping->members.empty() &&
                             mapping->members.back().raw_name == p.raw_name;
      if (!continues) {
        if (open) finish_corrupt("member ends before its last part (missing volume?)");
        ArchiveMember m;
        m.raw_name = p.raw_name;
        m.name = SanitizePath(p.raw_name);
        m.size = p.unpacked_size;
        m.mtime = p.mtime;
        m.is_directory = p.is_directory;
        m.is_symlink = p.is_symlink;
        mapping->members.push_back(std::move(m));
        if (p.split_before) {
          finish_corrupt("member starts with a continuation part (missing first volume?)");
        }
      }
      ArchiveMember& m = mapping->members.back();
      if (!p.split_after) m.crc32 = p.crc32;  // The last part carries the whole-file CRC.
      if (p.encrypted) {
        m.rejection = ArchiveRejection::kUnsupportedEncrypted;
        m.rejection_detail = "member data is encrypted; no password support";
      } else if (!p.stored && !p.is_directory && m.rejection == ArchiveRejection::kNone) {
        const bool solid = p.solid || scans[vol].solid;
        m.rejection = solid ? ArchiveRejection::kUnsupportedSolid
                            : ArchiveRejection::kUnsupportedCompressed;
        m.rejection_detail = absl::StrCat(p.method, solid ? " in a solid archive" : " (compressed)");
      }
      if (p.data_size > 0) {
        const int64_t file_offset =
            m.extents.empty() ? 0 : m.extents.back().file_offset + m.extents.back().length;
        m.extents.push_back({vol, p.data_offset, file_offset, p.data_size});
      }
      open = p.split_after;
    }
  }
  if (open && !mapping->members.empty()) {
    finish_corrupt("member continues beyond the last volume (missing volume?)");
  }
  for (ArchiveMember& m : mapping->members) {
    if (m.rejection != ArchiveRejection::kNone) {
      m.extents.clear();  // Extents are only meaningful for streamable members.
      continue;
    }
    int64_t total = 0;
    for (const ArchiveExtent& e : m.extents) total += e.length;
    if (!m.is_directory && total != m.size) {
      m.rejection = ArchiveRejection::kCorrupt;
      m.rejection_detail = absl::StrCat("stored member has ", total, " data bytes but claims ",
                                        m.size);
      m.extents.clear();
    }
  }
}

void Classify(const ArchiveMapOptions& options, ArchiveMapping* mapping) {
  if (mapping->rejection != ArchiveRejection::kNone) return;
  ArchiveRejection worst = ArchiveRejection::kNone;
  std::string detail;
  int accepted = 0;
  for (const ArchiveMember& m : mapping->members) {
    if (m.is_directory) continue;
    if (m.rejection == ArchiveRejection::kNone) {
      ++accepted;
    } else if (Precedence(m.rejection) > Precedence(worst)) {
      worst = m.rejection;
      detail = absl::StrCat(m.raw_name, ": ", m.rejection_detail);
    }
  }
  if (worst == ArchiveRejection::kNone) return;
  if (options.accept_partial && accepted > 0) return;
  mapping->rejection = worst;
  mapping->rejection_detail = std::move(detail);
}

}  // namespace

absl::string_view ArchiveFormatName(ArchiveFormat format) {
  switch (format) {
    case ArchiveFormat::kRar4: return "rar4";
    case ArchiveFormat::kRar5: return "rar5";
    case ArchiveFormat::kSevenZip: return "7z";
    case ArchiveFormat::kUnknown: break;
  }
  return "unknown";
}

absl::string_view ArchiveRejectionName(ArchiveRejection reason) {
  switch (reason) {
    case ArchiveRejection::kUnsupportedCompressed: return "compressed";
    case ArchiveRejection::kUnsupportedEncrypted: return "encrypted";
    case ArchiveRejection::kUnsupportedSolid: return "solid";
    case ArchiveRejection::kCorrupt: return "corrupt";
    case ArchiveRejection::kNone: break;
  }
  return "none";
}

ArchiveFormat DetectArchiveFormat(absl::string_view b) {
  if (b.substr(0, 8) == absl::string_view("Rar!\x1a\x07\x01\x00", 8)) return ArchiveFormat::kRar5;
  if (b.substr(0, 7) == absl::string_view("Rar!\x1a\x07\x00", 7)) return ArchiveFormat::kRar4;
  if (b.substr(0, 6) == absl::string_view("7z\xBC\xAF\x27\x1C", 6)) return ArchiveFormat::kSevenZip;
  return ArchiveFormat::kUnknown;
}

absl::StatusOr<ArchiveMapping> MapArchive(const std::vector<ArchiveVolume>& volumes,
                                          const ByteReader& reader,
                                          const ArchiveMapOptions& options) {
  if (volumes.empty()) return absl::InvalidArgumentError("MapArchive needs at least one volume");
  for (const ArchiveVolume& v : volumes) {
    if (v.size < 0) {
      return absl::InvalidArgumentError(absl::StrCat("volume ", v.name, " has a negative size"));
    }
  }
  CountingReader counting(volumes, reader);
  ArchiveMapping mapping;
  const int n = static_cast<int>(volumes.size());

  // Find the format from the first volume that has a signature (obfuscated
  // 7z continuation volumes have none, so the first may not be first).
  int first = -1;
  for (int i = 0; i < n && first < 0; ++i) {
    if (volumes[i].size < 6) continue;
    absl::StatusOr<std::string> head = counting.Read(i, 0, std::min<int64_t>(8, volumes[i].size));
    if (!head.ok()) return head.status();
    mapping.format = DetectArchiveFormat(*head);
    if (mapping.format != ArchiveFormat::kUnknown) first = i;
  }
  if (first < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("no volume of the set starting with ", volumes[0].name,
                     " has a RAR4, RAR5 or 7z signature"));
  }

  absl::Status status;
  if (mapping.format == ArchiveFormat::kSevenZip) {
    // The volume with the signature goes first; the rest keep their order,
    // except that a unique shorter volume (the tail) goes last.
    std::vector<int> order = {first};
    int tail = -1;
    if (n > 2) {
      int64_t max_size = 0;
      for (const ArchiveVolume& v : volumes) max_size = std::max(max_size, v.size);
      int shorter = 0;
      for (int i = 0; i < n; ++i) {
        if (i != first && volumes[i].size < max_size) {
          ++shorter;
          tail = i;
        }
      }
      if (shorter != 1) tail = -1;
    }
    for (int i = 0; i < n; ++i) {
      if (i != first && i != tail) order.push_back(i);
    }
    if (tail >= 0) order.push_back(tail);
    mapping.volume_order = order;
    status = archive_internal::Map7z(counting, order, options, &mapping);
  } else {
    std::vector<RarVolumeScan> scans;
    for (int i = 0; i < n && status.ok(); ++i) {
      absl::StatusOr<RarVolumeScan> scan =
          mapping.format == ArchiveFormat::kRar5
              ? archive_internal::ScanRar5Volume(counting, i, options)
              : archive_internal::ScanRar4Volume(counting, i, options);
      if (!scan.ok()) {
        status = absl::Status(scan.status().code(),
                              absl::StrCat(volumes[i].name, ": ", scan.status().message()));
        break;
      }
      if (scan->headers_encrypted) {
        mapping.headers_encrypted = true;
        mapping.rejection = ArchiveRejection::kUnsupportedEncrypted;
        mapping.rejection_detail = absl::StrCat(
            ArchiveFormatName(mapping.format),
            " headers are encrypted (archive made with -hp); no password support");
        break;
      }
      mapping.solid |= scan->solid;
      scans.push_back(*std::move(scan));
    }
    if (status.ok() && !mapping.headers_encrypted) {
      mapping.volume_order = RarOrder(scans);
      StitchRar(scans, mapping.volume_order, &mapping);
    }
  }
  mapping.bytes_read = counting.bytes_read();
  mapping.read_calls = counting.read_calls();
  if (!status.ok()) {
    if (!counting.reader_failure().ok()) return counting.reader_failure();
    mapping.members.clear();
    mapping.rejection = ArchiveRejection::kCorrupt;
    mapping.rejection_detail = std::string(status.message());
    return mapping;
  }
  Classify(options, &mapping);
  return mapping;
}

NestedVolume MakeNestedVolume(const ArchiveMember& outer_member, const ByteReader& outer_reader) {
  NestedVolume nested;
  nested.volume = {outer_member.name, outer_member.size};
  std::vector<ArchiveExtent> extents = outer_member.extents;
  nested.reader = [extents, outer_reader](int, int64_t offset,
                                          int64_t length) -> absl::StatusOr<std::string> {
    std::string out;
    for (const ArchiveExtent& e : extents) {
      if (length == 0) break;
      if (offset >= e.file_offset + e.length || offset < e.file_offset) continue;
      const int64_t in_extent = offset - e.file_offset;
      const int64_t n = std::min(length, e.length - in_extent);
      NZB_ASSIGN_OR_RETURN(std::string part,
                           outer_reader(e.volume, e.volume_offset + in_extent, n));
      out += part;
      offset += n;
      length -= n;
    }
    if (length != 0) return absl::OutOfRangeError("read past the end of the nested archive");
    return out;
  };
  return nested;
}

std::vector<ArchiveExtent> ComposeExtents(const std::vector<ArchiveExtent>& inner,
                                          const ArchiveMember& outer_member) {
  std::vector<ArchiveExtent> out;
  for (const ArchiveExtent& in : inner) {
    int64_t offset = in.volume_offset;  // Offset within the outer member.
    int64_t length = in.length;
    int64_t file_offset = in.file_offset;
    for (const ArchiveExtent& e : outer_member.extents) {
      if (length == 0) break;
      if (offset >= e.file_offset + e.length || offset < e.file_offset) continue;
      const int64_t in_extent = offset - e.file_offset;
      const int64_t n = std::min(length, e.length - in_extent);
      out.push_back({e.volume, e.volume_offset + in_extent, file_offset, n});
      offset += n;
      length -= n;
      file_offset += n;
    }
  }
  return out;
}

NestedSet MakeNestedSet(const std::vector<ArchiveMember>& outer_members, const ByteReader& outer_reader) {
  NestedSet set;
  std::vector<ByteReader> readers;
  for (const ArchiveMember& m : outer_members) {
    NestedVolume v = MakeNestedVolume(m, outer_reader);
    set.volumes.push_back(v.volume);
    readers.push_back(std::move(v.reader));
  }
  set.reader = [readers = std::move(readers)](int volume, int64_t offset,
                                              int64_t length) -> absl::StatusOr<std::string> {
    if (volume < 0 || volume >= static_cast<int>(readers.size())) {
      return absl::OutOfRangeError("no such volume in the nested set");
    }
    return readers[volume](0, offset, length);
  };
  return set;
}

std::vector<ArchiveExtent> ComposeSetExtents(const std::vector<ArchiveExtent>& inner,
                                             const std::vector<ArchiveMember>& outer_members) {
  std::vector<ArchiveExtent> out;
  for (const ArchiveExtent& e : inner) {
    if (e.volume < 0 || e.volume >= static_cast<int>(outer_members.size())) continue;
    ArchiveExtent in_member = e;
    in_member.volume = 0;
    for (const ArchiveExtent& c : ComposeExtents({in_member}, outer_members[e.volume])) out.push_back(c);
  }
  return out;
}

}  // namespace nzbmesh::importer
