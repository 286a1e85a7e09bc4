// ArticleDecoder: the line-level state machine around the decode kernels.
//
// Phases: lines before =ybegin are read one at a time (kPreamble); after
// =ybegin the kernel decodes (kData) until a line starts "=y" or "." + CR/LF,
// whose text is collected in `line` (kDataLine) and handled; after =yend the
// remaining lines are skipped up to the "." terminator (kTrailer, kNntp only).
#include <cstring>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "common/yenc/decode_kernels.h"
#include "common/yenc/yenc.h"

namespace nzbmesh::yenc {

using internal::DecodeFn;
using internal::KernelResult;
using internal::LineState;
using internal::Stop;

namespace {

enum class Phase { kPreamble, kData, kDataLine, kTrailer, kDone };

// Longest header/trailer line kept; longer =y lines are an error, longer
// junk lines are skipped.
constexpr size_t kMaxLine = 1024;

}  // namespace

struct ArticleDecoder::State {
  Options options;
  Kernel kernel = Kernel::kScalar;
  DecodeFn decode = nullptr;

  Phase phase = Phase::kPreamble;
  LineState line_state = LineState::kLineStart;
  absl::Status status;  // sticky error
  bool saw_header = false;
  bool saw_part = false;
  bool saw_trailer = false;
  int64_t decoded = 0;
  uint32_t crc = 0;
  PartHeader header;
  PartTrailer trailer;

  size_t line_len = 0;
  bool line_overflow = false;
  char line[kMaxLine];

  void Clear() {
    phase = Phase::kPreamble;
    line_state = LineState::kLineStart;
    status = absl::OkStatus();
    saw_header = saw_part = saw_trailer = false;
    decoded = 0;
    crc = 0;
    header = PartHeader();
    trailer = PartTrailer();
    line_len = 0;
    line_overflow = false;
  }

  void AppendToLine(const char* p, size_t n) {
    const size_t room = kMaxLine - line_len;
    if (n > room) {
      line_overflow = true;
      n = room;
    }
    std::memcpy(line + line_len, p, n);
    line_len += n;
  }

  bool nntp() const { return options.mode == Mode::kNntp; }

  absl::Status HandleLine();
};

absl::Status ArticleDecoder::State::HandleLine() {
  absl::string_view text(line, line_len);
  const bool overflow = line_overflow;
  line_len = 0;
  line_overflow = false;
  if (!overflow && absl::EndsWith(text, "\r")) text.remove_suffix(1);

  if (phase == Phase::kDataLine) {
    if (text.front() == '.') {  // "." + CR/LF inside the data: end of article
      phase = Phase::kDone;
      return absl::OkStatus();
    }
    if (overflow) {
      return absl::InvalidArgumentError(absl::StrCat(
          "yEnc line starting '", text.substr(0, 12), "' is longer than ", kMaxLine, " bytes"));
    }
    if (absl::StartsWith(text, "=yend") && (text.size() == 5 || text[5] == ' ')) {
      absl::StatusOr<PartTrailer> t = ParseEndLine(text);
      if (!t.ok()) return t.status();
      trailer = *t;
      saw_trailer = true;
      phase = nntp() ? Phase::kTrailer : Phase::kDone;
      return absl::OkStatus();
    }
    if (absl::StartsWith(text, "=ypart") && (text.size() == 6 || text[6] == ' ') && !saw_part) {
      absl::Status s = ParsePartLine(text, &header);
      if (!s.ok()) return s;
      saw_part = true;
      phase = Phase::kData;
      line_state = LineState::kLineStart;
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected line in yEnc data: '", text.substr(0, 40),
                     "' (want =yend, or one =ypart)"));
  }

  // kPreamble and kTrailer: whole lines with NNTP dot-stuffing.
  if (nntp() && !text.empty() && text.front() == '.') {
    if (text.size() == 1) {
      phase = Phase::kDone;
      return absl::OkStatus();
    }
    if (text[1] == '.') text.remove_prefix(1);
  }
  if (phase == Phase::kPreamble && absl::StartsWith(text, "=ybegin") &&
      (text.size() == 7 || text[7] == ' ')) {
    if (overflow) {
      return absl::InvalidArgumentError(
          absl::StrCat("=ybegin line is longer than ", kMaxLine, " bytes"));
    }
    absl::StatusOr<PartHeader> h = ParseBeginLine(text);
    if (!h.ok()) return h.status();
    header = std::move(*h);
    saw_header = true;
    phase = Phase::kData;
    line_state = LineState::kLineStart;
  }
  return absl::OkStatus();
}

ArticleDecoder::ArticleDecoder(const Options& options) : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.options = options;
  s.kernel = options.kernel == Kernel::kAuto || !KernelSupported(options.kernel)
                 ? internal::BestKernel()
                 : options.kernel;
  s.decode = internal::GetKernel(s.kernel, options.mode == Mode::kNntp);
  s.header.name.reserve(256);
}

ArticleDecoder::~ArticleDecoder() = default;
ArticleDecoder::ArticleDecoder(ArticleDecoder&&) noexcept = default;
ArticleDecoder& ArticleDecoder::operator=(ArticleDecoder&&) noexcept = default;

void ArticleDecoder::Reset() { state_->Clear(); }

Kernel ArticleDecoder::kernel() const { return state_->kernel; }

absl::StatusOr<ArticleDecoder::FeedResult> ArticleDecoder::Feed(absl::string_view in, char* out,
                                                                size_t out_capacity) {
  State& s = *state_;
  if (!s.status.ok()) return s.status;
  if (out_capacity < in.size()) {
    return absl::InvalidArgumentError(absl::StrCat("ArticleDecoder::Feed: output capacity ",
                                                   out_capacity, " is less than the input size ",
                                                   in.size(), "; pass at least in.size()"));
  }
  const char* p = in.data();
  const size_t n = in.size();
  size_t pos = 0;
  size_t produced = 0;
  while (pos < n && s.phase != Phase::kDone) {
    if (s.phase == Phase::kData) {
      const KernelResult r = s.decode(reinterpret_cast<const uint8_t*>(p + pos), n - pos,
                                      reinterpret_cast<uint8_t*>(out + produced), &s.line_state);
      pos += r.consumed;
      produced += r.produced;
      if (r.stop != Stop::kNone) {
        s.line[0] = r.stop == Stop::kYLine ? '=' : '.';
        s.line_len = 1;
        s.phase = Phase::kDataLine;
      }
      continue;
    }
    const void* lf = std::memchr(p + pos, '\n', n - pos);
    const size_t end = lf != nullptr ? static_cast<const char*>(lf) - p : n;
    s.AppendToLine(p + pos, end - pos);
    if (lf == nullptr) {
      pos = n;
      break;
    }
    pos = end + 1;
    absl::Status st = s.HandleLine();
    if (!st.ok()) {
      s.status = st;
      return st;
    }
  }
  if (produced > 0) {
    s.crc = Crc32Update(s.crc, out, produced);
    s.decoded += static_cast<int64_t>(produced);
    if (s.options.max_decoded_bytes > 0 && s.decoded > s.options.max_decoded_bytes) {
      s.status = absl::ResourceExhaustedError(
          absl::StrCat("yEnc article decoded to more than ", s.options.max_decoded_bytes,
                       " bytes without ending (", s.decoded,
                       " so far); raise max_decoded_bytes or drop the connection"));
      return s.status;
    }
  }
  return FeedResult{pos, produced};
}

bool ArticleDecoder::done() const { return state_->phase == Phase::kDone; }
bool ArticleDecoder::saw_header() const { return state_->saw_header; }
const PartHeader& ArticleDecoder::header() const { return state_->header; }
const PartTrailer& ArticleDecoder::trailer() const { return state_->trailer; }
bool ArticleDecoder::saw_trailer() const { return state_->saw_trailer; }
int64_t ArticleDecoder::decoded_bytes() const { return state_->decoded; }
uint32_t ArticleDecoder::crc32() const { return state_->crc; }

absl::Status ArticleDecoder::Verify() const {
  const State& s = *state_;
  if (!s.status.ok()) return s.status;
  if (!s.saw_header) {
    return absl::InvalidArgumentError("no =ybegin line in the article body; not a yEnc article");
  }
  if (!s.saw_trailer) {
    return absl::DataLossError(absl::StrCat("yEnc article '", s.header.name, "' part ",
                                            s.header.part, " has no =yend line (truncated after ",
                                            s.decoded, " decoded bytes)"));
  }
  if (s.trailer.size != s.decoded) {
    return absl::DataLossError(absl::StrCat("yEnc size mismatch for '", s.header.name, "' part ",
                                            s.header.part, ": =yend size=", s.trailer.size,
                                            " (expected) but decoded ", s.decoded,
                                            " bytes (actual)"));
  }
  bool check = false;
  uint32_t expected = 0;
  const char* field = "";
  if (s.trailer.has_pcrc32) {
    check = true;
    expected = s.trailer.pcrc32;
    field = "pcrc32";
  } else if (s.trailer.has_crc32 && s.header.part == 0) {
    check = true;
    expected = s.trailer.crc32;
    field = "crc32";
  }
  if (check && expected != s.crc) {
    return absl::DataLossError(absl::StrFormat(
        "yEnc CRC mismatch for '%s' part %d: =yend %s=%08x (expected) but decoded data has "
        "%08x (actual)",
        s.header.name, s.header.part, field, expected, s.crc));
  }
  return absl::OkStatus();
}

}  // namespace nzbmesh::yenc
