#include "services/ctl/output.h"

#include "common/strings/escape.h"

#include <algorithm>
#include <cstdio>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"

namespace nzbmesh::ctl {

void Table::AddRow(std::vector<std::string> cells) {
  if (cells.size() > headers_.size()) {
    std::fprintf(stderr, "internal error: table row has more cells than headers\n");
    std::abort();
  }
  cells.resize(headers_.size());
  rows_.push_back(std::move(cells));
}

void Table::Print(std::ostream& out) const {
  std::vector<size_t> width(headers_.size());
  for (size_t i = 0; i < headers_.size(); ++i) width[i] = headers_[i].size();
  for (const auto& r : rows_) {
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t i = 0; i < cells.size(); ++i) {
      s += cells[i];
      if (i + 1 < cells.size()) s += std::string(width[i] - cells[i].size() + 2, ' ');
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    out << s << "\n";
  };
  line(headers_);
  for (const auto& r : rows_) line(r);
}

void Details::Print(std::ostream& out) const {
  size_t w = 0;
  for (const auto& [k, v] : rows_) w = std::max(w, k.size());
  for (const auto& [k, v] : rows_) out << k << ":" << std::string(w - k.size() + 1, ' ') << v << "\n";
}

std::string ToJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = true;
  o.always_print_primitive_fields = true;
  o.preserve_proto_field_names = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(m, &out, o).ok()) return "{}\n";
  if (out.empty() || out.back() != '\n') out += "\n";
  return out;
}

std::string JsonString(const std::string& s) { return absl::StrCat("\"", JsonEscape(s), "\""); }

std::string HumanBytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? absl::StrCat(bytes, " B") : absl::StrFormat("%.1f %s", v, units[u]);
}

std::string HumanRate(double mbps) { return absl::StrFormat("%.2f MB/s", mbps); }

std::string HumanTime(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(unix_ms), absl::UTCTimeZone());
}

std::string HumanSeconds(double seconds) {
  if (seconds < 1) return absl::StrFormat("%.0f ms", seconds * 1000);
  return absl::StrFormat("%.2f s", seconds);
}

}  // namespace nzbmesh::ctl
