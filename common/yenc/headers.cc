// Parsers for the =ybegin, =ypart and =yend lines.
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status/status_macros.h"
#include "common/yenc/yenc.h"

namespace nzbmesh::yenc {
namespace {

// The line for error messages, cut short and without control characters.
std::string Quote(absl::string_view line) {
  std::string q = std::string(line.substr(0, 80));
  for (char& c : q) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  if (line.size() > 80) q += "...";
  return absl::StrCat("'", q, "'");
}

absl::Status CheckKeyword(absl::string_view line, absl::string_view keyword,
                          absl::string_view* rest) {
  if (!absl::StartsWith(line, keyword) ||
      (line.size() > keyword.size() && line[keyword.size()] != ' ' &&
       line[keyword.size()] != '\t')) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a ", keyword, " line, got ", Quote(line)));
  }
  *rest = line.substr(keyword.size());
  return absl::OkStatus();
}

absl::Status ParseDecimal(absl::string_view keyword, absl::string_view key,
                          absl::string_view value, int64_t* out) {
  // 18 digits cannot overflow int64.
  if (value.empty() || value.size() > 18) {
    return absl::InvalidArgumentError(absl::StrCat(keyword, " field ", key, "= has value '",
                                                   value.substr(0, 40),
                                                   "', want a decimal number"));
  }
  int64_t v = 0;
  for (char c : value) {
    if (c < '0' || c > '9') {
      return absl::InvalidArgumentError(absl::StrCat(keyword, " field ", key, "= has value '",
                                                     value.substr(0, 40),
                                                     "', want a decimal number"));
    }
    v = v * 10 + (c - '0');
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status ParseHex32(absl::string_view keyword, absl::string_view key, absl::string_view value,
                        uint32_t* out) {
  if (absl::StartsWithIgnoreCase(value, "0x")) value.remove_prefix(2);
  if (value.empty() || value.size() > 8) {
    return absl::InvalidArgumentError(absl::StrCat(keyword, " field ", key, "= has value '",
                                                   value.substr(0, 40),
                                                   "', want 1 to 8 hex digits"));
  }
  uint32_t v = 0;
  for (char c : value) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(keyword, " field ", key, "= has value '",
                                                     value.substr(0, 40),
                                                     "', want 1 to 8 hex digits"));
    }
    v = (v << 4) | static_cast<uint32_t>(d);
  }
  *out = v;
  return absl::OkStatus();
}

// Calls fn(key, value) for each space-separated key=value; tokens without '='
// are ignored. With `name_runs_to_eol`, "name=" takes the rest of the line.
template <typename Fn>
absl::Status ForEachField(absl::string_view rest, bool name_runs_to_eol, Fn fn) {
  while (true) {
    while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
    if (rest.empty()) return absl::OkStatus();
    if (name_runs_to_eol && absl::StartsWith(rest, "name=")) {
      return fn(absl::string_view("name"), rest.substr(5));
    }
    size_t end = rest.find_first_of(" \t");
    if (end == absl::string_view::npos) end = rest.size();
    const absl::string_view token = rest.substr(0, end);
    rest.remove_prefix(end);
    const size_t eq = token.find('=');
    if (eq == absl::string_view::npos) continue;
    NZB_RETURN_IF_ERROR(fn(token.substr(0, eq), token.substr(eq + 1)));
  }
}

}  // namespace

absl::StatusOr<PartHeader> ParseBeginLine(absl::string_view line) {
  constexpr absl::string_view kKeyword = "=ybegin";
  absl::string_view rest;
  NZB_RETURN_IF_ERROR(CheckKeyword(line, kKeyword, &rest));
  PartHeader h;
  bool has_size = false;
  bool has_name = false;
  NZB_RETURN_IF_ERROR(ForEachField(
      rest, /*name_runs_to_eol=*/true,
      [&](absl::string_view key, absl::string_view value) -> absl::Status {
        if (key == "part") return ParseDecimal(kKeyword, key, value, &h.part);
        if (key == "total") return ParseDecimal(kKeyword, key, value, &h.total);
        if (key == "line") return ParseDecimal(kKeyword, key, value, &h.line);
        if (key == "size") {
          has_size = true;
          return ParseDecimal(kKeyword, key, value, &h.size);
        }
        if (key == "name") {
          has_name = true;
          h.name = std::string(value);
        }
        return absl::OkStatus();  // unknown fields are tolerated
      }));
  if (!has_size) {
    return absl::InvalidArgumentError(absl::StrCat("=ybegin line has no size= field: ", Quote(line)));
  }
  if (!has_name) {
    return absl::InvalidArgumentError(absl::StrCat("=ybegin line has no name= field: ", Quote(line)));
  }
  if (h.part == 0) {  // single-part: the part is the whole file
    h.begin = 1;
    h.end = h.size;
  }
  return h;
}

absl::Status ParsePartLine(absl::string_view line, PartHeader* header) {
  constexpr absl::string_view kKeyword = "=ypart";
  absl::string_view rest;
  NZB_RETURN_IF_ERROR(CheckKeyword(line, kKeyword, &rest));
  int64_t begin = -1;
  int64_t end = -1;
  NZB_RETURN_IF_ERROR(ForEachField(
      rest, /*name_runs_to_eol=*/false,
      [&](absl::string_view key, absl::string_view value) -> absl::Status {
        if (key == "begin") return ParseDecimal(kKeyword, key, value, &begin);
        if (key == "end") return ParseDecimal(kKeyword, key, value, &end);
        return absl::OkStatus();
      }));
  if (begin < 0) {
    return absl::InvalidArgumentError(absl::StrCat("=ypart line has no begin= field: ", Quote(line)));
  }
  if (end < 0) {
    return absl::InvalidArgumentError(absl::StrCat("=ypart line has no end= field: ", Quote(line)));
  }
  if (begin < 1 || end < begin) {
    return absl::InvalidArgumentError(absl::StrCat("=ypart range begin=", begin, " end=", end,
                                                   " is empty or not 1-based: ", Quote(line)));
  }
  header->begin = begin;
  header->end = end;
  return absl::OkStatus();
}

absl::StatusOr<PartTrailer> ParseEndLine(absl::string_view line) {
  constexpr absl::string_view kKeyword = "=yend";
  absl::string_view rest;
  NZB_RETURN_IF_ERROR(CheckKeyword(line, kKeyword, &rest));
  PartTrailer t;
  bool has_size = false;
  NZB_RETURN_IF_ERROR(ForEachField(
      rest, /*name_runs_to_eol=*/false,
      [&](absl::string_view key, absl::string_view value) -> absl::Status {
        if (key == "size") {
          has_size = true;
          return ParseDecimal(kKeyword, key, value, &t.size);
        }
        if (key == "part") return ParseDecimal(kKeyword, key, value, &t.part);
        if (key == "pcrc32") {
          t.has_pcrc32 = true;
          return ParseHex32(kKeyword, key, value, &t.pcrc32);
        }
        if (key == "crc32") {
          t.has_crc32 = true;
          return ParseHex32(kKeyword, key, value, &t.crc32);
        }
        return absl::OkStatus();
      }));
  if (!has_size) {
    return absl::InvalidArgumentError(absl::StrCat("=yend line has no size= field: ", Quote(line)));
  }
  return t;
}

}  // namespace nzbmesh::yenc
