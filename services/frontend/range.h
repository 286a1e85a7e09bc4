// RFC 7233 byte ranges and If-Range (RFC 7233 §3.2). Pure functions.
#ifndef NZBMESH_SERVICES_FRONTEND_RANGE_H_
#define NZBMESH_SERVICES_FRONTEND_RANGE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace nzbmesh::frontend {

// Inclusive byte positions, as in Content-Range.
struct ByteRange {
  int64_t first = 0;
  int64_t last = 0;
  int64_t length() const { return last - first + 1; }
  bool operator==(const ByteRange& o) const { return first == o.first && last == o.last; }
};

struct RangeLimits {
  // Most range specs accepted in one header; more is treated as abuse and
  // answered 416 (RFC 7233 §6.1 lets a server reject such requests).
  int max_ranges = 100;
};

struct RangeResult {
  enum class Kind {
    kFull,           // no Range header, or one to ignore (invalid syntax, other unit): 200 full
    kPartial,        // 206 with `ranges`
    kUnsatisfiable,  // 416 with "Content-Range: bytes */<size>"
  };
  Kind kind = Kind::kFull;
  // kPartial only: satisfiable ranges clamped to the file, sorted by position
  // with overlapping and adjacent ranges coalesced. One range -> a plain 206;
  // several -> multipart/byteranges.
  std::vector<ByteRange> ranges;
};

// Parses a Range header value against a representation of `size` bytes.
RangeResult ParseRange(absl::string_view header, int64_t size, const RangeLimits& limits = {});

// True when a request carrying `If-Range: <if_range>` may be served partially:
// a strong ETag equal to `etag` (both including quotes), or an HTTP-date equal
// to `last_modified`. Weak ETags and any other value never match (RFC 7233 §3.2).
bool IfRangeMatches(absl::string_view if_range, absl::string_view etag, absl::Time last_modified);

// "bytes 0-99/1000"
std::string ContentRange(const ByteRange& r, int64_t size);

// RFC 7231 IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
std::string HttpDate(absl::Time t);
// Parses IMF-fixdate (and the obsolete RFC 850 / asctime forms); false when invalid.
bool ParseHttpDate(absl::string_view s, absl::Time* out);

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_RANGE_H_
