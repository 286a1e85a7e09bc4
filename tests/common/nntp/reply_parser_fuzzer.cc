// Fuzzes the pure NNTP reply parsing: status lines, the multi-line terminator
// scanner (fed whole and in chunks chosen by the input, which must agree), and
// block splitting.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "common/nntp/reply.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nzbmesh::nntp;
  const absl::string_view in(reinterpret_cast<const char*>(data), size);

  // Every line as a status line.
  absl::string_view rest = in;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    absl::string_view line = rest.substr(0, nl);
    auto st = ParseStatusLine(line);
    if (st.ok()) {
      if (st->code < 100 || st->code > 599) abort();
      if (st->text.data() < line.data() || st->text.data() + st->text.size() > line.data() + line.size()) abort();
    }
    rest.remove_prefix(nl == absl::string_view::npos ? rest.size() : nl + 1);
  }

  // The terminator scanner: whole vs. chunked (chunk sizes from the input).
  TerminatorScanner whole;
  const size_t whole_end = whole.Feed(in);
  if (whole_end > in.size()) abort();
  TerminatorScanner chunked;
  size_t pos = 0;
  size_t i = 0;
  while (pos < in.size() && !chunked.done()) {
    const size_t chunk = 1 + (size > 0 ? data[i++ % size] % 37 : 0);
    const size_t len = std::min(chunk, in.size() - pos);
    const size_t used = chunked.Feed(in.substr(pos, len));
    if (used > len || (used < len && !chunked.done())) abort();
    pos += used;
  }
  if (whole.done() != chunked.done()) abort();
  if (whole.done() && pos != whole_end) abort();

  if (whole.done()) {
    auto lines = SplitMultiLineBlock(in.substr(0, whole_end));
    if (!lines.ok()) abort();  // a block that ends at its terminator always splits
  } else {
    (void)SplitMultiLineBlock(in);
  }
  (void)QuoteForError(in);
  return 0;
}
