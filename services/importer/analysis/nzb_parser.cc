#include "services/importer/analysis/nzb_parser.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include <pugixml.hpp>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "services/importer/analysis/filenames.h"

namespace nzbmesh::importer {
namespace {

constexpr size_t kMaxMessageIdBytes = 250;

// Element name without a namespace prefix ("nzb:file" -> "file").
absl::string_view LocalName(const pugi::xml_node& node) {
  absl::string_view name = node.name();
  const size_t colon = name.find(':');
  return colon == absl::string_view::npos ? name : name.substr(colon + 1);
}

// Refuses every DTD that could declare anything. Walks the prolog (BOM,
// whitespace, XML declaration, processing instructions, comments) up to the
// first element; a DOCTYPE can only legally appear there. The one DOCTYPE
// real NZBs carry — `<!DOCTYPE nzb PUBLIC "-//newzBin//DTD NZB 1.1//EN" "…">`,
// external only, no internal subset — declares no entity and is never
// fetched (pugixml does not load external DTDs), so it is skipped; any
// DOCTYPE with an internal subset ('[') is refused, as is "<!ENTITY" or a
// second DOCTYPE anywhere, so a DTD fragment cannot hide behind malformed
// markup.
absl::Status RejectDoctype(absl::string_view xml) {
  const auto doctype_error = [] {
    return absl::InvalidArgumentError("NZB contains a DOCTYPE; DTDs and entities are not allowed");
  };
  absl::string_view s = xml;
  absl::string_view body = xml;  // what follows the allowed DOCTYPE, if any
  bool external_doctype_seen = false;
  if (absl::StartsWith(s, "\xEF\xBB\xBF")) s.remove_prefix(3);
  while (true) {
    s = absl::StripLeadingAsciiWhitespace(s);
    if (absl::StartsWith(s, "<?")) {
      const size_t end = s.find("?>");
      if (end == absl::string_view::npos) break;
      s.remove_prefix(end + 2);
    } else if (absl::StartsWith(s, "<!--")) {
      const size_t end = s.find("-->", 4);
      if (end == absl::string_view::npos) break;
      s.remove_prefix(end + 3);
    } else if (s.size() >= 9 && absl::StartsWithIgnoreCase(s, "<!DOCTYPE") && !external_doctype_seen) {
      const size_t end = s.find('>');
      if (end == absl::string_view::npos || s.substr(0, end).find('[') != absl::string_view::npos) {
        return doctype_error();
      }
      // Only the newzbin form: <!DOCTYPE nzb PUBLIC "id" "uri">.
      std::vector<absl::string_view> words =
          absl::StrSplit(s.substr(9, end - 9), absl::ByAnyChar(" \t\r\n"), absl::SkipEmpty());
      if (words.size() < 3 || !absl::EqualsIgnoreCase(words[0], "nzb") || !absl::EqualsIgnoreCase(words[1], "PUBLIC")) {
        return doctype_error();
      }
      external_doctype_seen = true;
      s.remove_prefix(end + 1);
      body = s;
    } else if (absl::StartsWithIgnoreCase(s, "<!DOCTYPE")) {
      return doctype_error();
    } else {
      break;
    }
  }
  // Cheap check of everything after the allowed DOCTYPE for entity
  // declarations and stray DOCTYPEs.
  for (size_t at = body.find("<!"); at != absl::string_view::npos; at = body.find("<!", at + 2)) {
    absl::string_view rest = body.substr(at + 2);
    if (absl::StartsWithIgnoreCase(rest, "DOCTYPE") || absl::StartsWithIgnoreCase(rest, "ENTITY")) {
      return doctype_error();
    }
  }
  return absl::OkStatus();
}

bool ParseInt64(absl::string_view s, int64_t* out) {
  return absl::SimpleAtoi(absl::StripAsciiWhitespace(s), out);
}

std::string Trimmed(const char* s) { return std::string(absl::StripAsciiWhitespace(s)); }

}  // namespace

std::string NormalizeMessageId(absl::string_view id) {
  id = absl::StripAsciiWhitespace(id);
  if (id.size() >= 2 && id.front() == '<' && id.back() == '>') {
    id.remove_prefix(1);
    id.remove_suffix(1);
  }
  return std::string(id);
}

bool IsValidMessageId(absl::string_view raw) {
  const std::string id = NormalizeMessageId(raw);
  if (id.size() < 3 || id.size() > kMaxMessageIdBytes) return false;
  for (char c : id) {
    const auto uc = static_cast<unsigned char>(c);
    if (uc <= 0x20 || uc >= 0x7F || c == '<' || c == '>') return false;
  }
  const size_t at = id.find('@');
  return at != std::string::npos && at != 0 && id.rfind('@') != id.size() - 1;
}

absl::StatusOr<Nzb> ParseNzb(absl::string_view xml, const NzbParseOptions& options) {
  if (options.max_nzb_bytes > 0 && static_cast<int64_t>(xml.size()) > options.max_nzb_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("NZB is ", xml.size(),
                                                     " bytes; the cap is ", options.max_nzb_bytes,
                                                     " (NzbParseOptions::max_nzb_bytes)"));
  }
  if (absl::Status st = RejectDoctype(xml); !st.ok()) return st;

  pugi::xml_document doc;
  // parse_default without parse_doctype (DOCTYPE nodes are never built) and
  // without parse_pi; only the predefined and numeric entities are decoded.
  const unsigned flags = pugi::parse_cdata | pugi::parse_escapes | pugi::parse_wconv_attribute |
                         pugi::parse_eol;
  const pugi::xml_parse_result parsed =
      doc.load_buffer(xml.data(), xml.size(), flags, pugi::encoding_utf8);
  if (!parsed) {
    return absl::InvalidArgumentError(absl::StrCat("NZB is not well-formed XML: ",
                                                   parsed.description(), " at byte ",
                                                   parsed.offset));
  }
  pugi::xml_node root = doc.document_element();
  if (!root || LocalName(root) != "nzb") {
    return absl::InvalidArgumentError("NZB root element is not <nzb>");
  }

  Nzb nzb;
  // Count first so caps fail before any allocation proportional to them.
  int file_count = 0;
  int64_t segment_count = 0;
  for (pugi::xml_node node : root.children()) {
    if (LocalName(node) != "file") continue;
    if (options.max_files > 0 && ++file_count > options.max_files) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "NZB has more than ", options.max_files, " files (NzbParseOptions::max_files)"));
    }
  }

  for (pugi::xml_node node : root.children()) {
    const absl::string_view name = LocalName(node);
    if (name == "head") {
      for (pugi::xml_node meta : node.children()) {
        if (LocalName(meta) != "meta") continue;
        const std::string type = absl::AsciiStrToLower(meta.attribute("type").value());
        const std::string value = Trimmed(meta.child_value());
        nzb.meta.all.emplace_back(type, value);
        if (type == "password" && !nzb.meta.password) nzb.meta.password = value;
        if (type == "name" && !nzb.meta.name) nzb.meta.name = value;
        if (type == "category" && !nzb.meta.category) nzb.meta.category = value;
      }
      continue;
    }
    if (name != "file") continue;

    NzbFile file;
    file.subject = node.attribute("subject").value();
    file.poster = node.attribute("poster").value();
    int64_t date = 0;
    if (ParseInt64(node.attribute("date").value(), &date) && date > 0) {
      file.date = absl::FromUnixSeconds(date);
    }
    file.filename_from_subject = FilenameFromSubject(file.subject);
    if (std::optional<SubjectPart> part = PartFromSubject(file.subject)) {
      file.total_parts_from_subject = part->total;
    }
    const std::string label =
        absl::StrCat("file ", nzb.files.size() + 1, " (\"", file.subject.substr(0, 120), "\")");
    for (pugi::xml_node g : node.child("groups").children()) {
      if (LocalName(g) == "group") file.groups.push_back(Trimmed(g.child_value()));
    }
    pugi::xml_node segments = node.child("segments");
    if (!segments) {
      for (pugi::xml_node c : node.children()) {
        if (LocalName(c) == "segments") segments = c;
      }
    }
    int in_file = 0;
    for (pugi::xml_node s : segments.children()) {
      if (LocalName(s) != "segment") continue;
      ++in_file;
      if (options.max_segments_per_file > 0 && in_file > options.max_segments_per_file) {
        return absl::ResourceExhaustedError(
            absl::StrCat(label, " has more than ", options.max_segments_per_file,
                         " segments (NzbParseOptions::max_segments_per_file)"));
      }
      if (options.max_total_segments > 0 && ++segment_count > options.max_total_segments) {
        return absl::ResourceExhaustedError(
            absl::StrCat("NZB has more than ", options.max_total_segments,
                         " segments (NzbParseOptions::max_total_segments)"));
      }
      NzbSegment seg;
      int64_t number = 0;
      if (!ParseInt64(s.attribute("number").value(), &number) || number <= 0 ||
          number > std::numeric_limits<int>::max()) {
        return absl::InvalidArgumentError(
            absl::StrCat(label, ": segment number \"", s.attribute("number").value(),
                         "\" is not a positive integer"));
      }
      seg.number = static_cast<int>(number);
      if (!ParseInt64(s.attribute("bytes").value(), &seg.bytes) || seg.bytes < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(label, ": segment ", seg.number, " has bytes=\"",
                         s.attribute("bytes").value(), "\", not a non-negative integer"));
      }
      if (options.max_segment_bytes > 0 && seg.bytes > options.max_segment_bytes) {
        return absl::InvalidArgumentError(
            absl::StrCat(label, ": segment ", seg.number, " claims ", seg.bytes,
                         " bytes; the cap is ", options.max_segment_bytes,
                         " (NzbParseOptions::max_segment_bytes)"));
      }
      const char* raw_id = s.child_value();
      if (!IsValidMessageId(raw_id)) {
        std::string shown = absl::CHexEscape(absl::string_view(raw_id).substr(0, 80));
        return absl::InvalidArgumentError(absl::StrCat(
            label, ": segment ", seg.number, " has an invalid message-id \"", shown,
            "\" (needs 3-250 printable ASCII bytes with '@', no spaces or angle brackets)"));
      }
      seg.message_id = NormalizeMessageId(raw_id);
      file.segments.push_back(std::move(seg));
    }
    if (file.segments.empty()) {
      nzb.warnings.push_back(absl::StrCat(label, " has no segments; skipped"));
      continue;
    }
    std::stable_sort(file.segments.begin(), file.segments.end(),
                     [](const NzbSegment& a, const NzbSegment& b) { return a.number < b.number; });
    // Keep the first of each number (stable sort kept document order).
    auto last = std::unique(file.segments.begin(), file.segments.end(),
                            [](const NzbSegment& a, const NzbSegment& b) { return a.number == b.number; });
    file.duplicate_segment_count = static_cast<int>(file.segments.end() - last);
    file.segments.erase(last, file.segments.end());
    int expected = file.segments.back().number;
    if (file.total_parts_from_subject && *file.total_parts_from_subject > expected &&
        *file.total_parts_from_subject <= std::max(options.max_segments_per_file, 1)) {
      expected = *file.total_parts_from_subject;
    }
    size_t i = 0;
    for (int n = 1; n <= expected; ++n) {
      if (i < file.segments.size() && file.segments[i].number == n) {
        ++i;
        continue;
      }
      ++file.missing_segment_count;
      if (static_cast<int>(file.missing_segments.size()) < options.max_missing_listed) {
        file.missing_segments.push_back(n);
      }
    }
    for (const NzbSegment& seg : file.segments) file.total_bytes += seg.bytes;
    if (file.duplicate_segment_count > 0 || file.missing_segment_count > 0) {
      nzb.warnings.push_back(absl::StrCat(label, ": ", file.duplicate_segment_count,
                                          " duplicate segment numbers dropped, ",
                                          file.missing_segment_count, " segments missing"));
    }
    nzb.total_segments += static_cast<int64_t>(file.segments.size());
    nzb.total_bytes += file.total_bytes;
    nzb.files.push_back(std::move(file));
  }
  if (nzb.files.empty()) {
    return absl::InvalidArgumentError("NZB lists no files with segments");
  }
  return nzb;
}

}  // namespace nzbmesh::importer
