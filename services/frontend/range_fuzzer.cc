// Fuzzes the Range parser: no crash, and every accepted range lies inside the
// file, is sorted and does not overlap its neighbour.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "services/frontend/range.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  int64_t file_size = (static_cast<int64_t>(data[0]) << 8 | data[1]) * 37;
  std::string header(reinterpret_cast<const char*>(data + 2), size - 2);
  for (int64_t fs : {file_size, int64_t{0}, int64_t{1}}) {
    auto r = nzbmesh::frontend::ParseRange(header, fs);
    if (r.kind != nzbmesh::frontend::RangeResult::Kind::kPartial) continue;
    if (r.ranges.empty()) std::abort();
    int64_t prev_last = -2;
    for (const auto& br : r.ranges) {
      if (br.first < 0 || br.last >= fs || br.first > br.last || br.first <= prev_last + 1) std::abort();
      prev_last = br.last;
    }
  }
  nzbmesh::frontend::IfRangeMatches(header, "\"abc\"", absl::UnixEpoch());
  return 0;
}
