// Parses NZB XML (newzbin 1.1 format) into files and segments, defensively:
// the input comes from users and indexers and is hostile until proven
// otherwise. Pure function; thread-safe.
//
// Hardening: any DOCTYPE (and so any DTD or entity declaration) is refused
// before the XML parser sees the input, which stops "billion laughs" and
// external-entity (XXE) files outright; the input size, file count and
// segment counts are capped before anything proportional to them is built;
// message-ids that could inject into NNTP commands are refused.
//
// Errors: INVALID_ARGUMENT for malformed or hostile content (DOCTYPE, bad
// XML, bad numbers, bad message-ids, absurd segment sizes, no files);
// RESOURCE_EXHAUSTED when a configured cap (bytes, files, segments) is hit.
#ifndef NZBMESH_SERVICES_IMPORTER_ANALYSIS_NZB_PARSER_H_
#define NZBMESH_SERVICES_IMPORTER_ANALYSIS_NZB_PARSER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace nzbmesh::importer {

struct NzbParseOptions {
  // Largest NZB accepted, in bytes of XML. 0 means no limit. 64 MiB holds a
  // few million segments, far beyond any real release.
  int64_t max_nzb_bytes = 64 << 20;
  // Most <file> elements in one NZB. 0 means no limit.
  int max_files = 20000;
  // Most <segment> elements in one <file> (a 50 GB file at 700 KB per article
  // has ~75,000). 0 means no limit.
  int max_segments_per_file = 500000;
  // Most <segment> elements in the whole NZB. 0 means no limit.
  int64_t max_total_segments = 2000000;
  // Largest encoded size one segment may claim ("bytes" attribute). Usenet
  // articles are < 1 MiB in practice; larger claims are lies that would skew
  // size arithmetic. 0 means no limit.
  int64_t max_segment_bytes = 16 << 20;
  // Most missing segment numbers listed per file (the count is always exact).
  int max_missing_listed = 1000;
};

struct NzbSegment {
  int number = 0;           // 1-based, as in the NZB.
  int64_t bytes = 0;        // Encoded (yEnc) article size claimed by the NZB.
  std::string message_id;   // Without angle brackets; validated by IsValidMessageId.
};

struct NzbFile {
  std::string subject;
  std::string poster;
  std::optional<absl::Time> date;  // From the "date" attribute (Unix seconds).
  std::vector<std::string> groups;
  std::vector<NzbSegment> segments;  // Sorted by number, unique numbers.
  // Name parsed from the subject (FilenameFromSubject), not sanitised;
  // nullopt when the subject holds none (obfuscated posts).
  std::optional<std::string> filename_from_subject;
  // "(part/total)" from the subject, when present.
  std::optional<int> total_parts_from_subject;
  // Segment numbers missing between 1 and max(highest number, subject total),
  // listed up to NzbParseOptions::max_missing_listed; the count is exact.
  std::vector<int> missing_segments;
  int missing_segment_count = 0;
  int duplicate_segment_count = 0;  // Duplicates dropped (first one kept).
  int64_t total_bytes = 0;          // Sum of segment bytes.
};

struct NzbMeta {
  std::optional<std::string> name;      // <meta type="name">
  std::optional<std::string> password;  // First <meta type="password">
  std::optional<std::string> category;  // <meta type="category">
  // Every <meta> in document order as (lower-cased type, value).
  std::vector<std::pair<std::string, std::string>> all;
};

struct Nzb {
  NzbMeta meta;
  std::vector<NzbFile> files;  // Document order; files without segments are dropped.
  // Human-readable notes about tolerated oddities (duplicates, gaps, empty
  // files), for the job log. Bounded: at most one per file plus a few.
  std::vector<std::string> warnings;
  int64_t total_segments = 0;
  int64_t total_bytes = 0;
};

absl::StatusOr<Nzb> ParseNzb(absl::string_view xml, const NzbParseOptions& options = {});

// True for a message-id that is safe to put in an NNTP command: 3..250 bytes
// of printable ASCII without spaces or angle brackets, with an '@' that is
// neither first nor last. Accepts an id wrapped in one pair of <> (NZBs from
// some tools include them); NormalizeMessageId strips them.
bool IsValidMessageId(absl::string_view id);
std::string NormalizeMessageId(absl::string_view id);

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_ANALYSIS_NZB_PARSER_H_
