#include "services/importer/nzb_doctype.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace nzbmesh::importer {

std::string StripExternalDoctype(absl::string_view xml) {
  absl::string_view s = xml;
  if (absl::StartsWith(s, "\xEF\xBB\xBF")) s.remove_prefix(3);
  while (true) {
    s = absl::StripLeadingAsciiWhitespace(s);
    if (absl::StartsWith(s, "<?")) {
      const size_t end = s.find("?>");
      if (end == absl::string_view::npos) return std::string(xml);
      s.remove_prefix(end + 2);
    } else if (absl::StartsWith(s, "<!--")) {
      const size_t end = s.find("-->", 4);
      if (end == absl::string_view::npos) return std::string(xml);
      s.remove_prefix(end + 3);
    } else {
      break;
    }
  }
  if (!absl::StartsWithIgnoreCase(s, "<!DOCTYPE")) return std::string(xml);
  // Find the declaration's end outside quoted literals; any '[' means an
  // internal subset: leave it for the parser to refuse.
  char quote = 0;
  for (size_t i = 9; i < s.size(); ++i) {
    const char c = s[i];
    if (quote != 0) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '[' || c == '<') {
      return std::string(xml);
    } else if (c == '>') {
      const size_t start = static_cast<size_t>(s.data() - xml.data());
      return absl::StrCat(xml.substr(0, start), xml.substr(start + i + 1));
    }
  }
  return std::string(xml);
}

}  // namespace nzbmesh::importer
