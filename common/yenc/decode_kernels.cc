#include "common/yenc/decode_kernels.h"

#include <array>
#include <cstdint>
#include <string>

#if defined(__x86_64__)
#include <immintrin.h>
#define NZB_YENC_X86 1
#else
#define NZB_YENC_X86 0
#endif

namespace nzbmesh::yenc::internal {
namespace {

template <bool kNntp>
KernelResult ScalarKernel(const uint8_t* in, size_t n, uint8_t* out, LineState* state) {
  return DecodeScalar<kNntp>(in, n, out, state);
}

#if NZB_YENC_X86

// Moves a SIMD kernel past a kLineStartDot/kLineStartEq state (one byte) or
// an undecidable block (`len` bytes) with the scalar reference. Returns true
// when the scalar code hit a stop.
template <bool kNntp>
NZB_YENC_INLINE bool ScalarStep(const uint8_t* in, size_t len, uint8_t* out, size_t* i,
                                size_t* o, LineState* st, Stop* stop) {
  const KernelResult r = DecodeScalar<kNntp>(in + *i, len, out + *o, st);
  *i += r.consumed;
  *o += r.produced;
  *stop = r.stop;
  return r.stop != Stop::kNone;
}

NZB_YENC_INLINE bool NeedsOneScalarByte(LineState st) {
  return st == LineState::kLineStartDot || st == LineState::kLineStartEq;
}

// kCompact8[m]: pshufb indices that gather the bytes whose bit is set in m to
// the front of an 8-byte group; unused lanes are 0x80 (zero).
constexpr std::array<uint64_t, 256> MakeCompactTable() {
  std::array<uint64_t, 256> table{};
  for (int m = 0; m < 256; ++m) {
    uint64_t entry = 0;
    int k = 0;
    for (int bit = 0; bit < 8; ++bit) {
      if (m & (1 << bit)) entry |= static_cast<uint64_t>(bit) << (8 * k++);
    }
    for (; k < 8; ++k) entry |= uint64_t{0x80} << (8 * k);
    table[m] = entry;
  }
  return table;
}
constexpr std::array<uint64_t, 256> kCompact8 = MakeCompactTable();
constexpr uint64_t kHighGroup = 0x0808080808080808ULL;  // indices of bytes 8..15

// ---- SSE2: 16-byte blocks; no byte shuffle, so the compaction is a short
// branchless store loop. ----------------------------------------------------

template <bool kNntp>
__attribute__((target("sse2"))) KernelResult Sse2Kernel(const uint8_t* in, size_t n, uint8_t* out,
                                                        LineState* state) {
  size_t i = 0;
  size_t o = 0;
  LineState st = *state;
  Stop stop = Stop::kNone;
  const __m128i v_eq = _mm_set1_epi8('=');
  const __m128i v_cr = _mm_set1_epi8('\r');
  const __m128i v_lf = _mm_set1_epi8('\n');
  const __m128i v_dot = _mm_set1_epi8('.');
  const __m128i v_y = _mm_set1_epi8('y');
  const __m128i v_42 = _mm_set1_epi8(42);
  const __m128i v_64 = _mm_set1_epi8(64);
  alignas(16) uint8_t tmp[16];
  while (n - i >= 16) {
    if (NeedsOneScalarByte(st)) {
      if (ScalarStep<kNntp>(in, 1, out, &i, &o, &st, &stop)) return {i, o, stop};
      continue;
    }
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    const __m128i eqv = _mm_cmpeq_epi8(v, v_eq);
    const uint64_t eq = static_cast<uint32_t>(_mm_movemask_epi8(eqv));
    const uint64_t cr = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, v_cr)));
    const uint64_t lf = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, v_lf)));
    __m128i t = _mm_sub_epi8(v, v_42);
    if (st == LineState::kMid && (eq | cr | lf) == 0) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + o), t);
      i += 16;
      o += 16;
      continue;
    }
    const uint64_t dot =
        kNntp ? static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, v_dot))) : 0;
    const uint64_t y = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, v_y)));
    BlockPlan plan;
    if (!PlanBlock<16, kNntp>(eq, cr, lf, dot, y, st, &plan)) {
      if (ScalarStep<kNntp>(in, 16, out, &i, &o, &st, &stop)) return {i, o, stop};
      continue;
    }
    // The plan guarantees no "==", so the escaped bytes are exactly the bytes
    // after a '=' (plus byte 0 when a '=' ended the previous block).
    __m128i esc = _mm_slli_si128(eqv, 1);
    if (st == LineState::kEscape) esc = _mm_or_si128(esc, _mm_cvtsi32_si128(0xff));
    t = _mm_sub_epi8(t, _mm_and_si128(esc, v_64));
    _mm_store_si128(reinterpret_cast<__m128i*>(tmp), t);
    uint8_t* dst = out + o;
    uint32_t keep = static_cast<uint32_t>(plan.keep);
    size_t k = 0;
    for (int j = 0; j < 16; ++j) {
      dst[k] = tmp[j];
      k += keep & 1;
      keep >>= 1;
    }
    o += k;
    st = plan.next;
    i += 16;
  }
  if (ScalarStep<kNntp>(in, n - i, out, &i, &o, &st, &stop)) return {i, o, stop};
  *state = st;
  return {i, o, Stop::kNone};
}

// ---- SSSE3: 16-byte blocks, pshufb compaction per 8-byte group. -----------

template <bool kNntp>
__attribute__((target("ssse3,popcnt"))) KernelResult Ssse3Kernel(const uint8_t* in, size_t n,
                                                                 uint8_t* out, LineState* state) {
  size_t i = 0;
  size_t o = 0;
  LineState st = *state;
  Stop stop = Stop::kNone;
  const __m128i v_eq = _mm_set1_epi8('=');
  const __m128i v_cr = _mm_set1_epi8('\r');
  const __m128i v_lf = _mm_set1_epi8('\n');
  const __m128i v_dot = _mm_set1_epi8('.');
  const __m128i v_y = _mm_set1_epi8('y');
  const __m128i v_42 = _mm_set1_epi8(42);
  const __m128i v_64 = _mm_set1_epi8(64);
  const __m128i spread = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m128i bits = _mm_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
  while (n - i >= 16) {
    if (NeedsOneScalarByte(st)) {
      if (ScalarStep<kNntp>(in, 1, out, &i, &o, &st, &stop)) return {i, o, stop};
      continue;
    }
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    const uint64_t eq = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, v_eq)));
    const uint64_t cr = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, v_cr)));
    const uint64_t lf = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, v_lf)));
    __m128i t = _mm_sub_epi8(v, v_42);
    if (st == LineState::kMid && (eq | cr | lf) == 0) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + o), t);
      i += 16;
      o += 16;
      continue;
    }
    const uint64_t dot =
        kNntp ? static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, v_dot))) : 0;
    const uint64_t y = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, v_y)));
    BlockPlan plan;
    if (!PlanBlock<16, kNntp>(eq, cr, lf, dot, y, st, &plan)) {
      if (ScalarStep<kNntp>(in, 16, out, &i, &o, &st, &stop)) return {i, o, stop};
      continue;
    }
    if (plan.escaped) {
      const __m128i m = _mm_shuffle_epi8(_mm_set1_epi32(static_cast<int>(plan.escaped)), spread);
      const __m128i esc = _mm_cmpeq_epi8(_mm_and_si128(m, bits), bits);
      t = _mm_sub_epi8(t, _mm_and_si128(esc, v_64));
    }
    const unsigned k0 = plan.keep & 0xff;
    const unsigned k1 = (plan.keep >> 8) & 0xff;
    const __m128i shuf = _mm_set_epi64x(static_cast<long long>(kCompact8[k1] + kHighGroup),
                                        static_cast<long long>(kCompact8[k0]));
    const __m128i r = _mm_shuffle_epi8(t, shuf);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + o), r);
    o += __builtin_popcount(k0);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + o), _mm_unpackhi_epi64(r, r));
    o += __builtin_popcount(k1);
    st = plan.next;
    i += 16;
  }
  if (ScalarStep<kNntp>(in, n - i, out, &i, &o, &st, &stop)) return {i, o, stop};
  *state = st;
  return {i, o, Stop::kNone};
}

// ---- AVX2: 32-byte blocks, pshufb compaction per 8-byte group. ------------

template <bool kNntp>
__attribute__((target("avx2,popcnt"))) KernelResult Avx2Kernel(const uint8_t* in, size_t n,
                                                               uint8_t* out, LineState* state) {
  size_t i = 0;
  size_t o = 0;
  LineState st = *state;
  Stop stop = Stop::kNone;
  const __m256i v_eq = _mm256_set1_epi8('=');
  const __m256i v_cr = _mm256_set1_epi8('\r');
  const __m256i v_lf = _mm256_set1_epi8('\n');
  const __m256i v_dot = _mm256_set1_epi8('.');
  const __m256i v_y = _mm256_set1_epi8('y');
  const __m256i v_42 = _mm256_set1_epi8(42);
  const __m256i v_64 = _mm256_set1_epi8(64);
  const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bits = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
  while (n - i >= 32) {
    if (NeedsOneScalarByte(st)) {
      if (ScalarStep<kNntp>(in, 1, out, &i, &o, &st, &stop)) return {i, o, stop};
      continue;
    }
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i));
    const uint64_t eq = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, v_eq)));
    const uint64_t cr = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, v_cr)));
    const uint64_t lf = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, v_lf)));
    __m256i t = _mm256_sub_epi8(v, v_42);
    if (st == LineState::kMid && (eq | cr | lf) == 0) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + o), t);
      i += 32;
      o += 32;
      continue;
    }
    const uint64_t dot =
        kNntp ? static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, v_dot))) : 0;
    const uint64_t y = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, v_y)));
    BlockPlan plan;
    if (!PlanBlock<32, kNntp>(eq, cr, lf, dot, y, st, &plan)) {
      if (ScalarStep<kNntp>(in, 32, out, &i, &o, &st, &stop)) return {i, o, stop};
      continue;
    }
    if (plan.escaped) {
      const __m256i m =
          _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(plan.escaped)), spread);
      const __m256i esc = _mm256_cmpeq_epi8(_mm256_and_si256(m, bits), bits);
      t = _mm256_sub_epi8(t, _mm256_and_si256(esc, v_64));
    }
    const uint64_t keep = plan.keep;
    const unsigned k0 = keep & 0xff;
    const unsigned k1 = (keep >> 8) & 0xff;
    const unsigned k2 = (keep >> 16) & 0xff;
    const unsigned k3 = (keep >> 24) & 0xff;
    const __m256i shuf = _mm256_set_epi64x(static_cast<long long>(kCompact8[k3] + kHighGroup),
                                           static_cast<long long>(kCompact8[k2]),
                                           static_cast<long long>(kCompact8[k1] + kHighGroup),
                                           static_cast<long long>(kCompact8[k0]));
    const __m256i r = _mm256_shuffle_epi8(t, shuf);
    const __m128i lo = _mm256_castsi256_si128(r);
    const __m128i hi = _mm256_extracti128_si256(r, 1);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + o), lo);
    o += __builtin_popcount(k0);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + o), _mm_unpackhi_epi64(lo, lo));
    o += __builtin_popcount(k1);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + o), hi);
    o += __builtin_popcount(k2);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + o), _mm_unpackhi_epi64(hi, hi));
    o += __builtin_popcount(k3);
    st = plan.next;
    i += 32;
  }
  if (ScalarStep<kNntp>(in, n - i, out, &i, &o, &st, &stop)) return {i, o, stop};
  *state = st;
  return {i, o, Stop::kNone};
}

// ---- AVX-512 VBMI2: 64-byte blocks, vpcompressb into a register. ----------
// The compress goes to a register and then a plain store: the memory form
// (vpcompressb m512) is microcoded on Zen 4 and several times slower.

template <bool kNntp>
__attribute__((target("avx512f,avx512bw,avx512vbmi2,popcnt"))) KernelResult Avx512Kernel(
    const uint8_t* in, size_t n, uint8_t* out, LineState* state) {
  size_t i = 0;
  size_t o = 0;
  LineState st = *state;
  Stop stop = Stop::kNone;
  const __m512i v_eq = _mm512_set1_epi8('=');
  const __m512i v_cr = _mm512_set1_epi8('\r');
  const __m512i v_lf = _mm512_set1_epi8('\n');
  const __m512i v_dot = _mm512_set1_epi8('.');
  const __m512i v_y = _mm512_set1_epi8('y');
  const __m512i v_42 = _mm512_set1_epi8(42);
  const __m512i v_64 = _mm512_set1_epi8(64);
  while (n - i >= 64) {
    if (NeedsOneScalarByte(st)) {
      if (ScalarStep<kNntp>(in, 1, out, &i, &o, &st, &stop)) return {i, o, stop};
      continue;
    }
    const __m512i v = _mm512_loadu_si512(in + i);
    const uint64_t eq = _mm512_cmpeq_epi8_mask(v, v_eq);
    const uint64_t cr = _mm512_cmpeq_epi8_mask(v, v_cr);
    const uint64_t lf = _mm512_cmpeq_epi8_mask(v, v_lf);
    const __m512i t = _mm512_sub_epi8(v, v_42);
    if (st == LineState::kMid && (eq | cr | lf) == 0) {
      _mm512_storeu_si512(out + o, t);
      i += 64;
      o += 64;
      continue;
    }
    const uint64_t dot = kNntp ? _mm512_cmpeq_epi8_mask(v, v_dot) : 0;
    const uint64_t y = _mm512_cmpeq_epi8_mask(v, v_y);
    BlockPlan plan;
    if (!PlanBlock<64, kNntp>(eq, cr, lf, dot, y, st, &plan)) {
      if (ScalarStep<kNntp>(in, 64, out, &i, &o, &st, &stop)) return {i, o, stop};
      continue;
    }
    const __m512i d = _mm512_mask_sub_epi8(t, plan.escaped, t, v_64);
    _mm512_storeu_si512(out + o, _mm512_maskz_compress_epi8(plan.keep, d));
    o += __builtin_popcountll(plan.keep);
    st = plan.next;
    i += 64;
  }
  if (ScalarStep<kNntp>(in, n - i, out, &i, &o, &st, &stop)) return {i, o, stop};
  *state = st;
  return {i, o, Stop::kNone};
}

#endif  // NZB_YENC_X86

}  // namespace

DecodeFn GetKernel(Kernel k, bool nntp) {
  switch (k) {
#if NZB_YENC_X86
    case Kernel::kSse2:
      return nntp ? &Sse2Kernel<true> : &Sse2Kernel<false>;
    case Kernel::kSsse3:
      return nntp ? &Ssse3Kernel<true> : &Ssse3Kernel<false>;
    case Kernel::kAvx2:
      return nntp ? &Avx2Kernel<true> : &Avx2Kernel<false>;
    case Kernel::kAvx512Vbmi2:
      return nntp ? &Avx512Kernel<true> : &Avx512Kernel<false>;
#endif
    default:
      return nntp ? &ScalarKernel<true> : &ScalarKernel<false>;
  }
}

Kernel BestKernel() {
  for (Kernel k : {Kernel::kAvx512Vbmi2, Kernel::kAvx2, Kernel::kSsse3, Kernel::kSse2}) {
    if (KernelSupported(k)) return k;
  }
  return Kernel::kScalar;
}

}  // namespace nzbmesh::yenc::internal

namespace nzbmesh::yenc {

bool KernelSupported(Kernel k) {
  switch (k) {
    case Kernel::kAuto:
    case Kernel::kScalar:
      return true;
#if NZB_YENC_X86
    case Kernel::kSse2:
      return __builtin_cpu_supports("sse2");
    case Kernel::kSsse3:
      return __builtin_cpu_supports("ssse3") && __builtin_cpu_supports("popcnt");
    case Kernel::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
    case Kernel::kAvx512Vbmi2:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vbmi2") && __builtin_cpu_supports("popcnt");
#else
    default:
      return false;
#endif
  }
  return false;
}

std::string KernelName(Kernel k) {
  switch (k) {
    case Kernel::kAuto:
      return "auto";
    case Kernel::kScalar:
      return "scalar";
    case Kernel::kSse2:
      return "sse2";
    case Kernel::kSsse3:
      return "ssse3";
    case Kernel::kAvx2:
      return "avx2";
    case Kernel::kAvx512Vbmi2:
      return "avx512vbmi2";
  }
  return "unknown";
}

}  // namespace nzbmesh::yenc
