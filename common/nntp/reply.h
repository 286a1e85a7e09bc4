// Pure NNTP reply parsing (RFC 3977 §3.2): status lines and the end of
// multi-line data blocks. No I/O; fuzzed by //tests/common/nntp:reply_parser_fuzzer.
#ifndef NZBMESH_COMMON_NNTP_REPLY_H_
#define NZBMESH_COMMON_NNTP_REPLY_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nzbmesh::nntp {

// Longest status line accepted, excluding CRLF. RFC 3977 allows 512 octets
// including CRLF; real servers exceed it slightly, garbage exceeds it a lot.
inline constexpr size_t kMaxStatusLineLength = 2048;

// A parsed status line. `text` points into the parsed line.
struct StatusLine {
  int code = 0;            // 100..599
  absl::string_view text;  // everything after "NNN " (may be empty)
};

// Parses one status line (CRLF already removed; a trailing '\r' is tolerated).
// Accepts "NNN" and "NNN<SP or TAB>text" where the first digit is 1..5.
// Errors are INTERNAL "malformed NNTP status line: ..." quoting the line
// (escaped, truncated).
absl::StatusOr<StatusLine> ParseStatusLine(absl::string_view line);

// Whether a reply with `code` to `verb` (upper case: "BODY", "ARTICLE",
// "HEAD", "CAPABILITIES", ...) is followed by a multi-line data block.
bool IsMultiLineReply(absl::string_view verb, int code);

// Finds the end of a dot-terminated multi-line block ("\r\n.\r\n"; the block
// starts at the beginning of a line, right after the status line) in a stream
// fed in arbitrary chunks. It does not copy or unstuff; it only finds the end.
class TerminatorScanner {
 public:
  // Consumes bytes of `in` up to and including the terminator. Returns how
  // many were consumed: all of `in` unless the terminator ended inside it.
  size_t Feed(absl::string_view in);
  bool done() const { return state_ == State::kDone; }
  void Reset() { state_ = State::kLineStart; }

 private:
  enum class State { kLineStart, kDot, kDotCr, kInLine, kDone };
  State state_ = State::kLineStart;
};

// Splits a complete multi-line block (terminator included or not) into lines,
// undoing dot-stuffing. Lines end in CRLF (a bare LF is tolerated). Returns
// INTERNAL when the block has data after the terminator line.
absl::StatusOr<std::vector<std::string>> SplitMultiLineBlock(absl::string_view block);

// Escapes and truncates network text for error messages.
std::string QuoteForError(absl::string_view text, size_t max_len = 80);

}  // namespace nzbmesh::nntp

#endif  // NZBMESH_COMMON_NNTP_REPLY_H_
