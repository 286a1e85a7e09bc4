// Small pure helpers of the HTTP layer: request-target decoding with
// traversal checks, escaping (URL path, XML, HTML, JSON), query strings,
// Basic auth, multipart/form-data, content types.
#ifndef NZBMESH_SERVICES_FRONTEND_HTTP_UTIL_H_
#define NZBMESH_SERVICES_FRONTEND_HTTP_UTIL_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/strings/escape.h"

namespace nzbmesh::frontend {

// Maps the path part of a request target under `prefix` (e.g. "/dav") to a
// catalog path ("/" or "/a/b"). Decodes %XX; INVALID_ARGUMENT for bad escapes,
// NUL, encoded '/', "." or ".." segments (literal or encoded), and paths not
// under `prefix`. Repeated slashes collapse; a trailing slash is dropped.
absl::StatusOr<std::string> DecodeTargetPath(absl::string_view path, absl::string_view prefix);

// Percent-encodes each segment of a catalog path (keeps '/', unreserved chars).
std::string EncodePath(absl::string_view path);
// Decodes %XX and '+' (as space) of a query component; invalid escapes kept as-is.
std::string DecodeQueryComponent(absl::string_view s);
// "a=1&b=2" -> {a:1, b:2} (first value wins).
std::map<std::string, std::string> ParseQuery(absl::string_view query);

using ::nzbmesh::XmlEscape;  // common/strings/escape.h
std::string HtmlEscape(absl::string_view s);
using ::nzbmesh::JsonEscape;  // without the quotes; common/strings/escape.h

// Content type by file extension (video/x-matroska, video/mp4, ...).
std::string ContentTypeFor(absl::string_view name);

// Lower-case hex SHA-256.
std::string Sha256Hex(absl::string_view data);
// Constant-time comparison (length leaks, contents do not).
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

// Decodes "Basic <base64>" into user and password; false when malformed.
bool ParseBasicAuth(absl::string_view header, std::string* user, std::string* password);

struct FormPart {
  std::string name;
  std::string filename;  // empty for plain fields
  std::string content_type;
  std::string data;
};
// Parses a multipart/form-data body; `content_type` is the request's header.
absl::StatusOr<std::vector<FormPart>> ParseMultipart(absl::string_view content_type, absl::string_view body);

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_HTTP_UTIL_H_
