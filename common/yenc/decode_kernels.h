// Internal to //common/yenc:codec (and its tests and benchmarks): the
// data-section decode kernels.
//
// A kernel decodes yEnc data lines until the input ends or a line starts with
// "=y" (end of data) or, in NNTP mode, with "." followed by CR/LF (end of the
// article). All kernels implement exactly the state machine of DecodeScalar;
// the SIMD kernels decide a whole block at once and hand any block they cannot
// decide (consecutive '=', a stop, a line-start '.'/'=' in the last lane) to
// DecodeScalar.
#ifndef NZBMESH_COMMON_YENC_DECODE_KERNELS_H_
#define NZBMESH_COMMON_YENC_DECODE_KERNELS_H_

#include <cstddef>
#include <cstdint>

#include "common/yenc/yenc.h"

namespace nzbmesh::yenc::internal {

// Carry state between bytes (and so between chunks).
enum class LineState : uint8_t {
  kMid,           // inside a line
  kEscape,        // the previous byte was an escaping '='
  kLineStart,     // the previous byte was LF
  kLineStartDot,  // the line began with '.'; the next byte decides (NNTP only)
  kLineStartEq,   // the line began with '='; "=y" ends the data
};

enum class Stop : uint8_t {
  kNone,      // all input consumed
  kYLine,     // a line starts "=y": '=' consumed, 'y' is the next input byte
  kDotLine,   // a line starts "." + CR/LF: '.' consumed, CR/LF is next
};

struct KernelResult {
  size_t consumed;
  size_t produced;
  Stop stop;
};

// Decodes in[0, n) into out (room for n bytes). On a stop, *state is
// undefined; the caller restarts at kLineStart after handling the line.
using DecodeFn = KernelResult (*)(const uint8_t* in, size_t n, uint8_t* out, LineState* state);

// The kernel for `k` (must be supported, not kAuto) and mode.
DecodeFn GetKernel(Kernel k, bool nntp);
// The best kernel this CPU supports.
Kernel BestKernel();

#define NZB_YENC_INLINE inline __attribute__((always_inline))

// The reference: one byte at a time.
template <bool kNntp>
NZB_YENC_INLINE KernelResult DecodeScalar(const uint8_t* in, size_t n, uint8_t* out,
                                          LineState* state) {
  size_t i = 0;
  size_t o = 0;
  LineState st = *state;
  while (i < n) {
    uint8_t c = in[i];
    switch (st) {
      case LineState::kMid:
        for (;;) {
          if (c == '=') {
            st = LineState::kEscape;
            ++i;
            break;
          }
          if (c == '\n') {
            st = LineState::kLineStart;
            ++i;
            break;
          }
          out[o] = static_cast<uint8_t>(c - 42);
          o += (c != '\r');
          if (++i == n) break;
          c = in[i];
        }
        break;
      case LineState::kEscape:
        if (c == '\n') {
          st = LineState::kLineStart;
        } else {
          if (c != '\r') out[o++] = static_cast<uint8_t>(c - 106);
          st = LineState::kMid;
        }
        ++i;
        break;
      case LineState::kLineStart:
        if (c == '\n') {
          ++i;
        } else if (c == '\r') {
          ++i;
          st = LineState::kMid;
        } else if (c == '=') {
          ++i;
          st = LineState::kLineStartEq;
        } else if (kNntp && c == '.') {
          ++i;
          st = LineState::kLineStartDot;
        } else {
          st = LineState::kMid;  // re-read c as data
        }
        break;
      case LineState::kLineStartEq:
        if (c == 'y') {
          *state = st;
          return {i, o, Stop::kYLine};
        }
        st = LineState::kEscape;  // an ordinary escape; re-read c
        break;
      case LineState::kLineStartDot:
        if (c == '\r' || c == '\n') {
          *state = st;
          return {i, o, Stop::kDotLine};
        }
        out[o++] = static_cast<uint8_t>('.' - 42);
        st = LineState::kMid;
        if (c == '.') ++i;  // ".." -> "."; otherwise re-read c
        break;
    }
  }
  *state = st;
  return {i, o, Stop::kNone};
}

// A SIMD block of W bytes, described by bit masks (bit j = byte j).
struct BlockPlan {
  uint64_t keep;     // bytes that produce output
  uint64_t escaped;  // bytes after an escaping '=' (get an extra -64)
  LineState next;    // state after the block
};

// Decides a block entered in state `st` (kMid, kEscape or kLineStart). Returns
// false when the block must go to DecodeScalar.
template <int W, bool kNntp>
NZB_YENC_INLINE bool PlanBlock(uint64_t eq, uint64_t cr, uint64_t lf, uint64_t dot, uint64_t y,
                               LineState st, BlockPlan* plan) {
  constexpr uint64_t kAll = W == 64 ? ~uint64_t{0} : (uint64_t{1} << W) - 1;
  constexpr uint64_t kTop = uint64_t{1} << (W - 1);
  const uint64_t escaped = ((eq << 1) & kAll) | static_cast<uint64_t>(st == LineState::kEscape);
  if (eq & escaped) return false;  // "==": parity of runs; rare, scalar
  const uint64_t line_start =
      ((lf << 1) & kAll) | static_cast<uint64_t>(st == LineState::kLineStart);
  uint64_t drop = eq | cr | lf;
  const uint64_t ls_eq = line_start & eq;
  const uint64_t ls_dot = kNntp ? line_start & dot : 0;
  if (ls_eq | ls_dot) {
    if ((ls_eq | ls_dot) & kTop) return false;          // next byte not in block
    if ((ls_eq << 1) & y) return false;                  // "=y": end of data
    if ((ls_dot << 1) & (cr | lf)) return false;         // ".\r": end of article
    drop |= ls_dot & (dot >> 1);                         // "..": drop the first
  }
  plan->keep = ~drop & kAll;
  plan->escaped = escaped;
  plan->next = (eq & kTop)   ? LineState::kEscape
               : (lf & kTop) ? LineState::kLineStart
                             : LineState::kMid;
  return true;
}

}  // namespace nzbmesh::yenc::internal

#endif  // NZBMESH_COMMON_YENC_DECODE_KERNELS_H_
