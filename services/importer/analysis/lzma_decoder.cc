#include "services/importer/analysis/lzma_decoder.h"

#include <algorithm>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace nzbmesh::importer {
namespace {

constexpr int kNumBitModelTotalBits = 11;
constexpr uint32_t kBitModelTotal = 1u << kNumBitModelTotalBits;
constexpr int kNumMoveBits = 5;
constexpr uint16_t kProbInit = kBitModelTotal / 2;
constexpr int kNumStates = 12;
constexpr int kNumPosBitsMax = 4;
constexpr int kNumLenToPosStates = 4;
constexpr int kNumAlignBits = 4;
constexpr int kEndPosModelIndex = 14;
constexpr int kNumFullDistances = 1 << (kEndPosModelIndex >> 1);
constexpr int kMatchMinLen = 2;

// Range decoder over an in-memory buffer. Reading past the end sets `overrun`
// (the caller reports DATA_LOSS) instead of reading out of bounds.
class RangeDecoder {
 public:
  explicit RangeDecoder(absl::string_view in) : in_(in) {}

  bool Init() {
    const uint8_t first = NextByte();
    for (int i = 0; i < 4; ++i) code_ = (code_ << 8) | NextByte();
    return first == 0 && code_ != range_;
  }

  bool overrun() const { return overrun_; }
  bool corrupted() const { return corrupted_; }

  uint32_t DecodeDirectBits(int num_bits) {
    uint32_t res = 0;
    do {
      range_ >>= 1;
      code_ -= range_;
      const uint32_t t = 0u - (code_ >> 31);
      code_ += range_ & t;
      if (code_ == range_) corrupted_ = true;
      Normalize();
      res = (res << 1) + (t + 1);
    } while (--num_bits);
    return res;
  }

  unsigned DecodeBit(uint16_t* prob) {
    const uint32_t v = *prob;
    const uint32_t bound = (range_ >> kNumBitModelTotalBits) * v;
    unsigned symbol;
    if (code_ < bound) {
      *prob = static_cast<uint16_t>(v + ((kBitModelTotal - v) >> kNumMoveBits));
      range_ = bound;
      symbol = 0;
    } else {
      *prob = static_cast<uint16_t>(v - (v >> kNumMoveBits));
      code_ -= bound;
      range_ -= bound;
      symbol = 1;
    }
    Normalize();
    return symbol;
  }

 private:
  uint8_t NextByte() {
    if (pos_ >= in_.size()) {
      overrun_ = true;
      return 0;
    }
    return static_cast<uint8_t>(in_[pos_++]);
  }
  void Normalize() {
    if (range_ < (1u << 24)) {
      range_ <<= 8;
      code_ = (code_ << 8) | NextByte();
    }
  }

  absl::string_view in_;
  size_t pos_ = 0;
  uint32_t range_ = 0xFFFFFFFFu;
  uint32_t code_ = 0;
  bool overrun_ = false;
  bool corrupted_ = false;
};

unsigned BitTreeDecode(uint16_t* probs, int num_bits, RangeDecoder* rc) {
  unsigned m = 1;
  for (int i = 0; i < num_bits; ++i) m = (m << 1) + rc->DecodeBit(&probs[m]);
  return m - (1u << num_bits);
}

unsigned BitTreeReverseDecode(uint16_t* probs, int num_bits, RangeDecoder* rc) {
  unsigned m = 1;
  unsigned symbol = 0;
  for (int i = 0; i < num_bits; ++i) {
    const unsigned bit = rc->DecodeBit(&probs[m]);
    m = (m << 1) + bit;
    symbol |= bit << i;
  }
  return symbol;
}

struct LenDecoder {
  uint16_t choice = kProbInit;
  uint16_t choice2 = kProbInit;
  uint16_t low[1 << kNumPosBitsMax][1 << 3];
  uint16_t mid[1 << kNumPosBitsMax][1 << 3];
  uint16_t high[1 << 8];

  LenDecoder() {
    std::fill(&low[0][0], &low[0][0] + sizeof(low) / sizeof(uint16_t), kProbInit);
    std::fill(&mid[0][0], &mid[0][0] + sizeof(mid) / sizeof(uint16_t), kProbInit);
    std::fill(high, high + (1 << 8), kProbInit);
  }

  unsigned Decode(RangeDecoder* rc, unsigned pos_state) {
    if (rc->DecodeBit(&choice) == 0) return BitTreeDecode(low[pos_state], 3, rc);
    if (rc->DecodeBit(&choice2) == 0) return 8 + BitTreeDecode(mid[pos_state], 3, rc);
    return 16 + BitTreeDecode(high, 8, rc);
  }
};

}  // namespace

absl::StatusOr<std::string> LzmaDecode(absl::string_view properties, absl::string_view packed,
                                       uint64_t unpacked_size, uint64_t max_output) {
  if (properties.size() < 5) {
    return absl::InvalidArgumentError("LZMA coder properties are shorter than 5 bytes");
  }
  unsigned d = static_cast<uint8_t>(properties[0]);
  if (d >= 9 * 5 * 5) return absl::InvalidArgumentError("LZMA properties byte is out of range");
  const unsigned lc = d % 9;
  d /= 9;
  const unsigned lp = d % 5;
  const unsigned pb = d / 5;
  if (unpacked_size > max_output) {
    return absl::ResourceExhaustedError(absl::StrCat("LZMA output of ", unpacked_size,
                                                     " bytes exceeds the cap of ", max_output));
  }

  std::string out;
  out.reserve(unpacked_size);
  std::vector<uint16_t> literal_probs(0x300u << (lc + lp), kProbInit);
  uint16_t pos_slot[kNumLenToPosStates][1 << 6];
  uint16_t pos_decoders[1 + kNumFullDistances - kEndPosModelIndex];
  uint16_t align[1 << kNumAlignBits];
  uint16_t is_match[kNumStates << kNumPosBitsMax];
  uint16_t is_rep[kNumStates], is_rep_g0[kNumStates], is_rep_g1[kNumStates], is_rep_g2[kNumStates];
  uint16_t is_rep0_long[kNumStates << kNumPosBitsMax];
  std::fill(&pos_slot[0][0], &pos_slot[0][0] + sizeof(pos_slot) / sizeof(uint16_t), kProbInit);
  std::fill(std::begin(pos_decoders), std::end(pos_decoders), kProbInit);
  std::fill(std::begin(align), std::end(align), kProbInit);
  std::fill(std::begin(is_match), std::end(is_match), kProbInit);
  std::fill(std::begin(is_rep), std::end(is_rep), kProbInit);
  std::fill(std::begin(is_rep_g0), std::end(is_rep_g0), kProbInit);
  std::fill(std::begin(is_rep_g1), std::end(is_rep_g1), kProbInit);
  std::fill(std::begin(is_rep_g2), std::end(is_rep_g2), kProbInit);
  std::fill(std::begin(is_rep0_long), std::end(is_rep0_long), kProbInit);
  LenDecoder len_decoder;
  LenDecoder rep_len_decoder;

  RangeDecoder rc(packed);
  if (!rc.Init()) return absl::DataLossError("LZMA stream has a bad range-coder preamble");

  uint32_t rep0 = 0, rep1 = 0, rep2 = 0, rep3 = 0;
  unsigned state = 0;
  const auto corrupt = [] { return absl::DataLossError("LZMA stream is corrupt"); };

  while (out.size() < unpacked_size) {
    if (rc.overrun() || rc.corrupted()) return corrupt();
    const unsigned pos_state = out.size() & ((1u << pb) - 1);
    if (rc.DecodeBit(&is_match[(state << kNumPosBitsMax) + pos_state]) == 0) {
      const unsigned prev = out.empty() ? 0 : static_cast<uint8_t>(out.back());
      const unsigned lit_state =
          ((out.size() & ((1u << lp) - 1)) << lc) + (prev >> (8 - lc));
      uint16_t* probs = &literal_probs[0x300u * lit_state];
      unsigned symbol = 1;
      if (state >= 7) {
        if (rep0 >= out.size()) return corrupt();
        unsigned match_byte = static_cast<uint8_t>(out[out.size() - rep0 - 1]);
        do {
          const unsigned match_bit = (match_byte >> 7) & 1;
          match_byte <<= 1;
          const unsigned bit = rc.DecodeBit(&probs[((1 + match_bit) << 8) + symbol]);
          symbol = (symbol << 1) | bit;
          if (match_bit != bit) break;
        } while (symbol < 0x100);
      }
      while (symbol < 0x100) symbol = (symbol << 1) | rc.DecodeBit(&probs[symbol]);
      out.push_back(static_cast<char>(symbol - 0x100));
      state = state < 4 ? 0 : (state < 10 ? state - 3 : state - 6);
      continue;
    }
    unsigned len;
    if (rc.DecodeBit(&is_rep[state]) != 0) {
      if (out.empty()) return corrupt();
      if (rc.DecodeBit(&is_rep_g0[state]) == 0) {
        if (rc.DecodeBit(&is_rep0_long[(state << kNumPosBitsMax) + pos_state]) == 0) {
          state = state < 7 ? 9 : 11;
          if (rep0 >= out.size()) return corrupt();
          out.push_back(out[out.size() - rep0 - 1]);
          continue;
        }
      } else {
        uint32_t dist;
        if (rc.DecodeBit(&is_rep_g1[state]) == 0) {
          dist = rep1;
        } else {
          if (rc.DecodeBit(&is_rep_g2[state]) == 0) {
            dist = rep2;
          } else {
            dist = rep3;
            rep3 = rep2;
          }
          rep2 = rep1;
        }
        rep1 = rep0;
        rep0 = dist;
      }
      len = rep_len_decoder.Decode(&rc, pos_state);
      state = state < 7 ? 8 : 11;
    } else {
      rep3 = rep2;
      rep2 = rep1;
      rep1 = rep0;
      len = len_decoder.Decode(&rc, pos_state);
      state = state < 7 ? 7 : 10;
      // Distance.
      const unsigned len_state = std::min(len, 3u);
      const unsigned slot = BitTreeDecode(pos_slot[len_state], 6, &rc);
      if (slot < 4) {
        rep0 = slot;
      } else {
        const int direct = static_cast<int>(slot >> 1) - 1;
        uint32_t dist = (2 | (slot & 1)) << direct;
        if (slot < kEndPosModelIndex) {
          dist += BitTreeReverseDecode(pos_decoders + dist - slot, direct, &rc);
        } else {
          dist += rc.DecodeDirectBits(direct - kNumAlignBits) << kNumAlignBits;
          dist += BitTreeReverseDecode(align, kNumAlignBits, &rc);
        }
        rep0 = dist;
      }
      if (rep0 == 0xFFFFFFFFu) break;  // End marker.
    }
    len += kMatchMinLen;
    if (rep0 >= out.size()) return corrupt();
    for (unsigned i = 0; i < len && out.size() < unpacked_size; ++i) {
      out.push_back(out[out.size() - rep0 - 1]);
    }
  }
  if (out.size() != unpacked_size || rc.corrupted()) {
    return absl::DataLossError(absl::StrCat("LZMA stream ended after ", out.size(), " of ",
                                            unpacked_size, " bytes"));
  }
  return out;
}

}  // namespace nzbmesh::importer
