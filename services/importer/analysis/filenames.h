// File-name logic for the importer: names from NZB subjects, obfuscation
// detection, sanitising, collision suffixes, volume-set recognition and the
// media allow-list. Pure functions and small value types; thread-compatible.
#ifndef NZBMESH_SERVICES_IMPORTER_ANALYSIS_FILENAMES_H_
#define NZBMESH_SERVICES_IMPORTER_ANALYSIS_FILENAMES_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/container/flat_hash_set.h"

namespace nzbmesh::importer {

// The file name a poster put in an NZB subject: the text inside the last pair
// of double quotes that looks like a file name ("name.ext"), else a token
// ending in a known extension before a yEnc "(1/N)" / "yEnc" marker.
// Returns nullopt when the subject holds no plausible name. Not sanitised.
std::optional<std::string> FilenameFromSubject(absl::string_view subject);

// "(part/total)" from the last such group in a subject (yEnc convention).
struct SubjectPart {
  int part = 0;
  int total = 0;
};
std::optional<SubjectPart> PartFromSubject(absl::string_view subject);

// True when a name looks machine-generated: a stem of >= 16 characters made
// only of hex digits or of random-looking alphanumerics, with no extension
// or an extension that is not a known media/archive/par2 one. Such files get
// their real names from PAR2 or from the archive headers.
bool LooksObfuscated(absl::string_view filename);

// Maximum bytes in one sanitised path component.
inline constexpr size_t kMaxFilenameBytes = 240;

// Makes one path component safe for the catalog and for clients: removes
// '/', '\\', NUL and other control characters, invalid UTF-8, leading dots
// and spaces (no hidden files, no "." or ".."), trailing dots and spaces, and
// caps the length at `max_bytes` (keeping the extension and whole UTF-8
// characters). Unicode letters are kept. Returns "_" when nothing is left.
std::string SanitizeFilename(absl::string_view name, size_t max_bytes = kMaxFilenameBytes);

// Sanitises a relative path from an archive: '\\' and '/' both separate
// components, empty, "." and ".." components are dropped (never climbs out),
// each remaining component goes through SanitizeFilename. Returns "_" when
// nothing is left.
std::string SanitizePath(absl::string_view path);

// Hands out unique names within one directory: the first "a.mkv" stays
// "a.mkv", the next becomes "a (2).mkv", then "a (3).mkv". Comparison is
// ASCII-case-insensitive because WebDAV/SMB clients on Windows and macOS are.
class UniqueNamer {
 public:
  std::string Claim(absl::string_view name);

 private:
  absl::flat_hash_set<std::string> used_;  // Lower-cased names handed out.
};

// Volume-set naming conventions, in the order they are recognised.
enum class VolumeKind {
  kNone,
  kRar,            // name.rar (first volume of an old-style set, or a single archive)
  kRarOld,         // name.r00 .. name.r99, name.s00 .. (continuations of name.rar)
  kRarPart,        // name.partN.rar (any width of N)
  kSevenZip,       // name.7z (single volume)
  kSevenZipSplit,  // name.7z.001 ...
  kSplit,          // name.ext.001 ... (HJSplit-style raw split)
  kPar2Index,      // name.par2
  kPar2Volume,     // name.volNN+MM.par2 (also .vol001-002.par2 is not used: '+' only)
};

struct VolumeName {
  VolumeKind kind = VolumeKind::kNone;
  // The set's name without the volume suffix ("release" for release.part01.rar,
  // release.7z.001 -> "release", movie.mkv.001 -> "movie.mkv").
  std::string set_name;
  // Position within the set, 0 for the first volume (.rar = 0, .r00 = 1,
  // .s00 = 101; part1 = 0; .001 = 0). For PAR2 volumes the first block.
  int index = 0;
  // PAR2 volumes: number of recovery blocks (the MM of volNN+MM).
  int par2_blocks = 0;
};

// Classifies a file name. Returns kind kNone (and set_name = name) when the
// name matches no volume convention.
VolumeName ParseVolumeName(absl::string_view filename);

struct VolumeSet {
  std::string set_name;
  VolumeKind kind = VolumeKind::kNone;  // kRar covers kRar + kRarOld.
  std::vector<int> volumes;             // Indices into the input, in volume order.
  std::vector<int> par2_files;          // PAR2 files whose set name matches.
};

// Groups file names into archive/split volume sets ordered by volume index,
// attaching PAR2 files by set name. Files that belong to no set are left out.
// Sets with a gap in their indices are still returned (ordering is by index);
// the caller sees the gap by comparing indices with ParseVolumeName.
std::vector<VolumeSet> GroupVolumeSets(const std::vector<std::string>& filenames);

// Which files of a release end up in the catalog.
struct FileFilterOptions {
  // Lower-case extensions without the dot that are kept. Empty means keep
  // every extension.
  std::vector<std::string> allowed_extensions = {
      "mkv", "mp4", "m4v", "avi", "mov", "wmv", "mpg", "mpeg", "ts", "m2ts", "webm", "flv",
      "iso", "img", "mp3", "flac", "m4a", "aac", "ogg", "opus", "wav", "srt", "ass", "ssa",
      "sub", "idx", "vtt", "sup", "nfo", "jpg", "jpeg", "png", "epub", "pdf", "cbz", "cbr"};
  // Drop "sample" files (a path component or name token "sample", e.g.
  // "movie-sample.mkv", "Sample/x.mkv"), which are usually unwanted.
  bool drop_samples = true;
};

class FileFilter {
 public:
  explicit FileFilter(FileFilterOptions options);
  // True when `path` (a name or a relative path) should be kept.
  bool Allows(absl::string_view path) const;

 private:
  FileFilterOptions options_;
  absl::flat_hash_set<std::string> allowed_;
};

// True when the name or any directory of `path` marks it as a sample.
bool IsSample(absl::string_view path);

// Lower-cased extension without the dot ("" when there is none).
std::string Extension(absl::string_view filename);

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_ANALYSIS_FILENAMES_H_
