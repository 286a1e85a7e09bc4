// Real NZBs (newzbin 1.1, as written by indexers, SABnzbd and NZBGet) start
// with <!DOCTYPE nzb PUBLIC "-//newzBin//DTD NZB 1.1//EN" "http://...dtd">.
// The hardened parser in analysis/ refuses every DOCTYPE. A DOCTYPE without an
// internal subset ('[ ... ]') can declare no entity, and the parser never
// fetches external DTDs, so dropping such a declaration is safe; one with an
// internal subset (billion laughs, XXE) is left in place for the parser to
// refuse.
// TODO(analysis owner): accept the external-only DOCTYPE in ParseNzb itself
// and delete this shim.
#ifndef NZBMESH_SERVICES_IMPORTER_NZB_DOCTYPE_H_
#define NZBMESH_SERVICES_IMPORTER_NZB_DOCTYPE_H_

#include <string>

#include "absl/strings/string_view.h"

namespace nzbmesh::importer {

// `xml` without its prolog DOCTYPE when that DOCTYPE has no internal subset;
// otherwise `xml` unchanged.
std::string StripExternalDoctype(absl::string_view xml);

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_NZB_DOCTYPE_H_
