// Helpers shared by the yEnc tests, fuzzer and benchmarks.
#ifndef NZBMESH_TESTS_COMMON_YENC_TEST_ARTICLES_H_
#define NZBMESH_TESTS_COMMON_YENC_TEST_ARTICLES_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/yenc/yenc.h"

namespace nzbmesh::yenc::testing {

// `size` pseudo-random bytes from `seed`.
std::string RandomBytes(size_t size, uint64_t seed);

// An NNTP BODY payload: EncodePart(data) + ".\r\n".
std::string NntpArticle(absl::string_view data, const EncodeOptions& options);

// Kernels this CPU supports, scalar first.
std::vector<Kernel> SupportedKernels();

// Everything observable after feeding an input to a decoder.
struct DecodeOutcome {
  std::string output;
  size_t consumed = 0;
  bool done = false;
  bool saw_header = false;
  bool saw_trailer = false;
  absl::Status feed_status;  // first Feed error, OK if none
  absl::Status verify_status;
  uint32_t crc = 0;
  PartHeader header;
  PartTrailer trailer;
};

// Feeds `in` in chunks whose sizes cycle through `chunks` (empty = one Feed),
// stopping at done() or the first error.
DecodeOutcome Decode(absl::string_view in, Kernel kernel, ArticleDecoder::Mode mode,
                     const std::vector<size_t>& chunks = {}, int64_t max_decoded_bytes = 0);

// Empty when equal, else a description of the first difference.
std::string Diff(const DecodeOutcome& want, const DecodeOutcome& got);

}  // namespace nzbmesh::yenc::testing

#endif  // NZBMESH_TESTS_COMMON_YENC_TEST_ARTICLES_H_
