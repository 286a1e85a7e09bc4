// Shared machinery of the file readers: the global read-ahead memory budget,
// the bounded closer pool (F7) and the retry-delay scheduler.
#ifndef NZBMESH_SERVICES_FRONTEND_READER_SUPPORT_H_
#define NZBMESH_SERVICES_FRONTEND_READER_SUPPORT_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace nzbmesh::frontend {

// Bytes of decoded segments held by the frontend (`stream_memory_limit`):
// every reader's read-ahead window and every file's segment LRU (F11).
// Lock-free. A reader reserves a segment's bytes before it fetches it; the
// reservation becomes the segment's BudgetCharge, which the decoded bytes
// carry wherever they go (reader slots, the LRU, chunks on their way to a
// client), so a segment is charged once however many hold it and stays
// charged until the last of them lets go.
//
// Priority: read-ahead and a newly fetched segment (ReserveOrReclaim) may
// take bytes from cached segments through the reclaimer; nothing ever takes
// bytes from read-ahead: a cache that finds no room does not keep the segment.
class MemoryBudget {
 public:
  // Frees at least `n` bytes of cached segments if it can (they are
  // Release()d back into this budget); returns the bytes freed. Must not call
  // back into the caller's locks (FileCacheRegistry::Reclaim).
  using Reclaimer = std::function<int64_t(int64_t n)>;

  // limit 0 = unlimited.
  explicit MemoryBudget(int64_t limit_bytes) : limit_(limit_bytes) {}
  // Installs the reclaimer; call before the budget is used (not thread-safe
  // against concurrent reservations).
  void SetReclaimer(Reclaimer r) { reclaimer_ = std::move(r); }
  // Reserves `n` bytes if that keeps usage within the limit.
  bool TryReserve(int64_t n);
  // TryReserve; when that fails, asks the reclaimer to evict cached segments
  // for the shortfall and tries once more.
  bool ReserveOrReclaim(int64_t n);
  // Reserves regardless of the limit: the one segment a reader needs to make
  // progress is never refused (so the overshoot is at most one segment per
  // reader, and only while read-ahead alone fills the budget).
  void ForceReserve(int64_t n) { NotePeak(used_.fetch_add(n, std::memory_order_relaxed) + n); }
  void Release(int64_t n) { used_.fetch_sub(n, std::memory_order_relaxed); }
  int64_t used() const { return used_.load(std::memory_order_relaxed); }
  // Highest used() seen since construction.
  int64_t peak() const { return peak_.load(std::memory_order_relaxed); }
  int64_t limit() const { return limit_; }

 private:
  void NotePeak(int64_t v) {
    int64_t p = peak_.load(std::memory_order_relaxed);
    while (v > p && !peak_.compare_exchange_weak(p, v, std::memory_order_relaxed)) {
    }
  }
  const int64_t limit_;
  Reclaimer reclaimer_;
  std::atomic<int64_t> used_{0};
  std::atomic<int64_t> peak_{0};
};

// Bytes reserved in a MemoryBudget, given back when the last reference to
// the charge goes away. A fetch in flight is held by its reader's slot
// through its charge; once the segment arrives, Attach() binds the decoded
// bytes to the charge and hands out pointers whose owner is the charge, so
// every holder of the segment — reader slots, the file's LRU, a chunk an
// HTTP write is still sending — keeps the same one charge alive.
class BudgetCharge {
 public:
  // `bytes` must already be reserved in `budget` (not null).
  BudgetCharge(MemoryBudget* budget, int64_t bytes) : budget_(budget), bytes_(bytes) {}
  ~BudgetCharge() { budget_->Release(bytes_); }
  BudgetCharge(const BudgetCharge&) = delete;
  BudgetCharge& operator=(const BudgetCharge&) = delete;
  int64_t bytes() const { return bytes_; }
  // True once Attach() gave the charge its segment.
  bool attached() const { return data_ != nullptr; }

  // Binds `data` (the arrived segment) to `charge`, once: the returned
  // pointer shares ownership of the charge, so the bytes stay charged while
  // it or any copy lives. Callers hand over their reference to the charge
  // (the holders of the segment are then exactly the holders of the charge,
  // which FileCache::EvictBytes relies on). Not thread-safe against itself
  // (the FileCache's lock serialises it).
  static std::shared_ptr<const std::string> Attach(std::shared_ptr<BudgetCharge> charge,
                                                   std::shared_ptr<const std::string> data) {
    charge->data_ = std::move(data);
    const std::string* bytes = charge->data_.get();
    return std::shared_ptr<const std::string>(std::move(charge), bytes);
  }

 private:
  MemoryBudget* const budget_;
  const int64_t bytes_;
  std::shared_ptr<const std::string> data_;  // set by Attach(), never changed after
};

// Runs close/drain work on at most `threads` threads started lazily; when
// every thread is busy the work runs inline on the caller (back-pressure), so
// a seek storm never grows threads beyond `threads` (F7). Nothing is queued.
class CloserPool {
 public:
  explicit CloserPool(int threads);
  ~CloserPool();  // finishes running work, joins
  void Run(std::function<void()> fn);
  int threads_started() const;
  int64_t inline_runs() const { return inline_runs_.load(); }

 private:
  void Loop();
  const int max_threads_;
  mutable absl::Mutex mu_;  // protects the fields below
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  int idle_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<std::function<void()>> work_ ABSL_GUARDED_BY(mu_);  // at most idle_ entries
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int64_t> inline_runs_{0};
};

// One thread running delayed callbacks (retry backoff). Cancel() guarantees the
// callback will not start afterwards (it may be running already).
class DelayScheduler {
 public:
  DelayScheduler();
  ~DelayScheduler();
  uint64_t Schedule(absl::Duration delay, std::function<void()> fn);
  void Cancel(uint64_t id);

 private:
  void Loop();
  absl::Mutex mu_;  // protects the fields below
  std::multimap<absl::Time, std::pair<uint64_t, std::function<void()>>> tasks_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_READER_SUPPORT_H_
