// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320): the checksum RAR4,
// RAR5 and 7z use for their headers. Pure function, thread-safe.
#ifndef NZBMESH_SERVICES_IMPORTER_ANALYSIS_CRC32_H_
#define NZBMESH_SERVICES_IMPORTER_ANALYSIS_CRC32_H_

#include <cstdint>
#include "absl/strings/string_view.h"

namespace nzbmesh::importer {

// Extends `crc` (0 for a fresh checksum) over `data`.
uint32_t Crc32(absl::string_view data, uint32_t crc = 0);

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_ANALYSIS_CRC32_H_
