// Maps the members of a RAR4, RAR5 or 7z volume set to byte extents of the
// volumes, so that members stored without compression can be streamed
// straight from Usenet segments without extracting anything.
//
// Only headers are read, through a caller-supplied ByteReader (in production
// it fetches the segments that cover the range through the broker; in tests
// it reads files). Member data is never requested: RAR headers are walked by
// seeking over data areas, and 7z needs its signature header plus the end
// header (and, when 7-Zip compressed that header with LZMA, the packed header
// bytes, which the mapper inflates with a bounded decoder).
//
// Pure logic apart from the reader: no threads, no clocks. The reader is
// called sequentially from the calling thread.
#ifndef NZBMESH_SERVICES_IMPORTER_ANALYSIS_ARCHIVE_H_
#define NZBMESH_SERVICES_IMPORTER_ANALYSIS_ARCHIVE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace nzbmesh::importer {

enum class ArchiveFormat { kUnknown, kRar4, kRar5, kSevenZip };

// Why a member (or a whole set) cannot be streamed. kNone means it can.
enum class ArchiveRejection {
  kNone,
  kUnsupportedCompressed,  // Member data is compressed (any RAR method but store; 7z coders but Copy).
  kUnsupportedEncrypted,   // Member data, or the archive headers, are encrypted.
  kUnsupportedSolid,       // Solid archive: a member's bytes depend on earlier members.
  kCorrupt,                // Headers fail their CRC, are truncated, or contradict each other.
};

absl::string_view ArchiveFormatName(ArchiveFormat format);
// Stable lower-case label ("compressed", "encrypted", "solid", "corrupt",
// "none"), usable as a metric label or a job failure reason.
absl::string_view ArchiveRejectionName(ArchiveRejection reason);

// One volume of a set, as the caller knows it. `name` is only used in
// messages and as the fallback order; the size must be exact (from the yEnc
// headers or PAR2) because 7z volumes are addressed as one byte stream.
struct ArchiveVolume {
  std::string name;
  int64_t size = 0;
};

// Reads `length` bytes at `offset` of volume `volume` (an index into the
// volumes passed to MapArchive). Must return exactly `length` bytes or an
// error; errors (NOT_FOUND for missing articles, UNAVAILABLE, ...) are passed
// through to the caller of MapArchive unchanged.
using ByteReader =
    std::function<absl::StatusOr<std::string>(int volume, int64_t offset, int64_t length)>;

// `length` bytes of a member at `file_offset` within the member live at
// `volume_offset` of volume `volume` (index into the input volumes).
struct ArchiveExtent {
  int volume = 0;
  int64_t volume_offset = 0;
  int64_t file_offset = 0;
  int64_t length = 0;

  friend bool operator==(const ArchiveExtent&, const ArchiveExtent&) = default;
};

struct ArchiveMember {
  // Path inside the archive with '/' separators, each component sanitised by
  // SanitizeFilename (no "..", no control characters). Unicode is kept.
  std::string name;
  // Path as stored in the archive (after RAR4 Unicode decoding), for messages.
  std::string raw_name;
  int64_t size = 0;
  std::optional<absl::Time> mtime;
  // CRC32 of the whole member as recorded by the archiver, when it has one
  // (RAR5 encrypted members carry an HMAC-tweaked value; do not compare it).
  std::optional<uint32_t> crc32;
  bool is_directory = false;
  bool is_symlink = false;
  // Extents in file order; they cover [0, size) exactly when `rejection` is
  // kNone. Empty for directories and empty files.
  std::vector<ArchiveExtent> extents;
  ArchiveRejection rejection = ArchiveRejection::kNone;
  std::string rejection_detail;  // Human-readable, e.g. "RAR4 method 0x33 (compressed)".
};

struct ArchiveMapping {
  ArchiveFormat format = ArchiveFormat::kUnknown;
  // Set-level verdict: kNone when every non-directory member is streamable
  // (or, with Options::accept_partial, when at least one is). Otherwise the
  // reason that applies to the set, by precedence encrypted > solid >
  // compressed > corrupt.
  ArchiveRejection rejection = ArchiveRejection::kNone;
  std::string rejection_detail;
  bool headers_encrypted = false;
  bool solid = false;
  // The order in which the volumes were stitched (indices into the input):
  // by the volume numbers found in the headers (RAR5 main header, RAR4 end
  // block) when every volume has one, otherwise the input order. Obfuscated
  // names therefore do not matter for RAR sets whose headers number volumes.
  std::vector<int> volume_order;
  std::vector<ArchiveMember> members;
  // Bytes requested from the reader, to check that only headers were read.
  int64_t bytes_read = 0;
  int64_t read_calls = 0;
};

struct ArchiveMapOptions {
  // Give up on a volume after this many headers (guards against hostile
  // archives made of millions of empty headers). 0 means no limit.
  int max_headers_per_volume = 100000;
  // Largest single header the mapper will read, in bytes. RAR headers are
  // normally < 1 KiB; 7z end headers grow with the member count.
  int64_t max_header_bytes = 16 << 20;
  // Cap on the inflated size of an LZMA-packed 7z header.
  int64_t max_decoded_header_bytes = 64 << 20;
  // When true, a set with some streamable members is accepted and only the
  // others carry a rejection (e.g. a RAR4 with plain and encrypted members).
  bool accept_partial = false;
  // Check RAR4/RAR5/7z header CRCs. Only fuzzers turn this off, so that
  // random input reaches the field parsers behind the checksum.
  bool verify_header_crcs = true;
};

// Recognises an archive volume by its first bytes (at least 8; 6 suffice for
// 7z). Does not recognise 7z continuation volumes (.7z.002 ...): they have no
// signature.
ArchiveFormat DetectArchiveFormat(absl::string_view first_bytes);

// Maps the set. `volumes` are in the order the caller believes (sorted by
// name); for RAR the headers' volume numbers take precedence when present.
// The returned mapping's rejection classifies unsupported or corrupt sets;
// the Status is not OK only when the reader fails (its error is returned) or
// the input is unusable (INVALID_ARGUMENT: no volumes, negative size,
// first volume not a recognised archive).
absl::StatusOr<ArchiveMapping> MapArchive(const std::vector<ArchiveVolume>& volumes,
                                          const ByteReader& reader,
                                          const ArchiveMapOptions& options = {});

// Nested archives (one level deep): a member of an outer mapping that is
// itself an archive volume (e.g. a stored .rar inside a stored .rar) can be
// mapped by passing its extents here. Returns volumes and a reader for
// MapArchive whose single volume is the inner file; the extents of the inner
// mapping then refer to inner-file offsets, and ComposeExtents turns them into
// extents of the outer volumes.
struct NestedVolume {
  ArchiveVolume volume;
  ByteReader reader;
};
NestedVolume MakeNestedVolume(const ArchiveMember& outer_member, const ByteReader& outer_reader);
// Rewrites `inner` extents (volume 0 = the outer member) into extents of the
// outer set's volumes, splitting where the outer member changes volume.
std::vector<ArchiveExtent> ComposeExtents(const std::vector<ArchiveExtent>& inner,
                                          const ArchiveMember& outer_member);

// Nested multi-volume sets: several members of an outer mapping are the
// volumes of one inner set (e.g. stored "x.part1.rar" … "x.part3.rar" inside
// a stored 7z). Volume i of the returned set is `outer_members[i]` (which
// are copied); pass the volumes and reader to MapArchive, then
// ComposeSetExtents turns the inner extents (inner volume, offset) into
// extents of the outer volumes.
struct NestedSet {
  std::vector<ArchiveVolume> volumes;
  ByteReader reader;
};
NestedSet MakeNestedSet(const std::vector<ArchiveMember>& outer_members, const ByteReader& outer_reader);
std::vector<ArchiveExtent> ComposeSetExtents(const std::vector<ArchiveExtent>& inner,
                                             const std::vector<ArchiveMember>& outer_members);

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_ANALYSIS_ARCHIVE_H_
