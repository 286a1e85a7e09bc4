// CRC32 (IEEE 802.3, reflected, as zlib and yEnc use it).
#include <isa-l/crc.h>

#include <array>
#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common/yenc/yenc.h"

namespace nzbmesh::yenc {
namespace {

constexpr uint32_t kPolyReflected = 0xedb88320u;

// Product of two polynomials modulo the CRC polynomial, in the reflected bit
// order CRCs use (bit 31 is x^0).
constexpr uint32_t MulModP(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (uint32_t bit = 0x80000000u; bit != 0; bit >>= 1) {
    if (a & bit) product ^= b;
    b = (b & 1) ? (b >> 1) ^ kPolyReflected : b >> 1;  // b *= x
  }
  return product;
}

// kXPow2k[k] = x^(2^k) mod P.
constexpr std::array<uint32_t, 64> MakePowerTable() {
  std::array<uint32_t, 64> table{};
  table[0] = 0x40000000u;  // x^1
  for (size_t k = 1; k < table.size(); ++k) table[k] = MulModP(table[k - 1], table[k - 1]);
  return table;
}
constexpr std::array<uint32_t, 64> kXPow2k = MakePowerTable();

// x^(8 * bytes) mod P by square-and-multiply over the bits of `bytes`.
uint32_t XPowBytes(uint64_t bytes) {
  uint32_t result = 0x80000000u;  // x^0
  for (size_t k = 3; bytes != 0; bytes >>= 1, ++k) {
    if (bytes & 1) result = MulModP(kXPow2k[k], result);
  }
  return result;
}

#if defined(__x86_64__)
// ISA-L's AVX-512 CRC returns with the upper vector state dirty; legacy-SSE
// code that runs next (the SSE2/SSSE3 kernels, libc) then pays a transition
// penalty on every instruction. vzeroupper clears it.
__attribute__((target("avx"))) void ZeroUpper() { _mm256_zeroupper(); }
const bool kHasAvx = __builtin_cpu_supports("avx");
#endif

}  // namespace

uint32_t Crc32Update(uint32_t crc, const void* data, size_t len) {
  if (len == 0) return crc;
  crc = crc32_gzip_refl(crc, static_cast<const unsigned char*>(data), len);
#if defined(__x86_64__)
  if (kHasAvx) ZeroUpper();
#endif
  return crc;
}

// CRC(A||B) = CRC(A) * x^(8|B|) xor CRC(B) (the pre/post conditioning
// cancels out), so only the shift of crc1 by len2 zero bytes is needed.
uint32_t Crc32Combine(uint32_t crc1, uint32_t crc2, int64_t len2) {
  if (len2 <= 0) return crc1;
  return MulModP(XPowBytes(static_cast<uint64_t>(len2)), crc1) ^ crc2;
}

}  // namespace nzbmesh::yenc
