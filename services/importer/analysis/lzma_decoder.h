// A small, bounded LZMA (LZMA1, "LZMA alone" without the .lzma file header)
// decoder. It exists for one job: 7-Zip compresses the archive header of most
// archives (kEncodedHeader, even with -mx0), so listing a stored 7z set needs
// to inflate a few hundred bytes of header. It is not meant for member data.
//
// Written from the format description in the public-domain LZMA SDK
// (DOC/lzma-specification.txt); the whole output stays in memory and doubles
// as the dictionary, so `max_output` also bounds memory. Pure, thread-safe.
#ifndef NZBMESH_SERVICES_IMPORTER_ANALYSIS_LZMA_DECODER_H_
#define NZBMESH_SERVICES_IMPORTER_ANALYSIS_LZMA_DECODER_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace nzbmesh::importer {

// Decodes `packed` with the 5-byte coder `properties` (lc/lp/pb byte and
// little-endian dictionary size) into exactly `unpacked_size` bytes.
// Errors: INVALID_ARGUMENT for bad properties, RESOURCE_EXHAUSTED when
// `unpacked_size` exceeds `max_output`, DATA_LOSS when the stream is corrupt
// or ends early.
absl::StatusOr<std::string> LzmaDecode(absl::string_view properties, absl::string_view packed,
                                       uint64_t unpacked_size, uint64_t max_output);

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_ANALYSIS_LZMA_DECODER_H_
