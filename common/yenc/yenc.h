// yEnc 1.3: header parsing, an incremental article decoder with runtime SIMD
// dispatch, CRC32 (ISA-L), and an encoder.
//
// Contract of the decoder (the hot path of the whole system):
//   * It is fed an NNTP multi-line BODY payload (everything after the "222"
//     status line) in arbitrary chunks: 16 KiB TLS records, 64 KiB reads, or
//     one byte at a time. State carries across chunk boundaries.
//   * In kNntp mode it undoes dot-stuffing and detects the end of the article
//     ("\r\n.\r\n") in the same pass that decodes; in kRaw mode the input is
//     a plain .yenc stream without dot-stuffing that ends after =yend.
//   * Decoded bytes are written into caller-provided memory; the decoder never
//     allocates per article. Decoded size <= encoded size, so an output span
//     at least as large as the input chunk always suffices.
//   * The CRC32 of the decoded bytes is computed per chunk while the bytes are
//     in cache and checked against =yend pcrc32 (crc32 for single-part).
#ifndef NZBMESH_COMMON_YENC_YENC_H_
#define NZBMESH_COMMON_YENC_YENC_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nzbmesh::yenc {

// Fields of "=ybegin" and "=ypart".
struct PartHeader {
  std::string name;    // may contain spaces; runs to the end of the line
  int64_t part = 0;    // 0 for single-part posts
  int64_t total = 0;   // 0 when absent
  int64_t line = 0;    // 0 when absent
  int64_t size = 0;    // size of the whole file
  int64_t begin = 0;   // 1-based first byte of this part (1 when single-part)
  int64_t end = 0;     // 1-based last byte (== size when single-part)
};

// Fields of "=yend".
struct PartTrailer {
  int64_t size = 0;    // decoded size of this part
  int64_t part = 0;
  bool has_pcrc32 = false;
  uint32_t pcrc32 = 0;
  bool has_crc32 = false;
  uint32_t crc32 = 0;
};

// Line parsers. `line` excludes the CRLF. Errors are INVALID_ARGUMENT with the
// offending field named.
absl::StatusOr<PartHeader> ParseBeginLine(absl::string_view line);
absl::Status ParsePartLine(absl::string_view line, PartHeader* header);
absl::StatusOr<PartTrailer> ParseEndLine(absl::string_view line);

// CRC32 (IEEE, as zlib) via ISA-L. Crc32Update continues a running CRC;
// Crc32Combine joins the CRCs of two adjacent blocks (len2 = length of the
// second) into the CRC of their concatenation, e.g. for file CRCs from parts.
uint32_t Crc32Update(uint32_t crc, const void* data, size_t len);
uint32_t Crc32Combine(uint32_t crc1, uint32_t crc2, int64_t len2);

// Which decode kernel runs; kAuto picks the best the CPU supports. Listed
// slowest first. Every kernel produces exactly the same output and state.
enum class Kernel { kAuto, kScalar, kSse2, kSsse3, kAvx2, kAvx512Vbmi2 };
// "auto", "scalar", "sse2", "ssse3", "avx2", "avx512vbmi2".
std::string KernelName(Kernel k);
// Whether this CPU can run `k` (kAuto and kScalar: always).
bool KernelSupported(Kernel k);

class ArticleDecoder {
 public:
  enum class Mode { kNntp, kRaw };
  struct Options {
    Mode mode = Mode::kNntp;
    Kernel kernel = Kernel::kAuto;
    // Decoded bytes beyond this are an error (RESOURCE_EXHAUSTED) — protects
    // against bodies that never end. 0 = unlimited.
    int64_t max_decoded_bytes = 64 << 20;
  };

  // An unsupported options.kernel falls back to the best supported one.
  explicit ArticleDecoder(const Options& options);
  ~ArticleDecoder();
  // Movable, not copyable. A moved-from decoder may only be destroyed or
  // assigned to.
  ArticleDecoder(ArticleDecoder&&) noexcept;
  ArticleDecoder& operator=(ArticleDecoder&&) noexcept;

  // The kernel actually used (never kAuto).
  Kernel kernel() const;

  // Forgets everything; ready for the next article. Keeps no buffers.
  void Reset();

  struct FeedResult {
    size_t consumed = 0;  // input bytes used; < in.size() only once done()
    size_t produced = 0;  // decoded bytes written to `out`
  };
  // Decodes as much of `in` as possible into `out` (capacity `out_capacity`
  // must be >= in.size(), else INVALID_ARGUMENT; the kernels store whole
  // vectors inside that capacity). Lines before =ybegin are skipped; header
  // and trailer lines are parsed. Once the end of the article is seen, done()
  // becomes true and the bytes after the terminator are left unconsumed.
  // Errors (malformed =y lines, size cap) are sticky: the decoder must be
  // Reset() before reuse, and the connection it reads from is unusable.
  //
  // Data-section rules (identical in every kernel): a line starts after every
  // LF; CR and LF are dropped; '=' escapes the next byte (an escaped CR/LF is
  // still dropped); in kNntp a line starting ".." loses one dot, and a line
  // starting "." followed by CR or LF ends the article; a line starting "=y"
  // ends the data (=yend; =ypart is accepted before it).
  absl::StatusOr<FeedResult> Feed(absl::string_view in, char* out, size_t out_capacity);

  // True once "\r\n.\r\n" (kNntp) or the =yend line (kRaw) was consumed.
  bool done() const;
  bool saw_header() const;
  const PartHeader& header() const;
  const PartTrailer& trailer() const;  // valid when saw_trailer()
  bool saw_trailer() const;
  int64_t decoded_bytes() const;
  uint32_t crc32() const;  // CRC32 of all decoded bytes so far

  // After done(): OK, or DATA_LOSS when =yend's pcrc32 (or crc32 of a
  // single-part post) or size disagrees with what was decoded, or
  // INVALID_ARGUMENT when =ybegin never appeared, or DATA_LOSS when =yend
  // never appeared (truncated article). Returns the sticky Feed error if any.
  absl::Status Verify() const;

 private:
  struct State;
  // Allocated once per decoder, never per article: options, kernel, carry
  // state, the buffer for =y lines, parsed header and trailer.
  std::unique_ptr<State> state_;
};

struct EncodeOptions {
  std::string name;
  int64_t part = 0;        // 0 = single-part post (no =ypart line)
  int64_t total = 0;       // total parts, 0 = omit
  int64_t file_size = 0;   // size of the whole file; 0 = data.size()
  int64_t begin = 1;       // 1-based offset of data[0] in the file
  int line_length = 128;
  bool dot_stuff = true;   // NNTP dot-stuffing of lines that start with '.'
  bool include_file_crc = false;  // add crc32= (file CRC) to =yend
  uint32_t file_crc32 = 0;
};

// Encodes one part as a complete article body: =ybegin [=ypart] data =yend,
// CRLF line endings, escaping NUL, LF, CR, '=', TAB/SPACE at line start or
// end, and '.' at line start (yEnc 1.3). Does not append the NNTP ".\r\n"
// terminator.
std::string EncodePart(absl::string_view data, const EncodeOptions& options);

}  // namespace nzbmesh::yenc

#endif  // NZBMESH_COMMON_YENC_YENC_H_
