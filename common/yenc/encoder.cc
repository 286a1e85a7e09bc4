// yEnc 1.3 encoder for one part (article body).
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "common/yenc/yenc.h"

namespace nzbmesh::yenc {
namespace {

// Appends a header/trailer line with CRLF, dot-stuffed when asked.
void AppendLine(std::string* out, absl::string_view line, bool dot_stuff) {
  if (dot_stuff && !line.empty() && line.front() == '.') out->push_back('.');
  absl::StrAppend(out, line, "\r\n");
}

}  // namespace

std::string EncodePart(absl::string_view data, const EncodeOptions& options) {
  const int64_t size = static_cast<int64_t>(data.size());
  const int64_t file_size = options.file_size > 0 ? options.file_size : size;
  const int line_length = options.line_length > 0 ? options.line_length : 128;
  std::string out;
  out.reserve(data.size() + data.size() / 32 + 2 * (data.size() / line_length + 1) + 256 +
              options.name.size());

  if (options.part > 0) {
    std::string begin = absl::StrCat("=ybegin part=", options.part);
    if (options.total > 0) absl::StrAppend(&begin, " total=", options.total);
    absl::StrAppend(&begin, " line=", line_length, " size=", file_size, " name=", options.name);
    AppendLine(&out, begin, options.dot_stuff);
    AppendLine(&out,
               absl::StrCat("=ypart begin=", options.begin, " end=", options.begin + size - 1),
               options.dot_stuff);
  } else {
    AppendLine(&out,
               absl::StrCat("=ybegin line=", line_length, " size=", file_size, " name=",
                            options.name),
               options.dot_stuff);
  }

  const auto* in = reinterpret_cast<const uint8_t*>(data.data());
  const size_t n = data.size();
  int col = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t c = static_cast<uint8_t>(in[i] + 42);
    bool escape = c == 0 || c == '\n' || c == '\r' || c == '=';
    if (!escape && (c == '\t' || c == ' ' || c == '.')) {
      const bool at_start = col == 0;
      const bool at_end = col + 1 >= line_length || i + 1 == n;
      escape = at_start || (c != '.' && at_end);
    }
    if (escape) {
      out.push_back('=');
      out.push_back(static_cast<char>(c + 64));
      col += 2;
    } else {
      // '.' at a line start is always escaped above, so no data line needs
      // NNTP dot-stuffing.
      out.push_back(static_cast<char>(c));
      col += 1;
    }
    if (col >= line_length) {
      out += "\r\n";
      col = 0;
    }
  }
  if (col > 0) out += "\r\n";

  const uint32_t crc = Crc32Update(0, data.data(), data.size());
  std::string end = absl::StrCat("=yend size=", size);
  if (options.part > 0) {
    absl::StrAppend(&end, " part=", options.part, absl::StrFormat(" pcrc32=%08x", crc));
    if (options.include_file_crc) absl::StrAppend(&end, absl::StrFormat(" crc32=%08x", options.file_crc32));
  } else {
    absl::StrAppend(&end, absl::StrFormat(" crc32=%08x",
                                          options.include_file_crc ? options.file_crc32 : crc));
  }
  AppendLine(&out, end, options.dot_stuff);
  return out;
}

}  // namespace nzbmesh::yenc
