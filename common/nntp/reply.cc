#include "common/nntp/reply.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace nzbmesh::nntp {

std::string QuoteForError(absl::string_view text, size_t max_len) {
  const bool truncated = text.size() > max_len;
  if (truncated) text = text.substr(0, max_len);
  return absl::StrCat("\"", absl::CHexEscape(text), truncated ? "\"..." : "\"");
}

absl::StatusOr<StatusLine> ParseStatusLine(absl::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  auto malformed = [&](absl::string_view why) {
    return absl::InternalError(
        absl::StrCat("malformed NNTP status line (", why, "): ", QuoteForError(line)));
  };
  if (line.size() > kMaxStatusLineLength) return malformed("too long");
  if (line.size() < 3) return malformed("shorter than a 3-digit code");
  if (line[0] < '1' || line[0] > '5' || !absl::ascii_isdigit(line[1]) ||
      !absl::ascii_isdigit(line[2])) {
    return malformed("no 3-digit code");
  }
  if (line.size() > 3 && line[3] != ' ' && line[3] != '\t') {
    return malformed("code not followed by a space");
  }
  if (line.find('\0') != absl::string_view::npos || line.find('\n') != absl::string_view::npos ||
      line.find('\r') != absl::string_view::npos) {
    return malformed("control characters");
  }
  StatusLine out;
  out.code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  out.text = line.substr(std::min<size_t>(4, line.size()));  // empty text still points into `line`
  return out;
}

bool IsMultiLineReply(absl::string_view verb, int code) {
  if (verb == "BODY") return code == 222;
  if (verb == "ARTICLE") return code == 220;
  if (verb == "HEAD") return code == 221;
  if (verb == "CAPABILITIES") return code == 101;
  if (verb == "LIST" || verb == "LISTGROUP") return code == 215 || code == 211;
  if (verb == "HELP") return code == 100;
  return false;
}

size_t TerminatorScanner::Feed(absl::string_view in) {
  const char* p = in.data();
  const char* const end = p + in.size();
  while (p < end && state_ != State::kDone) {
    switch (state_) {
      case State::kLineStart:
        state_ = *p == '.' ? State::kDot : State::kInLine;
        if (*p == '\n') state_ = State::kLineStart;  // empty line (bare LF)
        ++p;
        break;
      case State::kDot:
        if (*p == '\r') {
          state_ = State::kDotCr;
        } else if (*p == '\n') {
          state_ = State::kDone;  // ".\n": tolerate a bare LF terminator
        } else {
          state_ = State::kInLine;  // a dot-stuffed line
        }
        ++p;
        break;
      case State::kDotCr:
        if (*p == '\n') {
          state_ = State::kDone;
          ++p;
        } else {
          state_ = State::kInLine;  // re-examine this byte inside the line
        }
        break;
      case State::kInLine: {
        const void* nl = std::memchr(p, '\n', end - p);
        if (nl == nullptr) {
          p = end;
        } else {
          p = static_cast<const char*>(nl) + 1;
          state_ = State::kLineStart;
        }
        break;
      }
      case State::kDone:
        break;
    }
  }
  return p - in.data();
}

absl::StatusOr<std::vector<std::string>> SplitMultiLineBlock(absl::string_view block) {
  std::vector<std::string> lines;
  while (!block.empty()) {
    size_t nl = block.find('\n');
    absl::string_view line = block.substr(0, nl);
    block.remove_prefix(nl == absl::string_view::npos ? block.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line == ".") {
      if (!block.empty()) {
        return absl::InternalError(absl::StrCat("data after the multi-line terminator: ",
                                                QuoteForError(block)));
      }
      break;
    }
    if (!line.empty() && line[0] == '.') line.remove_prefix(1);
    lines.emplace_back(line);
  }
  return lines;
}

}  // namespace nzbmesh::nntp
