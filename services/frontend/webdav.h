// WebDAV (RFC 4918) bodies: PROPFIND request parsing and multistatus / HTML
// listing rendering. Pure functions over catalog entries.
#ifndef NZBMESH_SERVICES_FRONTEND_WEBDAV_H_
#define NZBMESH_SERVICES_FRONTEND_WEBDAV_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nzbmesh/importer/v1/catalog.pb.h"

namespace nzbmesh::frontend {

struct PropfindRequest {
  enum class Kind { kAllProp, kPropName, kProp };
  Kind kind = Kind::kAllProp;
  // kProp: requested properties as (namespace URI, local name).
  std::vector<std::pair<std::string, std::string>> props;
};

// Parses a PROPFIND body; an empty body means allprop. INVALID_ARGUMENT for
// malformed XML or a root other than DAV:propfind.
absl::StatusOr<PropfindRequest> ParsePropfind(absl::string_view body);

// Renders a 207 multistatus body for `entries` (the target first, then its
// children for Depth 1). `href_prefix` is the URL prefix of catalog paths
// ("/dav"). Collections get a trailing slash.
std::string RenderMultistatus(const std::vector<importer::v1::Entry>& entries, absl::string_view href_prefix,
                              const PropfindRequest& request);

// Body of the 403 for Depth: infinity on a collection.
std::string PropfindFiniteDepthBody();

// A small HTML page listing `children` of the collection `dir`.
std::string RenderHtmlListing(const importer::v1::Entry& dir, const std::vector<importer::v1::Entry>& children,
                              absl::string_view href_prefix);

// The quoted ETag of an entry ("\"<etag>\""), or a stable one from size+mtime.
std::string EntityTag(const importer::v1::Entry& e);

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_WEBDAV_H_
