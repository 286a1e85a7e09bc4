// RAR4 (RAR 1.5-4.x block format) and RAR5 header walkers. Each volume is
// scanned on its own into RarParts; archive.cc stitches parts across volumes.
#include <algorithm>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "common/status/status_macros.h"
#include "services/importer/analysis/archive_internal.h"
#include "services/importer/analysis/crc32.h"
#include "services/importer/analysis/unicode.h"

namespace nzbmesh::importer::archive_internal {
namespace {

constexpr absl::string_view kRar4Signature("Rar!\x1a\x07\x00", 7);
constexpr absl::string_view kRar5Signature("Rar!\x1a\x07\x01\x00", 8);

uint16_t Le16(absl::string_view b, size_t at) {
  return static_cast<uint16_t>(static_cast<uint8_t>(b[at]) |
                               (static_cast<uint8_t>(b[at + 1]) << 8));
}
uint32_t Le32(absl::string_view b, size_t at) {
  return static_cast<uint32_t>(Le16(b, at)) | (static_cast<uint32_t>(Le16(b, at + 2)) << 16);
}



// RAR 3.x Unicode name encoding (file header flag 0x200): `name` is the
// 8-bit name, `enc` the compressed UTF-16 that follows its NUL.
std::string DecodeRar4UnicodeName(absl::string_view name, absl::string_view enc) {
  std::vector<uint16_t> dec;
  const size_t max = 1024;
  if (enc.empty()) return std::string(name);
  size_t pos = 0;
  const uint8_t high = static_cast<uint8_t>(enc[pos++]);
  unsigned flags = 0;
  int flag_bits = 0;
  auto byte = [&](size_t at) -> uint8_t { return at < enc.size() ? static_cast<uint8_t>(enc[at]) : 0; };
  while (pos < enc.size() && dec.size() < max) {
    if (flag_bits == 0) {
      flags = byte(pos++);
      flag_bits = 8;
    }
    switch (flags >> 6) {
      case 0:
        dec.push_back(byte(pos++));
        break;
      case 1:
        dec.push_back(static_cast<uint16_t>(byte(pos++) + (high << 8)));
        break;
      case 2:
        dec.push_back(static_cast<uint16_t>(byte(pos) + (byte(pos + 1) << 8)));
        pos += 2;
        break;
      default: {
        unsigned length = byte(pos++);
        if (length & 0x80) {
          const uint8_t correction = byte(pos++);
          for (length = (length & 0x7F) + 2; length > 0 && dec.size() < max; --length) {
            const uint8_t c = dec.size() < name.size() ? static_cast<uint8_t>(name[dec.size()]) : 0;
            dec.push_back(static_cast<uint16_t>(((c + correction) & 0xFF) + (high << 8)));
          }
        } else {
          for (length += 2; length > 0 && dec.size() < max; --length) {
            const uint8_t c = dec.size() < name.size() ? static_cast<uint8_t>(name[dec.size()]) : 0;
            dec.push_back(c);
          }
        }
        break;
      }
    }
    flags = (flags << 2) & 0xFF;
    flag_bits -= 2;
  }
  return Utf16ToUtf8(dec);
}

std::optional<absl::Time> DosTime(uint32_t t) {
  if (t == 0) return std::nullopt;
  const int sec = (t & 0x1F) * 2;
  const int min = (t >> 5) & 0x3F;
  const int hour = (t >> 11) & 0x1F;
  const int day = (t >> 16) & 0x1F;
  const int mon = (t >> 21) & 0x0F;
  const int year = 1980 + static_cast<int>((t >> 25) & 0x7F);
  if (mon < 1 || mon > 12 || day < 1) return std::nullopt;
  // DOS times are local time of the packer; UTC is the best guess.
  return absl::FromCivil(absl::CivilSecond(year, mon, day, hour, min, sec), absl::UTCTimeZone());
}

// Reads the signature; `sig` must be at the start of the volume (SFX
// archives are not supported).
absl::Status CheckSignature(CountingReader& reader, int volume, absl::string_view sig) {
  if (reader.volume_size(volume) < static_cast<int64_t>(sig.size())) {
    return Corrupt("volume is shorter than the RAR signature");
  }
  NZB_ASSIGN_OR_RETURN(std::string head, reader.Read(volume, 0, sig.size()));
  if (head != sig) return Corrupt("volume does not start with the expected RAR signature");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RarVolumeScan> ScanRar4Volume(CountingReader& reader, int volume,
                                             const ArchiveMapOptions& options) {
  RarVolumeScan scan;
  scan.format = ArchiveFormat::kRar4;
  NZB_RETURN_IF_ERROR(CheckSignature(reader, volume, kRar4Signature));
  const int64_t size = reader.volume_size(volume);
  int64_t pos = kRar4Signature.size();
  for (int n = 0;; ++n) {
    if (options.max_headers_per_volume > 0 && n >= options.max_headers_per_volume) {
      return Corrupt("too many RAR4 headers in one volume");
    }
    if (pos == size) break;  // RAR 2.x volumes end without an end block.
    if (pos + 7 > size) return Corrupt(absl::StrCat("RAR4 header truncated at offset ", pos));
    NZB_ASSIGN_OR_RETURN(std::string base, reader.Read(volume, pos, 7));
    if (base.size() != 7) return Corrupt("short read");  // Reader contract; also quiets GCC.
    const uint16_t head_crc = Le16(base, 0);
    const uint8_t type = static_cast<uint8_t>(base[2]);
    const uint16_t flags = Le16(base, 3);
    const uint16_t head_size = Le16(base, 5);
    if (head_size < 7 || pos + head_size > size) {
      return Corrupt(absl::StrCat("RAR4 header at offset ", pos, " has a bad size"));
    }
    std::string header = base;
    if (head_size > 7) {
      NZB_ASSIGN_OR_RETURN(std::string rest, reader.Read(volume, pos + 7, head_size - 7));
      header += rest;
    }
    if (options.verify_header_crcs &&
        (Crc32(absl::string_view(header).substr(2)) & 0xFFFF) != head_crc) {
      return Corrupt(absl::StrFormat("RAR4 header CRC mismatch at offset %d (type 0x%02x)", pos,
                                     type));
    }
    int64_t add_size = 0;
    if ((flags & 0x8000) || type == 0x74 || type == 0x7a) {
      if (head_size < 11) return Corrupt("RAR4 long block header is too short");
      add_size = Le32(header, 7);
    }
    if (type == 0x73) {  // Main archive header.
      scan.is_volume = flags & 0x0001;
      scan.solid = flags & 0x0008;
      if (flags & 0x0080) {
        // -hp: every header after this one is encrypted.
        scan.headers_encrypted = true;
        return scan;
      }
    } else if (type == 0x74 || type == 0x7a) {  // File or service header.
      if (head_size < 32) return Corrupt("RAR4 file header is too short");
      const uint16_t name_size = Le16(header, 26);
      size_t name_at = 32;
      int64_t pack = add_size;
      int64_t unpacked = Le32(header, 11);
      if (flags & 0x0100) {  // LHD_LARGE: 64-bit sizes.
        if (head_size < 40) return Corrupt("RAR4 large file header is too short");
        pack |= static_cast<int64_t>(Le32(header, 32)) << 32;
        unpacked |= static_cast<int64_t>(Le32(header, 36)) << 32;
        name_at = 40;
      }
      if (name_at + name_size > head_size) return Corrupt("RAR4 file name overruns its header");
      if (pack < 0 || pos + head_size + pack > size) {
        return Corrupt(absl::StrCat("RAR4 data area at offset ", pos, " runs past the volume"));
      }
      add_size = pack;
      if (type == 0x74) {
        RarPart part;
        absl::string_view raw = absl::string_view(header).substr(name_at, name_size);
        if (flags & 0x0200) {
          const size_t nul = raw.find('\0');
          part.raw_name = nul == absl::string_view::npos
                              ? std::string(raw)  // Already UTF-8.
                              : DecodeRar4UnicodeName(raw.substr(0, nul), raw.substr(nul + 1));
        } else {
          part.raw_name = std::string(raw);  // OEM code page; sanitising keeps it safe.
        }
        std::replace(part.raw_name.begin(), part.raw_name.end(), '\\', '/');
        const uint8_t host_os = static_cast<uint8_t>(header[15]);
        const uint8_t method = static_cast<uint8_t>(header[25]);
        const uint32_t attr = Le32(header, 28);
        part.unpacked_size = unpacked;
        part.data_offset = pos + head_size;
        part.data_size = pack;
        part.split_before = flags & 0x0001;
        part.split_after = flags & 0x0002;
        part.encrypted = flags & 0x0004;
        part.solid = flags & 0x0010;
        part.is_directory = (flags & 0x00E0) == 0x00E0;
        part.is_symlink = host_os == 3 && (attr & 0xF000) == 0xA000;
        part.stored = method == 0x30;
        part.method = absl::StrFormat("RAR4 method 0x%02x", method);
        part.crc32 = Le32(header, 16);
        part.mtime = DosTime(Le32(header, 20));
        scan.parts.push_back(std::move(part));
      }
    } else if (type == 0x7b) {  // End of archive.
      if ((flags & 0x0008) && head_size >= 7 + ((flags & 0x0002) ? 4 : 0) + 2) {
        scan.volume_number = Le16(header, 7 + ((flags & 0x0002) ? 4 : 0));
      }
      break;
    }
    pos += head_size + add_size;
    if (pos > size) return Corrupt("RAR4 block runs past the end of the volume");
  }
  return scan;
}

namespace {

// RAR5 variable-length integer: 7 bits per byte, low bits first.
bool ReadVint(absl::string_view b, size_t* at, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (*at >= b.size()) return false;
    const uint8_t c = static_cast<uint8_t>(b[(*at)++]);
    if (shift == 63 && (c & 0x7E)) return false;
    v |= static_cast<uint64_t>(c & 0x7F) << shift;
    if (!(c & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<RarVolumeScan> ScanRar5Volume(CountingReader& reader, int volume,
                                             const ArchiveMapOptions& options) {
  RarVolumeScan scan;
  scan.format = ArchiveFormat::kRar5;
  NZB_RETURN_IF_ERROR(CheckSignature(reader, volume, kRar5Signature));
  const int64_t size = reader.volume_size(volume);
  int64_t pos = kRar5Signature.size();
  const auto bad = [&](absl::string_view what) {
    return Corrupt(absl::StrCat("RAR5 header at offset ", pos, ": ", what));
  };
  for (int n = 0;; ++n) {
    if (options.max_headers_per_volume > 0 && n >= options.max_headers_per_volume) {
      return Corrupt("too many RAR5 headers in one volume");
    }
    if (pos == size) break;
    if (pos + 5 > size) return bad("truncated");
    NZB_ASSIGN_OR_RETURN(std::string prefix,
                         reader.Read(volume, pos, std::min<int64_t>(size - pos, 14)));
    size_t at = 4;
    uint64_t header_size = 0;
    if (!ReadVint(prefix, &at, &header_size) || at > 7) return bad("bad header size");
    const int64_t total = static_cast<int64_t>(at) + static_cast<int64_t>(header_size);
    if (header_size == 0 || header_size > static_cast<uint64_t>(options.max_header_bytes) ||
        pos + total > size) {
      return bad("header size out of range");
    }
    std::string header = prefix.substr(0, std::min<size_t>(prefix.size(), total));
    if (static_cast<int64_t>(header.size()) < total) {
      NZB_ASSIGN_OR_RETURN(std::string rest,
                           reader.Read(volume, pos + header.size(), total - header.size()));
      header += rest;
    }
    if (options.verify_header_crcs && Crc32(absl::string_view(header).substr(4)) != Le32(header, 0)) {
      return bad("CRC mismatch");
    }
    uint64_t type = 0, flags = 0, extra_size = 0, data_size = 0;
    if (!ReadVint(header, &at, &type) || !ReadVint(header, &at, &flags)) return bad("truncated");
    if ((flags & 0x1) && !ReadVint(header, &at, &extra_size)) return bad("truncated");
    if ((flags & 0x2) && !ReadVint(header, &at, &data_size)) return bad("truncated");
    if (extra_size > header.size() - at) return bad("extra area overruns the header");
    if (data_size > static_cast<uint64_t>(size - pos - total)) {
      return bad("data area runs past the volume");
    }
    const size_t extra_at = header.size() - extra_size;
    if (type == 1) {  // Main archive header.
      uint64_t arc_flags = 0, vol = 0;
      if (!ReadVint(header, &at, &arc_flags)) return bad("truncated");
      scan.is_volume = arc_flags & 0x1;
      scan.solid = arc_flags & 0x4;
      if (arc_flags & 0x2) {
        if (!ReadVint(header, &at, &vol) || vol > 1000000) return bad("bad volume number");
        scan.volume_number = static_cast<int>(vol);
      } else if (scan.is_volume) {
        scan.volume_number = 0;  // The first volume carries no number.
      }
    } else if (type == 2) {  // File header.
      uint64_t file_flags = 0, unpacked = 0, attr = 0, comp = 0, host = 0, name_len = 0;
      std::optional<uint32_t> mtime, crc;
      if (!ReadVint(header, &at, &file_flags) || !ReadVint(header, &at, &unpacked) ||
          !ReadVint(header, &at, &attr)) {
        return bad("truncated");
      }
      if (file_flags & 0x2) {
        if (at + 4 > extra_at) return bad("truncated");
        mtime = Le32(header, at);
        at += 4;
      }
      if (file_flags & 0x4) {
        if (at + 4 > extra_at) return bad("truncated");
        crc = Le32(header, at);
        at += 4;
      }
      if (!ReadVint(header, &at, &comp) || !ReadVint(header, &at, &host) ||
          !ReadVint(header, &at, &name_len) || name_len > extra_at - std::min(at, extra_at)) {
        return bad("truncated");
      }
      RarPart part;
      part.raw_name = header.substr(at, name_len);
      if (unpacked > (uint64_t{1} << 62)) return bad("unpacked size out of range");
      part.unpacked_size = static_cast<int64_t>(unpacked);
      part.data_offset = pos + total;
      part.data_size = static_cast<int64_t>(data_size);
      part.split_before = flags & 0x08;
      part.split_after = flags & 0x10;
      part.is_directory = file_flags & 0x1;
      part.solid = comp & 0x40;
      const unsigned method = (comp >> 7) & 0x7;
      part.stored = method == 0;
      part.method = absl::StrCat("RAR5 method ", method);
      part.is_symlink = host == 1 && (attr & 0xF000) == 0xA000;
      part.crc32 = crc;
      if (mtime) part.mtime = absl::FromUnixSeconds(*mtime);
      // Extra records: size, type, data.
      size_t e = extra_at;
      while (e < header.size()) {
        uint64_t rec_size = 0, rec_type = 0;
        if (!ReadVint(header, &e, &rec_size) || rec_size > header.size() - e) {
          return bad("bad extra record");
        }
        const size_t rec_end = e + rec_size;
        if (!ReadVint(header, &e, &rec_type) || e > rec_end) return bad("bad extra record");
        if (rec_type == 0x01) part.encrypted = true;   // File encryption record.
        if (rec_type == 0x05) part.is_symlink = true;  // Redirection (link).
        e = rec_end;
      }
      scan.parts.push_back(std::move(part));
    } else if (type == 4) {  // Archive encryption header: all headers encrypted.
      scan.headers_encrypted = true;
      return scan;
    } else if (type == 5) {  // End of archive.
      break;
    }
    pos += total + static_cast<int64_t>(data_size);
  }
  return scan;
}

absl::StatusOr<RarVolumeScan> ScanRarBufferForFuzzing(absl::string_view bytes) {
  std::vector<ArchiveVolume> volumes = {{"fuzz", static_cast<int64_t>(bytes.size())}};
  ByteReader reader = [bytes](int, int64_t offset, int64_t length) -> absl::StatusOr<std::string> {
    return std::string(bytes.substr(offset, length));
  };
  CountingReader counting(volumes, reader);
  if (bytes.substr(0, 8) == kRar5Signature) return ScanRar5Volume(counting, 0, {});
  return ScanRar4Volume(counting, 0, {});
}

}  // namespace nzbmesh::importer::archive_internal
