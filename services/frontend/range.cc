#include "services/frontend/range.h"

#include <algorithm>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace nzbmesh::frontend {
namespace {

constexpr int64_t kHuge = std::numeric_limits<int64_t>::max();

// Parses 1*DIGIT; values that overflow saturate at kHuge.
bool ParseDigits(absl::string_view s, int64_t* out) {
  if (s.empty()) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    if (v > (kHuge - 9) / 10) {
      v = kHuge;
    } else {
      v = v * 10 + (c - '0');
    }
  }
  *out = v;
  return true;
}

}  // namespace

RangeResult ParseRange(absl::string_view header, int64_t size, const RangeLimits& limits) {
  RangeResult full;
  absl::string_view h = absl::StripAsciiWhitespace(header);
  // bytes-unit is case-insensitive.
  if (h.size() < 6 || !absl::EqualsIgnoreCase(h.substr(0, 6), "bytes=")) return full;
  h.remove_prefix(6);

  std::vector<ByteRange> satisfiable;
  int specs = 0;
  size_t pos = 0;
  while (pos <= h.size()) {
    size_t comma = h.find(',', pos);
    if (comma == absl::string_view::npos) comma = h.size();
    absl::string_view spec = absl::StripAsciiWhitespace(h.substr(pos, comma - pos));
    pos = comma + 1;
    if (spec.empty()) continue;  // #rule allows empty list elements
    if (++specs > limits.max_ranges) {
      RangeResult r;
      r.kind = RangeResult::Kind::kUnsatisfiable;
      return r;
    }
    size_t dash = spec.find('-');
    if (dash == absl::string_view::npos) return full;
    absl::string_view a = spec.substr(0, dash);
    absl::string_view b = spec.substr(dash + 1);
    if (a.empty()) {
      // suffix-byte-range-spec: the last N bytes.
      int64_t n = 0;
      if (!ParseDigits(b, &n)) return full;
      if (n == 0 || size == 0) continue;  // unsatisfiable
      satisfiable.push_back({std::max<int64_t>(0, size - n), size - 1});
      continue;
    }
    int64_t first = 0;
    if (!ParseDigits(a, &first)) return full;
    int64_t last = kHuge;
    if (!b.empty()) {
      if (!ParseDigits(b, &last)) return full;
      if (last < first) return full;  // syntactically invalid: ignore the header
    }
    if (first >= size) continue;  // unsatisfiable
    satisfiable.push_back({first, std::min(last, size - 1)});
  }
  if (specs == 0) return full;  // "bytes=" with no spec is invalid
  RangeResult r;
  if (satisfiable.empty()) {
    r.kind = RangeResult::Kind::kUnsatisfiable;
    return r;
  }
  std::sort(satisfiable.begin(), satisfiable.end(),
            [](const ByteRange& x, const ByteRange& y) { return x.first < y.first; });
  for (const ByteRange& br : satisfiable) {
    if (!r.ranges.empty() && br.first <= r.ranges.back().last + 1) {
      r.ranges.back().last = std::max(r.ranges.back().last, br.last);
    } else {
      r.ranges.push_back(br);
    }
  }
  r.kind = RangeResult::Kind::kPartial;
  return r;
}

bool IfRangeMatches(absl::string_view if_range, absl::string_view etag, absl::Time last_modified) {
  absl::string_view v = absl::StripAsciiWhitespace(if_range);
  if (v.empty()) return false;
  if (absl::StartsWith(v, "W/")) return false;  // weak validators never match
  if (v.front() == '"') return !etag.empty() && !absl::StartsWith(etag, "W/") && v == etag;
  absl::Time t;
  if (!ParseHttpDate(v, &t)) return false;
  // HTTP dates have one-second resolution.
  return absl::ToUnixSeconds(t) == absl::ToUnixSeconds(last_modified);
}

std::string ContentRange(const ByteRange& r, int64_t size) {
  return absl::StrCat("bytes ", r.first, "-", r.last, "/", size);
}

std::string HttpDate(absl::Time t) { return absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", t, absl::UTCTimeZone()); }

bool ParseHttpDate(absl::string_view s, absl::Time* out) {
  std::string err;
  std::string in(absl::StripAsciiWhitespace(s));
  static const char* const kFormats[] = {
      "%a, %d %b %Y %H:%M:%S GMT",  // IMF-fixdate
      "%A, %d-%b-%y %H:%M:%S GMT",  // RFC 850
      "%a %b %e %H:%M:%S %Y",       // asctime
  };
  for (const char* f : kFormats) {
    if (absl::ParseTime(f, in, absl::UTCTimeZone(), out, &err)) return true;
  }
  return false;
}

}  // namespace nzbmesh::frontend
