// FileReader: reads one byte range [begin, end) of a catalog file, fetching
// the segments behind it with a bounded, adaptive read-ahead window.
//
// Threading: every method is thread-safe. Fetch callbacks arrive on fetcher
// threads; the reader's mutex is never held while calling into the fetcher,
// the file cache's fetch path or a user callback. Close() never takes the
// reader's mutex before the interrupt is visible (F8): it flips an atomic,
// wakes blocked Read() calls through an atomic wait, and hands the drain
// (cancelling fetches, returning memory) to the closer pool (F7).
//
// Invariants (tests/services/frontend/file_reader_test.cc):
//   F1 at most the window (<= max_read_ahead) of segment fetches in flight;
//   F2 a sequential read fetches each segment exactly once;
//   F3 a segment reported missing is never fetched again (FileCache);
//   F4 Close() cancels pending retries at once;
//   F5 small random reads are served by the file's segment LRU;
//   F6 reads are clamped to the file size;
//   F10 until the first segment of a fresh reader has arrived, exactly one
//       fetch is in flight (the window opens only after it);
//   F12 when the read position reaches a segment whose read-ahead fetch is
//       still pending, that fetch is promoted to needed-now, once (B13);
//   F13 a STREAM reader keeps at most max(2, 1 + StreamShare()) fetches in
//       flight when the fetcher knows its share of the broker's capacity.
#ifndef NZBMESH_SERVICES_FRONTEND_FILE_READER_H_
#define NZBMESH_SERVICES_FRONTEND_FILE_READER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/frontend/file_cache.h"
#include "services/frontend/reader_support.h"
#include "services/frontend/segment_fetcher.h"

namespace nzbmesh::frontend {

// Process-wide pieces every reader uses; all must outlive the readers.
struct ReaderEnv {
  MemoryBudget* budget = nullptr;       // stream_memory_limit
  CloserPool* closers = nullptr;        // where Close() drains; nullptr = inline
  DelayScheduler* scheduler = nullptr;  // retry backoff; nullptr = retry at once
};

struct ReaderOptions {
  // Until the reader's first segment has arrived, at most fresh_read_ahead
  // segments are fetched — the one the player waits for (needed now) and
  // fresh_read_ahead − 1 flagged read-ahead, which the broker serves after
  // every needed-now fetch (B12) — and the window never grows (F10: after a
  // start or seek the segment the player waits for does not share bandwidth
  // with a burst of read-ahead). 1 = that segment alone; 2 (default) also
  // hides one article latency right after the first segment, which with
  // real providers' 100-300 ms replies is otherwise a stall at every start.
  // Then the window opens to initial_read_ahead segments and doubles each
  // time the consumer catches up with it (waits on a segment still in
  // flight: it reads faster than the window fetches), up to max_read_ahead.
  int fresh_read_ahead = 2;
  // When > 0, the fresh read-ahead (fresh_read_ahead − 1 segments) starts
  // only once the needed segment has been in flight this long: a segment
  // that comes sooner (a provider or cache nearer than the delay) travels
  // alone, its first byte as fast as with fresh_read_ahead 1; a slower one
  // still has all but this delay of the next one's latency hidden. The
  // price is at most this delay on the segment after the first, which a
  // player buffering after a seek waits for: 2 ms (the default) is under
  // 10 % of a 20 ms provider's answer and under 2 % of a typical 100-300 ms
  // one (docs/PERFORMANCE.md has the figures). 0 starts them together.
  // Needs ReaderEnv::scheduler (without one: 0).
  absl::Duration fresh_read_ahead_delay = absl::Milliseconds(2);
  int initial_read_ahead = 2;
  // Upper bound of the window (F1). Values < 1 are treated as 1. STREAM
  // readers are bounded further by the fetcher's StreamShare() (F13).
  int max_read_ahead = 16;
  // Attempts per segment for transient errors (UNAVAILABLE, RESOURCE_EXHAUSTED,
  // DEADLINE_EXCEEDED, UNKNOWN, INTERNAL, ABORTED). NOT_FOUND and DATA_LOSS
  // are never retried (F3). 1 = no retry.
  int max_fetch_attempts = 3;
  // Delay before retry n is n * retry_delay.
  absl::Duration retry_delay = absl::Milliseconds(100);
  TrafficClass traffic_class = TrafficClass::kStream;
  // Broker session the fetches count against; may be null.
  std::shared_ptr<const StreamSession> session;
};

class FileReader : public std::enable_shared_from_this<FileReader> {
 public:
  // A slice of a decoded segment; `owner` keeps the bytes alive. size 0 = end.
  struct Chunk {
    std::shared_ptr<const std::string> owner;
    const char* data = nullptr;
    size_t size = 0;
  };
  using ChunkCallback = std::function<void(absl::StatusOr<Chunk>)>;

  struct Stats {
    int64_t position = 0;       // next file offset to deliver
    int64_t bytes_delivered = 0;
    int window = 0;             // current read-ahead target (segments)
    int max_window = 0;
    int in_flight = 0;          // fetches outstanding now
    int max_in_flight = 0;
    int64_t stalls = 0;         // times the consumer had to wait
    int64_t reserved_bytes = 0; // bytes its slots hold now (reserved or arrived)
  };

  // Reads [begin, end) of `file`, clamped to the file size (F6). Starts
  // fetching at once.
  static std::shared_ptr<FileReader> Open(const ReaderEnv& env, std::shared_ptr<FileCache> file, int64_t begin,
                                          int64_t end, ReaderOptions options);
  ~FileReader();

  // Makes the reader's later fetches count against `session` (a reader opened
  // without one). Lets a response start its first fetch before it opens its
  // broker session: opening one costs the first fetch ~0.3 ms on loopback.
  // Ignored after Close().
  void AttachSession(std::shared_ptr<const StreamSession> session);

  // Delivers the next chunk of at most `max_bytes` (one segment piece at most)
  // to `done`, inline when ready. One call outstanding at a time. Errors:
  // NOT_FOUND (segment missing), DATA_LOSS, UNAVAILABLE..., CANCELLED after Close().
  void ReadAsync(size_t max_bytes, ChunkCallback done);

  // Blocking read into `buf`; returns bytes read, 0 at the end of the range.
  absl::StatusOr<size_t> Read(char* buf, size_t n);

  // Stops the reader: blocked reads return CANCELLED at once, outstanding
  // fetches and retries are cancelled, reserved memory is returned. Fast,
  // idempotent, callable from any thread.
  void Close();
  bool closed() const { return closed_.load(std::memory_order_acquire); }

  Stats stats() const;
  int64_t begin() const { return begin_; }
  int64_t end() const { return end_; }

 private:
  enum class SlotState { kPending, kReady, kFailed };
  struct Slot {
    SlotState state = SlotState::kPending;
    std::shared_ptr<const std::string> data;
    absl::Status status;
    std::unique_ptr<FileCache::Ticket> ticket;
    // The reservation for a pending fetch's bytes (null without a budget).
    // Handed to the fetch; once the segment arrives, `data` carries the
    // segment's one charge (BudgetCharge::Attach) and this is dropped.
    std::shared_ptr<BudgetCharge> charge;
    int attempts = 0;
    uint64_t fetch_id = 0;
    uint64_t retry_id = 0;  // scheduled retry, 0 = none
    bool stalled = false;   // the consumer already waited on this slot
    bool read_ahead = false;  // its fetch was started as read-ahead
    bool promoted = false;    // ... and promoted since (F12)
  };
  // Work decided under the lock and run after it is released.
  struct Actions {
    struct Fetch {
      int32_t segment;
      uint64_t fetch_id;
      std::shared_ptr<BudgetCharge> charge;  // the slot's reservation (may be null)
    };
    std::vector<Fetch> fetch;
    std::vector<std::unique_ptr<FileCache::Ticket>> cancel;
    std::vector<uint64_t> cancel_retries;
    std::vector<int32_t> promote;  // read-ahead the reader now needs (F12)
    ChunkCallback deliver;
    absl::StatusOr<Chunk> delivery = Chunk{};
  };
  enum class Take { kChunk, kNotReady, kError };

  FileReader(const ReaderEnv& env, std::shared_ptr<FileCache> file, int64_t begin, int64_t end,
             ReaderOptions options);
  void PumpLocked(Actions* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Take TakeLocked(size_t max, absl::StatusOr<Chunk>* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // PumpLocked, then the parked read: one parked on a segment that had no
  // slot may find it ready now (the pump took it from the file's LRU), and
  // no fetch will arrive to wake it, so it is served here (into `a`, unless
  // `a` already delivers something). Every pump with a read parked is this.
  void PumpAndServeParkedLocked(Actions* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether TakeLocked would return a chunk or an error now (not kNotReady),
  // without TakeLocked's accounting of a stall.
  bool TakeableLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Run(Actions a) ABSL_LOCKS_EXCLUDED(mu_);
  void OnData(int32_t segment, uint64_t fetch_id, absl::StatusOr<std::shared_ptr<const std::string>> result);
  void Retry(int32_t segment, uint64_t fetch_id);
  // The fresh read-ahead delay has passed (F10): lets PumpLocked fetch it.
  void OnFreshDelay();
  void CancelFreshTimerLocked(Actions* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Drain();
  void Bump();
  FetchOptions FetchOptionsLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ReaderEnv env_;
  const std::shared_ptr<FileCache> file_;
  const std::shared_ptr<const ReadLayout> layout_;
  const int64_t begin_;
  const int64_t end_;
  const ReaderOptions options_;  // options_.session is moved into session_

  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> version_{0};  // bumped on every state change; Read() waits on it

  mutable absl::Mutex mu_;  // protects the read position, the window and its slots
  size_t piece_ ABSL_GUARDED_BY(mu_) = 0;       // current piece index in the layout
  int64_t pos_ ABSL_GUARDED_BY(mu_) = 0;        // next file offset to deliver
  int window_ ABSL_GUARDED_BY(mu_) = 1;
  bool ramped_ ABSL_GUARDED_BY(mu_) = false;  // the first segment has arrived (F10)
  // fresh_read_ahead_delay: the timer (0 = none scheduled) and whether it fired.
  uint64_t fresh_timer_ ABSL_GUARDED_BY(mu_) = 0;
  bool fresh_delay_passed_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<int32_t, Slot> slots_ ABSL_GUARDED_BY(mu_);
  uint64_t next_fetch_id_ ABSL_GUARDED_BY(mu_) = 1;
  ChunkCallback pending_read_ ABSL_GUARDED_BY(mu_);
  size_t pending_max_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status failed_ ABSL_GUARDED_BY(mu_);
  bool drained_ ABSL_GUARDED_BY(mu_) = false;
  Stats stats_ ABSL_GUARDED_BY(mu_);
  // Released on Close() so the broker session ends with the response (F9).
  std::shared_ptr<const StreamSession> session_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_FILE_READER_H_
