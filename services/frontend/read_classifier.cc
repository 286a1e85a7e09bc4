#include "services/frontend/read_classifier.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace nzbmesh::frontend {

ReadClassifier::ReadClassifier(const Options& options) : options_(options) {}

std::string ReadClassifier::Key(absl::string_view client, absl::string_view path) {
  // '\n' never occurs in an address; paths may hold anything else.
  return absl::StrCat(client, "\n", path);
}

TrafficClass ReadClassifier::Classify(absl::string_view client, absl::string_view path, int64_t first, int64_t end,
                                      bool bounded, absl::Time now) {
  const bool short_read = options_.probe_max_bytes > 0 && bounded && end - first <= options_.probe_max_bytes;
  const std::string key = Key(client, path);
  absl::MutexLock lock(&mu_);
  bool continues = false;
  if (short_read) {
    auto it = ends_.find(key);
    if (it != ends_.end()) {
      for (const auto& [e, when] : it->second.ends) {
        if (e == first && when != absl::InfinitePast() && now - when <= options_.sequential_window) continues = true;
      }
    }
  }
  RecordLocked(key, end, now);
  return short_read && !continues ? TrafficClass::kProbe : TrafficClass::kStream;
}

void ReadClassifier::Ended(absl::string_view client, absl::string_view path, int64_t pos, absl::Time now) {
  const std::string key = Key(client, path);
  absl::MutexLock lock(&mu_);
  RecordLocked(key, pos, now);
}

size_t ReadClassifier::tracked() const {
  absl::MutexLock lock(&mu_);
  return ends_.size();
}

void ReadClassifier::RecordLocked(const std::string& key, int64_t end, absl::Time now) {
  auto it = ends_.find(key);
  if (it == ends_.end()) {
    MakeRoomLocked(now);
    it = ends_.emplace(key, Ends{}).first;
  }
  Ends& e = it->second;
  e.last_used = now;
  for (auto& slot : e.ends) {
    if (slot.first == end && slot.second != absl::InfinitePast()) {
      slot.second = now;  // the same end again: refresh, keep the other slots
      return;
    }
  }
  e.ends[e.next] = {end, now};
  e.next = (e.next + 1) % kEndsPerKey;
}

void ReadClassifier::MakeRoomLocked(absl::Time now) {
  if (ends_.size() < std::max<size_t>(1, options_.max_tracked)) return;
  absl::erase_if(ends_, [&](const auto& kv) { return now - kv.second.last_used > options_.sequential_window; });
  if (ends_.size() < std::max<size_t>(1, options_.max_tracked)) return;
  auto oldest = std::min_element(ends_.begin(), ends_.end(), [](const auto& a, const auto& b) {
    return a.second.last_used < b.second.last_used;
  });
  ends_.erase(oldest);
}

}  // namespace nzbmesh::frontend
