#include "services/frontend/file_cache.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace nzbmesh::frontend {

struct FileCache::Ticket::Pending {
  int32_t segment = 0;
  std::shared_ptr<FetchHandle> handle;  // null until Fetch() returned; shared so Promote calls it unlocked
  bool read_ahead = false;  // started as read-ahead and not promoted yet
  bool promote = false;     // promoted before Fetch() returned: promote once the handle exists
  std::vector<std::pair<uint64_t, DataCallback>> waiters;
  bool abandoned = false;  // every waiter withdrew; cancel once the handle exists
  // The first charged waiter's reservation: the arrived data carries it.
  std::shared_ptr<BudgetCharge> charge;
};

absl::StatusOr<std::shared_ptr<const ReadLayout>> ReadLayout::FromProto(const importer::v1::FileLayout& proto) {
  auto out = std::make_shared<ReadLayout>();
  out->path = proto.entry().path();
  out->key = KeyOf(proto.entry());
  out->size = proto.entry().size();
  if (out->size < 0) return absl::InvalidArgumentError(absl::StrCat("layout of ", out->path, " has a negative size"));
  if (proto.extents_size() == 0) {
    int64_t next = 0;
    for (const auto& s : proto.segments()) {
      if (s.offset() != next || s.size() <= 0) {
        return absl::InvalidArgumentError(absl::StrCat("layout of ", out->path, ": segment ", s.message_id(),
                                                       " at offset ", s.offset(), " (size ", s.size(),
                                                       ") leaves a gap or overlap; expected offset ", next));
      }
      out->pieces.push_back({s.offset(), s.size(), static_cast<int32_t>(out->segments.size()), 0});
      out->segments.push_back({s.message_id(), s.size()});
      next += s.size();
    }
    if (next < out->size) {
      return absl::InvalidArgumentError(
          absl::StrCat("layout of ", out->path, ": segments cover ", next, " of ", out->size, " bytes"));
    }
  } else {
    // Flatten the volumes' segments; remember where each volume starts.
    std::vector<int32_t> first_segment;
    for (const auto& v : proto.volumes()) {
      first_segment.push_back(static_cast<int32_t>(out->segments.size()));
      for (const auto& s : v.segments()) out->segments.push_back({s.message_id(), s.size()});
    }
    int64_t next = 0;
    for (const auto& e : proto.extents()) {
      if (e.volume() < 0 || e.volume() >= proto.volumes_size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("layout of ", out->path, ": extent names volume ", e.volume(), " of ", proto.volumes_size()));
      }
      if (e.file_offset() != next || e.length() <= 0) {
        return absl::InvalidArgumentError(absl::StrCat("layout of ", out->path, ": extent at file offset ",
                                                       e.file_offset(), " leaves a gap; expected ", next));
      }
      const auto& vol = proto.volumes(e.volume());
      int64_t want_begin = e.volume_offset(), want_end = e.volume_offset() + e.length();
      int64_t covered = want_begin;
      for (int i = 0; i < vol.segments_size() && covered < want_end; ++i) {
        const auto& s = vol.segments(i);
        int64_t s_begin = s.offset(), s_end = s.offset() + s.size();
        if (s_end <= covered || s_begin >= want_end) continue;
        if (s_begin > covered) break;  // gap in the volume's segments
        int64_t take_end = std::min(s_end, want_end);
        out->pieces.push_back({e.file_offset() + (covered - want_begin), take_end - covered,
                               first_segment[e.volume()] + i, covered - s_begin});
        covered = take_end;
      }
      if (covered != want_end) {
        return absl::InvalidArgumentError(absl::StrCat("layout of ", out->path, ": volume ", vol.name(),
                                                       " segments do not cover bytes [", covered, ", ", want_end,
                                                       ") of an extent"));
      }
      next += e.length();
    }
    if (next < out->size) {
      return absl::InvalidArgumentError(
          absl::StrCat("layout of ", out->path, ": extents cover ", next, " of ", out->size, " bytes"));
    }
  }
  return std::shared_ptr<const ReadLayout>(std::move(out));
}

size_t ReadLayout::PieceAt(int64_t offset) const {
  if (offset >= size) return pieces.size();
  auto it = std::upper_bound(pieces.begin(), pieces.end(), offset,
                             [](int64_t off, const Piece& p) { return off < p.file_offset; });
  return static_cast<size_t>(it - pieces.begin()) - 1;
}

namespace {
FrontendMetrics* NoMetrics() {
  static FrontendMetrics* const m = new FrontendMetrics();
  return m;
}
}  // namespace

FileCache::FileCache(SegmentFetcher* fetcher, std::shared_ptr<const ReadLayout> layout, size_t lru_capacity,
                     FrontendMetrics* metrics, absl::Duration missing_ttl, MemoryBudget* budget)
    : fetcher_(fetcher),
      layout_(std::move(layout)),
      lru_capacity_(lru_capacity),
      metrics_(metrics != nullptr ? metrics : NoMetrics()),
      missing_ttl_(missing_ttl),
      budget_(budget) {}

// The LRU's segments carry their charges: destroying them releases what
// nobody else holds.
FileCache::~FileCache() = default;

std::shared_ptr<const std::string> FileCache::Lookup(int32_t segment) {
  std::shared_ptr<const std::string> data;
  {
    absl::MutexLock lock(&mu_);
    auto it = cached_.find(segment);
    if (it == cached_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second.second);
    ++lru_hits_;
    data = it->second.first;
  }
  metrics_->SegmentCacheHit();
  return data;
}

absl::Status FileCache::KnownMissing(int32_t segment) const {
  absl::MutexLock lock(&mu_);
  auto it = missing_.find(segment);
  if (it == missing_.end() || absl::Now() - it->second.second >= missing_ttl_) return absl::OkStatus();
  return it->second.first;
}

void FileCache::InsertLocked(int32_t segment, std::shared_ptr<const std::string>* data, bool charged) {
  const int64_t size = static_cast<int64_t>((*data)->size());
  auto it = cached_.find(segment);
  if (lru_capacity_ == 0 || detached_ || it != cached_.end()) {
    if (it != cached_.end()) lru_.splice(lru_.begin(), lru_, it->second.second);
    return;
  }
  if (budget_ != nullptr && !charged) {
    // Room from this file's own oldest entries, never from read-ahead (F11).
    while (!budget_->TryReserve(size)) {
      auto victim = OldestSoleLocked();
      if (victim == lru_.end()) return;  // not cached: the budget is read-ahead's
      EvictLocked(victim);
    }
    *data = BudgetCharge::Attach(std::make_shared<BudgetCharge>(budget_, size), std::move(*data));
  }
  cached_bytes_ += size;
  lru_.push_front(segment);
  cached_[segment] = {*data, lru_.begin()};
  while (cached_.size() > lru_capacity_) EvictLocked(std::prev(lru_.end()));
}

int64_t FileCache::EvictLocked(std::list<int32_t>::iterator pos) {
  auto it = cached_.find(*pos);
  const int64_t size = static_cast<int64_t>(it->second.first->size());
  // Under mu_ nobody can take a new reference to a cached segment, so a
  // count of one means erasing it frees the bytes (and releases its charge).
  const bool sole = it->second.first.use_count() == 1;
  cached_.erase(it);
  lru_.erase(pos);
  cached_bytes_ -= size;
  return sole ? size : 0;
}

std::list<int32_t>::iterator FileCache::OldestSoleLocked() {
  for (auto pos = lru_.end(); pos != lru_.begin();) {
    --pos;
    if (cached_.at(*pos).first.use_count() == 1) return pos;
  }
  return lru_.end();
}

int64_t FileCache::EvictBytes(int64_t n) {
  absl::MutexLock lock(&mu_);
  int64_t freed = 0;
  while (freed < n) {
    auto victim = OldestSoleLocked();
    if (victim == lru_.end()) break;
    freed += EvictLocked(victim);
  }
  return freed;
}

void FileCache::Detach() {
  absl::MutexLock lock(&mu_);
  detached_ = true;
  while (!lru_.empty()) EvictLocked(std::prev(lru_.end()));
}

int64_t FileCache::cached_bytes() const {
  absl::MutexLock lock(&mu_);
  return cached_bytes_;
}

std::unique_ptr<FileCache::Ticket> FileCache::Acquire(int32_t segment, const FetchOptions& options,
                                                      DataCallback done, std::shared_ptr<BudgetCharge> charge) {
  std::shared_ptr<Ticket::Pending> pending;
  uint64_t waiter = 0;
  bool start = false;
  bool promote_joined = false;
  absl::StatusOr<std::shared_ptr<const std::string>> immediate = nullptr;
  {
    absl::MutexLock lock(&mu_);
    auto hit = cached_.find(segment);
    auto miss = missing_.find(segment);
    if (hit != cached_.end()) {
      lru_.splice(lru_.begin(), lru_, hit->second.second);
      ++lru_hits_;
      immediate = hit->second.first;
    } else if (miss != missing_.end() && absl::Now() - miss->second.second < missing_ttl_) {
      immediate = miss->second.first;
    } else {
      auto it = pending_.find(segment);
      if (it != pending_.end()) {
        pending = it->second;
        // Another reader's read-ahead that this one needs now.
        promote_joined = !options.read_ahead && pending->read_ahead;
      } else {
        pending = std::make_shared<Ticket::Pending>();
        pending->segment = segment;
        pending->read_ahead = options.read_ahead;
        pending_[segment] = pending;
        start = true;
        ++fetches_started_;
      }
      if (pending->charge == nullptr) pending->charge = std::move(charge);
      waiter = next_waiter_++;
      pending->waiters.emplace_back(waiter, std::move(done));
    }
  }
  if (pending == nullptr) {
    if (immediate.ok()) metrics_->SegmentCacheHit();
    done(std::move(immediate));
    return nullptr;
  }
  if (start) {
    metrics_->SegmentCacheMiss();
  } else {
    metrics_->SegmentCacheHit();  // joined a fetch in flight
    if (promote_joined) Promote(segment);
  }
  auto ticket = std::unique_ptr<Ticket>(new Ticket(shared_from_this(), pending, waiter));
  if (start) {
    auto self = shared_from_this();
    std::unique_ptr<FetchHandle> handle =
        fetcher_->Fetch(layout_->segments[segment].message_id, options,
                        [self, segment, pending](absl::StatusOr<Segment> result) {
                          self->OnFetched(segment, pending, std::move(result));
                        });
    bool cancel_now = false;
    std::shared_ptr<FetchHandle> promote;
    {
      absl::MutexLock lock(&mu_);
      if (pending->abandoned) {
        cancel_now = true;
      } else {
        pending->handle = std::move(handle);
        if (pending->promote) promote = pending->handle;
      }
    }
    if (cancel_now && handle != nullptr) {
      metrics_->FetchCancelled();
      handle->Cancel();
    }
    if (promote != nullptr) promote->Promote();
  }
  return ticket;
}

void FileCache::OnFetched(int32_t segment, std::shared_ptr<Ticket::Pending> pending, absl::StatusOr<Segment> result) {
  std::vector<std::pair<uint64_t, DataCallback>> waiters;
  absl::StatusOr<std::shared_ptr<const std::string>> out = nullptr;
  // A fetch nobody charged (a caller without a budget) is charged here if
  // the LRU is to keep it, with room taken (outside this cache's lock: the
  // reclaimer locks every cache) from the segments of less recently opened
  // files when the budget is full; never from read-ahead (F11).
  std::shared_ptr<BudgetCharge> own_charge;
  bool uncharged = false;
  if (result.ok() && !result->info.damaged && budget_ != nullptr && lru_capacity_ > 0) {
    absl::MutexLock lock(&mu_);
    uncharged = pending->charge == nullptr || pending->charge->attached();
  }
  if (uncharged) {
    const int64_t size = static_cast<int64_t>(result->data->size());
    if (budget_->ReserveOrReclaim(size)) own_charge = std::make_shared<BudgetCharge>(budget_, size);
  }
  {
    absl::MutexLock lock(&mu_);
    const int64_t expected = layout_->segments[segment].size;
    if (result.ok() && result->info.damaged && static_cast<int64_t>(result->data->size()) < expected) {
      // A damaged copy that is also short (a truncated part, a lying yEnc
      // size) cannot be served as the segment: fail it like any DATA_LOSS.
      out = absl::DataLossError(absl::StrCat("damaged article <", layout_->segments[segment].message_id,
                                             "> decoded to ", result->data->size(), " bytes; the catalog expects ",
                                             expected, " (no clean copy on any provider)"));
    } else if (result.ok()) {
      // The bytes carry one charge from here on, wherever they are held.
      // (A cache without a budget keeps them uncharged: it counts nothing.)
      std::shared_ptr<const std::string> data = std::move(result->data);
      std::shared_ptr<const std::string> raw = data;
      bool charged = false;
      if (pending->charge != nullptr && !pending->charge->attached()) {
        data = BudgetCharge::Attach(std::move(pending->charge), std::move(data));
        charged = true;
      } else if (own_charge != nullptr) {
        data = BudgetCharge::Attach(std::move(own_charge), std::move(data));
        charged = true;
      }
      // A damaged copy is served (better a glitch than an aborted stream) but
      // not kept: the next read asks the broker again, so a healed provider
      // or a re-post is picked up instead of replaying the damage.
      if (!result->info.damaged) {
        if (budget_ != nullptr) {
          InsertLocked(segment, &data, charged);
        } else {
          InsertLocked(segment, &raw, false);
        }
      }
      out = std::move(data);
    } else {
      out = result.status();
      if (absl::IsNotFound(result.status())) missing_[segment] = {result.status(), absl::Now()};
    }
    auto it = pending_.find(segment);
    if (it != pending_.end() && it->second == pending) pending_.erase(it);
    waiters.swap(pending->waiters);
  }
  // The last waiter gets this function's reference too, so once the
  // callbacks have dropped theirs the LRU can free the segment (EvictBytes
  // frees only what nothing else holds).
  for (size_t i = 0; i < waiters.size(); ++i) {
    if (i + 1 < waiters.size()) {
      waiters[i].second(out);
    } else {
      waiters[i].second(std::move(out));
    }
  }
}

void FileCache::Withdraw(const std::shared_ptr<Ticket::Pending>& pending, uint64_t waiter) {
  std::shared_ptr<FetchHandle> cancel;
  {
    absl::MutexLock lock(&mu_);
    auto& w = pending->waiters;
    w.erase(std::remove_if(w.begin(), w.end(), [&](const auto& p) { return p.first == waiter; }), w.end());
    if (!w.empty() || pending->abandoned) return;
    auto it = pending_.find(pending->segment);
    if (it == pending_.end() || it->second != pending) return;  // already completed
    pending_.erase(it);
    pending->abandoned = true;
    cancel = std::move(pending->handle);
  }
  if (cancel != nullptr) {
    metrics_->FetchCancelled();
    cancel->Cancel();
  }
}

void FileCache::Promote(int32_t segment) {
  std::shared_ptr<FetchHandle> handle;
  {
    absl::MutexLock lock(&mu_);
    auto it = pending_.find(segment);
    if (it == pending_.end() || !it->second->read_ahead) return;
    Ticket::Pending& p = *it->second;
    p.read_ahead = false;  // once per fetch, whichever reader needs it first
    if (p.handle == nullptr) {
      p.promote = true;  // Acquire promotes it when Fetch() returns
      return;
    }
    handle = p.handle;
  }
  handle->Promote();
}

void FileCache::Ticket::Cancel() {
  if (cache_ == nullptr) return;
  cache_->Withdraw(pending_, waiter_);
  cache_.reset();
}

int64_t FileCache::fetches_started() const {
  absl::MutexLock lock(&mu_);
  return fetches_started_;
}

int64_t FileCache::lru_hits() const {
  absl::MutexLock lock(&mu_);
  return lru_hits_;
}

FileCacheRegistry::FileCacheRegistry(SegmentFetcher* fetcher, size_t capacity, size_t lru_segments_per_file,
                                     FrontendMetrics* metrics, absl::Duration missing_ttl, MemoryBudget* budget)
    : fetcher_(fetcher),
      capacity_(std::max<size_t>(1, capacity)),
      lru_segments_(lru_segments_per_file),
      metrics_(metrics),
      missing_ttl_(missing_ttl),
      budget_(budget) {}

std::string ReadLayout::KeyOf(const importer::v1::Entry& entry) {
  return absl::StrCat(entry.path(), "\n", entry.etag());
}

std::shared_ptr<FileCache> FileCacheRegistry::FindLocked(const std::string& key) {
  auto it = caches_.find(key);
  if (it == caches_.end()) return nullptr;
  order_.splice(order_.begin(), order_, it->second.second);
  return it->second.first;
}

std::shared_ptr<FileCache> FileCacheRegistry::Find(const std::string& key) {
  absl::MutexLock lock(&mu_);
  return FindLocked(key);
}

std::shared_ptr<FileCache> FileCacheRegistry::Get(std::shared_ptr<const ReadLayout> layout) {
  absl::MutexLock lock(&mu_);
  if (auto found = FindLocked(layout->key)) return found;
  auto cache = std::make_shared<FileCache>(fetcher_, layout, lru_segments_, metrics_, missing_ttl_, budget_);
  order_.push_front(layout->key);
  caches_[layout->key] = {cache, order_.begin()};
  while (caches_.size() > capacity_) {
    auto old = caches_.find(order_.back());
    old->second.first->Detach();
    caches_.erase(old);
    order_.pop_back();
  }
  return cache;
}

void FileCacheRegistry::Invalidate(const std::string& path) {
  std::string prefix = absl::EndsWith(path, "/") ? path : path + "/";
  absl::MutexLock lock(&mu_);
  for (auto it = order_.begin(); it != order_.end();) {
    absl::string_view file_path = absl::string_view(*it).substr(0, it->find('\n'));
    if (path == "/" || file_path == path || absl::StartsWith(file_path, prefix)) {
      caches_.at(*it).first->Detach();
      caches_.erase(*it);
      it = order_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace nzbmesh::frontend

namespace nzbmesh::frontend {

int64_t FileCacheRegistry::Reclaim(int64_t n) {
  absl::MutexLock lock(&mu_);
  int64_t freed = 0;
  for (auto it = order_.rbegin(); it != order_.rend() && freed < n; ++it) {
    freed += caches_.at(*it).first->EvictBytes(n - freed);
  }
  return freed;
}

int64_t FileCacheRegistry::cached_bytes() {
  absl::MutexLock lock(&mu_);
  int64_t total = 0;
  for (const auto& [key, entry] : caches_) total += entry.first->cached_bytes();
  return total;
}

}  // namespace nzbmesh::frontend
