#include "services/frontend/stream_registry.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "services/frontend/http_util.h"

namespace nzbmesh::frontend {
namespace {

constexpr absl::Duration kRateWindow = absl::Seconds(1);
// A window open this long without closing means the stream stalls: report
// the (falling) rate since the window opened instead of the last full one.
constexpr absl::Duration kStallAfter = absl::Seconds(2);

void AppendCommon(std::string* out, uint64_t id, const ActiveStream::Info& i) {
  absl::StrAppend(out, "{\"id\":\"s", id, "\",\"path\":\"", JsonEscape(i.path), "\",\"client\":\"",
                  JsonEscape(i.client), "\",\"user_agent\":\"", JsonEscape(i.user_agent),
                  "\",\"started_unix_ms\":", absl::ToUnixMillis(i.started));
}

}  // namespace

ActiveStream::ActiveStream(uint64_t id, Info info, KillFn kill, ReadAheadFn read_ahead)
    : id_(id),
      info_(std::move(info)),
      kill_(std::move(kill)),
      read_ahead_(std::move(read_ahead)),
      offset_(info_.offset),
      window_start_ns_(absl::ToUnixNanos(info_.started)) {}

std::string ActiveStream::id() const { return absl::StrCat("s", id_); }

void ActiveStream::AddBytes(int64_t n, int64_t offset, absl::Time now) {
  // Single writer: plain load/store pairs are enough.
  int64_t total = bytes_.load(std::memory_order_relaxed) + n;
  bytes_.store(total, std::memory_order_relaxed);
  offset_.store(offset, std::memory_order_relaxed);
  absl::Time start = absl::FromUnixNanos(window_start_ns_.load(std::memory_order_relaxed));
  absl::Duration elapsed = now - start;
  if (elapsed >= kRateWindow) {
    int64_t in_window = total - window_bytes_.load(std::memory_order_relaxed);
    rate_.store(static_cast<double>(in_window) / absl::ToDoubleSeconds(elapsed), std::memory_order_relaxed);
    window_bytes_.store(total, std::memory_order_relaxed);
    window_start_ns_.store(absl::ToUnixNanos(now), std::memory_order_relaxed);
  }
}

double ActiveStream::BytesPerSecond(absl::Time now) const {
  int64_t total = bytes_.load(std::memory_order_relaxed);
  absl::Time start = absl::FromUnixNanos(window_start_ns_.load(std::memory_order_relaxed));
  double rate = rate_.load(std::memory_order_relaxed);
  absl::Duration open = now - start;
  if (rate < 0 || open >= kStallAfter) {
    if (open <= absl::ZeroDuration()) return 0;
    int64_t in_window = total - window_bytes_.load(std::memory_order_relaxed);
    return std::max(0.0, static_cast<double>(in_window) / absl::ToDoubleSeconds(open));
  }
  return rate;
}

std::shared_ptr<ActiveStream> StreamRegistry::Start(ActiveStream::Info info, ActiveStream::KillFn kill,
                                                    ActiveStream::ReadAheadFn read_ahead) {
  // From the network: bounded, and printable ASCII only so the listing stays valid JSON/UTF-8.
  if (info.user_agent.size() > 200) info.user_agent.resize(200);
  for (char& c : info.user_agent) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  uint64_t id = next_id_.fetch_add(1, std::memory_order_relaxed);
  auto s = std::make_shared<ActiveStream>(id, std::move(info), std::move(kill), std::move(read_ahead));
  absl::MutexLock lock(&mu_);
  active_[id] = s;
  return s;
}

void StreamRegistry::End(const ActiveStream& stream, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (active_.erase(stream.numeric_id()) == 0) return;
  if (options_.max_recent == 0) return;
  recent_.push_front(Ended{stream.numeric_id(), stream.info(), now, stream.bytes_sent()});
  while (recent_.size() > options_.max_recent) recent_.pop_back();
}

std::shared_ptr<ActiveStream> StreamRegistry::Find(const std::string& id) const {
  absl::string_view digits = id;
  uint64_t n = 0;
  if (!absl::ConsumePrefix(&digits, "s") || !absl::SimpleAtoi(digits, &n)) return nullptr;
  absl::MutexLock lock(&mu_);
  auto it = active_.find(n);
  return it == active_.end() ? nullptr : it->second;
}

size_t StreamRegistry::active() const {
  absl::MutexLock lock(&mu_);
  return active_.size();
}

std::string StreamRegistry::ListJson(absl::Time now) const {
  std::vector<std::shared_ptr<ActiveStream>> active;
  std::vector<Ended> recent;
  {
    absl::MutexLock lock(&mu_);
    active.reserve(active_.size());
    for (const auto& [id, s] : active_) active.push_back(s);
    for (const auto& e : recent_) {
      if (now - e.ended > options_.keep_recent) break;
      recent.push_back(e);
    }
  }
  // Outside the registry lock: the read-ahead probe takes the reader's mutex.
  std::sort(active.begin(), active.end(),
            [](const auto& a, const auto& b) { return a->numeric_id() < b->numeric_id(); });
  std::string out = "{\"streams\":[";
  for (size_t i = 0; i < active.size(); ++i) {
    const ActiveStream& s = *active[i];
    if (i > 0) out += ",";
    AppendCommon(&out, s.numeric_id(), s.info());
    absl::StrAppend(&out, ",\"offset\":", s.offset(), ",\"bytes_sent\":", s.bytes_sent(),
                    ",\"bytes_per_second\":", std::llround(s.BytesPerSecond(now)),
                    ",\"read_ahead_bytes\":", s.ReadAheadBytes(), "}");
  }
  out += "],\"recent\":[";
  for (size_t i = 0; i < recent.size(); ++i) {
    if (i > 0) out += ",";
    AppendCommon(&out, recent[i].id, recent[i].info);
    absl::StrAppend(&out, ",\"ended_unix_ms\":", absl::ToUnixMillis(recent[i].ended),
                    ",\"bytes_sent\":", recent[i].bytes_sent, "}");
  }
  out += "]}";
  return out;
}

}  // namespace nzbmesh::frontend
