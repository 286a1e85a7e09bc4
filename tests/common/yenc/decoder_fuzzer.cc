// Fuzz target: every kernel, with chunkings derived from the input, must match
// the scalar kernel fed the whole input, and nothing may crash.
//
// Input layout: byte 0 = flags (bit 0: prepend a =ybegin line so the data
// path is reached; bit 1: raw mode instead of NNTP), byte 1 = chunking seed,
// the rest is the body.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/yenc/yenc.h"
#include "tests/common/yenc/test_articles.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using nzbmesh::yenc::ArticleDecoder;
  using nzbmesh::yenc::Kernel;
  namespace t = nzbmesh::yenc::testing;
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  uint32_t seed = data[1] * 2654435761u + 1;
  std::string in;
  if (flags & 1) in = "=ybegin line=128 size=10 name=fuzz\r\n";
  in.append(reinterpret_cast<const char*>(data) + 2, size - 2);
  const ArticleDecoder::Mode mode =
      (flags & 2) ? ArticleDecoder::Mode::kRaw : ArticleDecoder::Mode::kNntp;
  std::vector<size_t> chunks;
  for (int i = 0; i < 5; ++i) {
    seed = seed * 1664525u + 1013904223u;
    chunks.push_back(1 + (seed >> 16) % 150);
  }
  static const std::vector<Kernel> kernels = t::SupportedKernels();
  const t::DecodeOutcome want = t::Decode(in, Kernel::kScalar, mode);
  for (Kernel k : kernels) {
    for (const std::vector<size_t>& c : {std::vector<size_t>{}, chunks}) {
      const std::string diff = t::Diff(want, t::Decode(in, k, mode, c));
      if (!diff.empty()) {
        std::fprintf(stderr, "kernel %s disagrees with scalar: %s\n",
                     nzbmesh::yenc::KernelName(k).c_str(), diff.c_str());
        std::abort();
      }
    }
  }
  return 0;
}
