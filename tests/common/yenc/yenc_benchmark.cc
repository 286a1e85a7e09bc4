// bazel run -c opt //tests/common/yenc:yenc_benchmark
//
// Bytes/s are decoded (output) bytes. The article is realistic: 768,000
// random bytes, 128-column lines, dot-stuffed NNTP body with =ybegin/=ypart/
// =yend and the "." terminator.
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/yenc/decode_kernels.h"
#include "common/yenc/yenc.h"
#include "tests/common/yenc/test_articles.h"

namespace nzbmesh::yenc {
namespace {

constexpr size_t kPartSize = 768000;

struct Article {
  std::string data;
  std::string body;   // NNTP BODY payload
  std::string lines;  // just the yEnc data lines
};

const Article& GetArticle() {
  static const Article* article = [] {
    auto* a = new Article;
    a->data = testing::RandomBytes(kPartSize, 2024);
    EncodeOptions o;
    o.name = "benchmark.bin";
    o.part = 1;
    o.total = 10;
    o.file_size = 10 * kPartSize;
    o.begin = 1;
    o.line_length = 128;
    o.dot_stuff = true;
    a->body = testing::NntpArticle(a->data, o);
    const size_t start = a->body.find("=ypart");
    const size_t data_start = a->body.find('\n', start) + 1;
    const size_t data_end = a->body.find("\r\n=yend") + 2;
    a->lines = a->body.substr(data_start, data_end - data_start);
    return a;
  }();
  return *article;
}

bool Skip(benchmark::State& state, Kernel k) {
  if (KernelSupported(k)) return false;
  state.SkipWithError("kernel not supported on this CPU");
  return true;
}

// The kernel alone over the data lines, optionally followed by CRC32.
void BM_Kernel(benchmark::State& state, Kernel k, bool crc) {
  if (Skip(state, k)) return;
  const Article& a = GetArticle();
  const internal::DecodeFn fn = internal::GetKernel(k, /*nntp=*/true);
  std::string out(a.lines.size() + 64, '\0');
  for (auto _ : state) {
    internal::LineState st = internal::LineState::kLineStart;
    const internal::KernelResult r =
        fn(reinterpret_cast<const uint8_t*>(a.lines.data()), a.lines.size(),
           reinterpret_cast<uint8_t*>(out.data()), &st);
    uint32_t c = 0;
    if (crc) c = Crc32Update(0, out.data(), r.produced);
    benchmark::DoNotOptimize(c);
    benchmark::DoNotOptimize(r);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kPartSize);
}

// The whole article through ArticleDecoder (header/trailer parsing, CRC,
// Verify), fed in `chunk`-byte reads (0 = all at once).
void BM_Article(benchmark::State& state, Kernel k) {
  if (Skip(state, k)) return;
  const Article& a = GetArticle();
  const size_t chunk = static_cast<size_t>(state.range(0));
  ArticleDecoder::Options options;
  options.kernel = k;
  ArticleDecoder decoder(options);
  std::string out(chunk == 0 ? a.body.size() : chunk, '\0');
  for (auto _ : state) {
    decoder.Reset();
    size_t pos = 0;
    while (!decoder.done()) {
      const absl::string_view piece = absl::string_view(a.body).substr(pos, chunk == 0 ? a.body.size() : chunk);
      absl::StatusOr<ArticleDecoder::FeedResult> r = decoder.Feed(piece, out.data(), out.size());
      if (!r.ok()) {
        state.SkipWithError("decode failed");
        return;
      }
      pos += r->consumed;
    }
    if (!decoder.Verify().ok()) {
      state.SkipWithError("verify failed");
      return;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kPartSize);
}

void BM_Crc32(benchmark::State& state) {
  const Article& a = GetArticle();
  for (auto _ : state) benchmark::DoNotOptimize(Crc32Update(0, a.data.data(), a.data.size()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kPartSize);
}

void BM_Encode(benchmark::State& state) {
  const Article& a = GetArticle();
  EncodeOptions o;
  o.name = "benchmark.bin";
  o.part = 1;
  for (auto _ : state) benchmark::DoNotOptimize(EncodePart(a.data, o));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kPartSize);
}

#define NZB_KERNEL_BENCHMARKS(kernel, label)                                   \
  BENCHMARK_CAPTURE(BM_Kernel, label##_nocrc, kernel, false);                  \
  BENCHMARK_CAPTURE(BM_Kernel, label##_crc, kernel, true);                     \
  BENCHMARK_CAPTURE(BM_Article, label, kernel)->Arg(65536)

NZB_KERNEL_BENCHMARKS(Kernel::kScalar, scalar);
NZB_KERNEL_BENCHMARKS(Kernel::kSse2, sse2);
NZB_KERNEL_BENCHMARKS(Kernel::kSsse3, ssse3);
NZB_KERNEL_BENCHMARKS(Kernel::kAvx2, avx2);
NZB_KERNEL_BENCHMARKS(Kernel::kAvx512Vbmi2, avx512vbmi2);
BENCHMARK_CAPTURE(BM_Article, auto, Kernel::kAuto)->Arg(0)->Arg(16384)->Arg(65536);
BENCHMARK(BM_Crc32);
BENCHMARK(BM_Encode);

}  // namespace
}  // namespace nzbmesh::yenc
