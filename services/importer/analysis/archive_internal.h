// Internals shared by archive.cc, archive_rar.cc and archive_7z.cc. Not part
// of the public API; only the archive library and its tests include this.
#ifndef NZBMESH_SERVICES_IMPORTER_ANALYSIS_ARCHIVE_INTERNAL_H_
#define NZBMESH_SERVICES_IMPORTER_ANALYSIS_ARCHIVE_INTERNAL_H_

#include <cstdint>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/importer/analysis/archive.h"

namespace nzbmesh::importer::archive_internal {

// Wraps the caller's reader: checks bounds against the volume sizes, counts
// bytes, and remembers the first reader failure so MapArchive can tell a
// reader error (returned as is) from a corrupt archive (a rejection).
class CountingReader {
 public:
  CountingReader(const std::vector<ArchiveVolume>& volumes, const ByteReader& reader)
      : volumes_(volumes), reader_(reader) {}

  // DATA_LOSS (corrupt) when the range is outside the volume; the reader's
  // own error otherwise.
  absl::StatusOr<std::string> Read(int volume, int64_t offset, int64_t length);

  const absl::Status& reader_failure() const { return reader_failure_; }
  int64_t bytes_read() const { return bytes_read_; }
  int64_t read_calls() const { return read_calls_; }
  int64_t volume_size(int volume) const { return volumes_[volume].size; }
  int volume_count() const { return static_cast<int>(volumes_.size()); }

 private:
  const std::vector<ArchiveVolume>& volumes_;
  const ByteReader& reader_;
  absl::Status reader_failure_;
  int64_t bytes_read_ = 0;
  int64_t read_calls_ = 0;
};

// A corrupt-archive error (becomes ArchiveRejection::kCorrupt).
absl::Status Corrupt(absl::string_view what);

// One occurrence of a file header in one RAR volume.
struct RarPart {
  std::string raw_name;
  int64_t unpacked_size = 0;
  int64_t data_offset = 0;  // In this volume.
  int64_t data_size = 0;
  bool split_before = false;
  bool split_after = false;
  bool is_directory = false;
  bool is_symlink = false;
  bool encrypted = false;
  bool solid = false;
  bool stored = false;
  std::string method;  // For messages, e.g. "RAR4 method 0x33".
  std::optional<absl::Time> mtime;
  std::optional<uint32_t> crc32;
};

struct RarVolumeScan {
  ArchiveFormat format = ArchiveFormat::kUnknown;
  std::optional<int> volume_number;
  bool is_volume = false;
  bool solid = false;
  bool headers_encrypted = false;
  std::vector<RarPart> parts;
};

// Walk one volume's headers. Reader errors and corruption come back as
// Status (tell them apart with CountingReader::reader_failure()).
absl::StatusOr<RarVolumeScan> ScanRar4Volume(CountingReader& reader, int volume,
                                             const ArchiveMapOptions& options);
absl::StatusOr<RarVolumeScan> ScanRar5Volume(CountingReader& reader, int volume,
                                             const ArchiveMapOptions& options);

// 7z: `order` lists the volumes (input indices) that make up the byte stream.
absl::Status Map7z(CountingReader& reader, const std::vector<int>& order,
                   const ArchiveMapOptions& options, ArchiveMapping* mapping);

// Parses a decoded 7z header buffer (for the fuzzer): same checks as Map7z
// without reading anything. `stream_size` bounds pack positions.
absl::Status Parse7zHeaderForFuzzing(absl::string_view header, int64_t stream_size);

// Exposed for the fuzzer: parse a RAR volume held in memory.
absl::StatusOr<RarVolumeScan> ScanRarBufferForFuzzing(absl::string_view bytes);

}  // namespace nzbmesh::importer::archive_internal

#endif  // NZBMESH_SERVICES_IMPORTER_ANALYSIS_ARCHIVE_INTERNAL_H_
