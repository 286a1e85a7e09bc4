#include "tests/common/yenc/test_articles.h"

#include <random>

#include "absl/strings/str_cat.h"

namespace nzbmesh::yenc::testing {

std::string RandomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(size, '\0');
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    const uint64_t r = rng();
    for (int b = 0; b < 8; ++b) s[i + b] = static_cast<char>(r >> (8 * b));
  }
  for (; i < size; ++i) s[i] = static_cast<char>(rng());
  return s;
}

std::string NntpArticle(absl::string_view data, const EncodeOptions& options) {
  return EncodePart(data, options) + ".\r\n";
}

std::vector<Kernel> SupportedKernels() {
  std::vector<Kernel> out;
  for (Kernel k : {Kernel::kScalar, Kernel::kSse2, Kernel::kSsse3, Kernel::kAvx2,
                   Kernel::kAvx512Vbmi2}) {
    if (KernelSupported(k)) out.push_back(k);
  }
  return out;
}

DecodeOutcome Decode(absl::string_view in, Kernel kernel, ArticleDecoder::Mode mode,
                     const std::vector<size_t>& chunks, int64_t max_decoded_bytes) {
  ArticleDecoder::Options options;
  options.mode = mode;
  options.kernel = kernel;
  options.max_decoded_bytes = max_decoded_bytes;
  ArticleDecoder decoder(options);
  DecodeOutcome o;
  std::string buf;
  size_t pos = 0;
  size_t next_chunk = 0;
  while (pos < in.size() && !decoder.done()) {
    size_t len = in.size() - pos;
    if (!chunks.empty()) {
      len = std::min(len, std::max<size_t>(1, chunks[next_chunk++ % chunks.size()]));
    }
    buf.assign(len, '\xAA');
    absl::StatusOr<ArticleDecoder::FeedResult> r = decoder.Feed(in.substr(pos, len), buf.data(), len);
    if (!r.ok()) {
      o.feed_status = r.status();
      break;
    }
    o.output.append(buf.data(), r->produced);
    pos += r->consumed;
    if (r->consumed < len && !decoder.done()) {
      o.feed_status = absl::InternalError("Feed left input unconsumed before done()");
      break;
    }
  }
  o.consumed = pos;
  o.done = decoder.done();
  o.saw_header = decoder.saw_header();
  o.saw_trailer = decoder.saw_trailer();
  o.verify_status = decoder.Verify();
  o.crc = decoder.crc32();
  o.header = decoder.header();
  o.trailer = decoder.trailer();
  return o;
}

std::string Diff(const DecodeOutcome& want, const DecodeOutcome& got) {
  if (want.feed_status != got.feed_status) {
    return absl::StrCat("feed status '", want.feed_status.ToString(), "' vs '",
                        got.feed_status.ToString(), "'");
  }
  // After an error, how much output was handed back depends on the chunking.
  if (!want.feed_status.ok()) return "";
  if (want.output != got.output) {
    size_t i = 0;
    while (i < want.output.size() && i < got.output.size() && want.output[i] == got.output[i]) ++i;
    return absl::StrCat("output differs at byte ", i, " (sizes ", want.output.size(), " vs ",
                        got.output.size(), ")");
  }
  if (want.consumed != got.consumed) {
    return absl::StrCat("consumed ", want.consumed, " vs ", got.consumed);
  }
  if (want.done != got.done) return absl::StrCat("done ", want.done, " vs ", got.done);
  if (want.saw_header != got.saw_header) return "saw_header differs";
  if (want.saw_trailer != got.saw_trailer) return "saw_trailer differs";
  if (want.verify_status != got.verify_status) {
    return absl::StrCat("verify status '", want.verify_status.ToString(), "' vs '",
                        got.verify_status.ToString(), "'");
  }
  if (want.crc != got.crc) return "crc differs";
  return "";
}

}  // namespace nzbmesh::yenc::testing
