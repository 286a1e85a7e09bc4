// Per-file read state shared by every response reading one file version:
// the byte-range -> segment map (ReadLayout), an LRU of whole decoded
// segments (F5), a record of segments known missing (F3), and de-duplication
// of concurrent fetches of the same segment. FileCacheRegistry keeps the
// FileCaches of recently read files.
#ifndef NZBMESH_SERVICES_FRONTEND_FILE_CACHE_H_
#define NZBMESH_SERVICES_FRONTEND_FILE_CACHE_H_

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "nzbmesh/importer/v1/catalog.pb.h"
#include "services/frontend/frontend_metrics.h"
#include "services/frontend/reader_support.h"
#include "services/frontend/segment_fetcher.h"

namespace nzbmesh::frontend {

// Where a file's bytes live. Plain files: one piece per segment. Archive
// members: one piece per (extent ∩ volume segment), so a piece may start in
// the middle of a decoded segment (e.g. after a RAR block header).
struct ReadLayout {
  struct SegmentRef {
    std::string message_id;
    int64_t size = 0;  // decoded bytes the catalog expects
  };
  struct Piece {
    int64_t file_offset = 0;     // first file byte of the piece
    int64_t length = 0;
    int32_t segment = 0;         // index into `segments`
    int64_t segment_offset = 0;  // where in the decoded segment the piece starts
  };

  std::string key;   // identity of the file version (path + etag)
  std::string path;  // catalog path (for invalidation and messages)
  int64_t size = 0;
  std::vector<SegmentRef> segments;
  std::vector<Piece> pieces;  // sorted by file_offset; cover [0, size) without gaps

  // Builds the map from the catalog's FileLayout. INVALID_ARGUMENT (naming the
  // file and what is wrong) when segments/extents leave a gap or overlap, or
  // an extent names a volume that does not exist.
  static absl::StatusOr<std::shared_ptr<const ReadLayout>> FromProto(const importer::v1::FileLayout& layout);
  // The `key` FromProto gives a layout of this entry.
  static std::string KeyOf(const importer::v1::Entry& entry);
  // Index of the piece containing `offset` (pieces.size() when offset >= size).
  size_t PieceAt(int64_t offset) const;
};

class FileCache : public std::enable_shared_from_this<FileCache> {
 public:
  using DataCallback = std::function<void(absl::StatusOr<std::shared_ptr<const std::string>>)>;

  // A reader's interest in a fetch. Cancel() withdraws it; the fetch itself is
  // cancelled when its last interested reader withdraws. After Cancel() the
  // callback may still run if it was already being delivered.
  class Ticket {
   public:
    ~Ticket() = default;
    void Cancel();

   private:
    friend class FileCache;
    struct Pending;
    Ticket(std::shared_ptr<FileCache> cache, std::shared_ptr<Pending> pending, uint64_t waiter)
        : cache_(std::move(cache)), pending_(std::move(pending)), waiter_(waiter) {}
    std::shared_ptr<FileCache> cache_;
    std::shared_ptr<Pending> pending_;
    uint64_t waiter_;
  };

  // `fetcher` (and `metrics`, which may be null) must outlive the cache.
  // lru_capacity 0 disables the LRU.
  // A segment found missing is not fetched again for `missing_ttl` (F3: no
  // reader re-fetches it); after that a provider may have it again (a
  // backbone outage, a re-post), so it is tried afresh.
  // `budget` (may be null; must outlive the cache and every segment it hands
  // out) is charged the bytes of every segment the LRU holds (F11), once:
  // a segment fetched with a reader's charge keeps that charge in the LRU,
  // one fetched without is charged here. When the budget is full a new
  // segment takes the room of cached segments (through the budget's
  // reclaimer: least recently opened files first, else this file's own
  // oldest), or is not kept; it never takes bytes that read-ahead holds.
  FileCache(SegmentFetcher* fetcher, std::shared_ptr<const ReadLayout> layout, size_t lru_capacity,
            FrontendMetrics* metrics = nullptr, absl::Duration missing_ttl = absl::Seconds(60),
            MemoryBudget* budget = nullptr);
  ~FileCache();  // returns the LRU's bytes to the budget

  const ReadLayout& layout() const { return *layout_; }
  SegmentFetcher* fetcher() const { return fetcher_; }
  std::shared_ptr<const ReadLayout> layout_ptr() const { return layout_; }

  // The decoded segment when cached (refreshes its LRU position), else nullptr.
  std::shared_ptr<const std::string> Lookup(int32_t segment);
  // NOT_FOUND status when the segment is known missing (within missing_ttl), else OK.
  absl::Status KnownMissing(int32_t segment) const;

  // Fetches `segment` (or joins a fetch already running). A damaged segment
  // (SegmentInfo::damaged) is delivered but not cached; a damaged one shorter
  // than the layout's segment size is delivered as DATA_LOSS. `done` runs once
  // unless the ticket is cancelled first; it may run inline. Returns nullptr
  // when `done` already ran (cache hit or known missing).
  // `charge` (may be null) is the caller's reservation for the segment's
  // bytes: the fetch keeps it, and the delivered data carries it
  // (BudgetCharge::Attach). A caller joining a fetch already charged keeps
  // its own reservation until its data arrives (then drops it).
  std::unique_ptr<Ticket> Acquire(int32_t segment, const FetchOptions& options, DataCallback done,
                                  std::shared_ptr<BudgetCharge> charge = nullptr);

  // The segment a reader now needs: if its fetch is pending and was started
  // as read-ahead, promotes it at the broker once (FetchHandle::Promote, B13);
  // otherwise a no-op. Never blocks, never runs a fetch callback.
  void Promote(int32_t segment);

  int64_t fetches_started() const;
  int64_t lru_hits() const;
  // Bytes of the segments the LRU holds now (each charged to the budget once,
  // together with any reader holding the same segment).
  int64_t cached_bytes() const;

  // Evicts least recently used segments that nothing but the LRU holds until
  // at least `n` bytes are freed or none is left; returns the bytes freed
  // (released to the budget). A segment a reader or a client write still
  // holds is kept: dropping it from the LRU would free nothing.
  int64_t EvictBytes(int64_t n);
  // Empties the LRU and stops caching (the registry forgot this file; readers
  // still holding it keep working uncached, so no bytes stay charged where
  // nobody can reclaim them).
  void Detach();

 private:
  void OnFetched(int32_t segment, std::shared_ptr<Ticket::Pending> pending, absl::StatusOr<Segment> result);
  void Withdraw(const std::shared_ptr<Ticket::Pending>& pending, uint64_t waiter);
  // Caches `*data`. `charged`: it already carries a charge (else, with a
  // budget, one is reserved here, evicting this file's own oldest entries if
  // needed, and `*data` is replaced by the charged pointer; without room the
  // segment is not kept).
  void InsertLocked(int32_t segment, std::shared_ptr<const std::string>* data, bool charged)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the entry `it` points at; returns its bytes if that freed them
  // (nothing else held the segment), else 0.
  int64_t EvictLocked(std::list<int32_t>::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The least recently used entry nothing but the LRU holds (what evicting
  // frees), or lru_.end().
  std::list<int32_t>::iterator OldestSoleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  SegmentFetcher* const fetcher_;
  const std::shared_ptr<const ReadLayout> layout_;
  const size_t lru_capacity_;
  FrontendMetrics* const metrics_;  // never null (a no-op instance when none given)
  const absl::Duration missing_ttl_;
  MemoryBudget* const budget_;  // may be null

  mutable absl::Mutex mu_;  // protects the LRU, the missing set, pending fetches, counters
  int64_t cached_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool detached_ ABSL_GUARDED_BY(mu_) = false;
  std::list<int32_t> lru_ ABSL_GUARDED_BY(mu_);  // front = most recent
  absl::flat_hash_map<int32_t, std::pair<std::shared_ptr<const std::string>, std::list<int32_t>::iterator>> cached_
      ABSL_GUARDED_BY(mu_);
  // Known-missing segments: the NOT_FOUND status and when it was learnt.
  absl::flat_hash_map<int32_t, std::pair<absl::Status, absl::Time>> missing_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int32_t, std::shared_ptr<Ticket::Pending>> pending_ ABSL_GUARDED_BY(mu_);
  uint64_t next_waiter_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t fetches_started_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t lru_hits_ ABSL_GUARDED_BY(mu_) = 0;
};

// Keeps the FileCaches of the `capacity` most recently opened file versions,
// so a scanner's separate small requests share one segment LRU. Thread-safe.
class FileCacheRegistry {
 public:
  // `metrics` may be null; it gets the caches' hit/miss/cancel counts.
  // `budget` (may be null) is charged every cached segment (F11); install
  // Reclaim() as its reclaimer so read-ahead evicts cached segments before
  // its windows shrink.
  FileCacheRegistry(SegmentFetcher* fetcher, size_t capacity, size_t lru_segments_per_file,
                    FrontendMetrics* metrics = nullptr, absl::Duration missing_ttl = absl::Seconds(60),
                    MemoryBudget* budget = nullptr);
  // The cache for layout->key, created if needed (a changed layout for the same
  // key replaces the old cache).
  std::shared_ptr<FileCache> Get(std::shared_ptr<const ReadLayout> layout);
  // The cache kept for `key` (ReadLayout::KeyOf), marked most recent, or null.
  // Lets a request for a file version already open skip building its
  // ReadLayout again (~70 µs for 2,800 segments, on the time to first byte).
  std::shared_ptr<FileCache> Find(const std::string& key);
  // Forgets caches of `path` and everything below it.
  void Invalidate(const std::string& path);
  // Evicts cached segments, least recently opened file first, until at least
  // `n` bytes are freed or no cache holds any; returns the bytes freed. Takes
  // the registry's lock, then each cache's: call it with no FileCache lock held.
  int64_t Reclaim(int64_t n);
  // Bytes held by the LRUs of the files kept.
  int64_t cached_bytes();

 private:
  SegmentFetcher* const fetcher_;
  const size_t capacity_;
  const size_t lru_segments_;
  FrontendMetrics* const metrics_;
  const absl::Duration missing_ttl_;
  MemoryBudget* const budget_;
  // The cache for `key`, marked most recent, or null.
  std::shared_ptr<FileCache> FindLocked(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;  // protects the map and LRU order
  std::list<std::string> order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::pair<std::shared_ptr<FileCache>, std::list<std::string>::iterator>> caches_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_FILE_CACHE_H_
