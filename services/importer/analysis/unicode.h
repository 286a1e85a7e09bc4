// UTF-16 → UTF-8 for names stored by archive formats (RAR 3.x Unicode names,
// 7z names, PAR2 Unicode file descriptions). Unpaired surrogates become U+FFFD.
#ifndef NZBMESH_SERVICES_IMPORTER_ANALYSIS_UNICODE_H_
#define NZBMESH_SERVICES_IMPORTER_ANALYSIS_UNICODE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace nzbmesh::importer {

std::string Utf16ToUtf8(const std::vector<uint16_t>& units);

// Little-endian UTF-16 bytes, up to the first NUL unit (or the end; an odd
// trailing byte is ignored).
std::string Utf16LeToUtf8(absl::string_view bytes);

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_ANALYSIS_UNICODE_H_
