// Escaping for text embedded in JSON and XML documents, shared by every
// service that writes them by hand (the frontend's WebDAV and SABnzbd
// answers, nzbmeshctl's JSON output, the test news server's NZBs).
#ifndef NZBMESH_COMMON_STRINGS_ESCAPE_H_
#define NZBMESH_COMMON_STRINGS_ESCAPE_H_

#include <string>

#include "absl/strings/string_view.h"

namespace nzbmesh {

// The contents of a JSON string (without the quotes): ", \, and control
// characters escaped; other bytes (UTF-8) pass through.
std::string JsonEscape(absl::string_view s);

// Text or attribute content for XML 1.0: & < > " ' as entities; control
// characters XML 1.0 forbids become U+FFFD.
std::string XmlEscape(absl::string_view s);

}  // namespace nzbmesh

#endif  // NZBMESH_COMMON_STRINGS_ESCAPE_H_
