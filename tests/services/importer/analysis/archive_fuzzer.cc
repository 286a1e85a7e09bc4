// Fuzzes the archive header parsers (RAR4, RAR5, 7z plain and LZMA-encoded
// headers), the LZMA decoder and the PAR2 packet scanner. The first input
// byte picks the target; the rest is given a valid signature (and for 7z a
// valid start header and CRC) so random inputs get past the first check.
#include <cstddef>
#include <cstdint>
#include <string>

#include "services/importer/analysis/archive.h"
#include "services/importer/analysis/archive_internal.h"
#include "services/importer/analysis/crc32.h"
#include "services/importer/analysis/lzma_decoder.h"
#include "services/importer/analysis/par2.h"

namespace {

using namespace nzbmesh::importer;

void MapBuffer(const std::string& bytes, bool verify_crcs = true) {
  std::vector<ArchiveVolume> volumes = {{"fuzz", static_cast<int64_t>(bytes.size())}};
  ByteReader reader = [&bytes](int, int64_t offset, int64_t length) -> absl::StatusOr<std::string> {
    return bytes.substr(offset, length);
  };
  ArchiveMapOptions options;
  options.max_header_bytes = 1 << 20;
  options.max_decoded_header_bytes = 1 << 20;
  options.verify_header_crcs = verify_crcs;
  absl::StatusOr<ArchiveMapping> m = MapArchive(volumes, reader, options);
  if (!m.ok()) return;
  for (const ArchiveMember& member : m->members) {
    if (member.rejection != ArchiveRejection::kNone) continue;
    int64_t total = 0;
    for (const ArchiveExtent& e : member.extents) {
      // Invariant: accepted extents stay inside the volume.
      if (e.volume_offset < 0 || e.length < 0 || e.volume_offset + e.length > volumes[0].size) {
        __builtin_trap();
      }
      total += e.length;
    }
    if (!member.is_directory && total != member.size) __builtin_trap();
  }
}

void Le(std::string* out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0:
      MapBuffer(std::string("Rar!\x1a\x07\x00", 7) + rest, /*verify_crcs=*/false);
      break;
    case 1:
      MapBuffer(std::string("Rar!\x1a\x07\x01\x00", 8) + rest, /*verify_crcs=*/false);
      break;
    case 2:
    case 3: {
      // 7z: start header pointing at `rest` as the end header; case 3 marks
      // it as an LZMA-encoded header to reach the decoder path.
      std::string header = rest;
      if (data[0] % 6 == 3 && !header.empty()) header[0] = 0x17;
      std::string start;
      Le(&start, 0, 8);
      Le(&start, header.size(), 8);
      Le(&start, Crc32(header), 4);
      std::string file("7z\xBC\xAF\x27\x1C\x00\x04", 8);
      Le(&file, Crc32(start), 4);
      file += start + header;
      MapBuffer(file);
      (void)archive_internal::Parse7zHeaderForFuzzing(rest, 1 << 20);
      break;
    }
    case 4: {
      if (rest.size() < 5) break;
      const uint64_t out_size = static_cast<uint8_t>(rest[1]) * 64u;
      (void)LzmaDecode(rest.substr(0, 5), rest.substr(5), out_size, 1 << 16);
      break;
    }
    default: {
      absl::StatusOr<Par2ParseResult> par2 = ParsePar2(std::string("PAR2\0PKT", 8) + rest);
      if (par2.ok()) {
        Par2NameIndex index;
        index.Add(*par2);
        (void)index.FindByContent(rest);
      }
    }
  }
  return 0;
}
