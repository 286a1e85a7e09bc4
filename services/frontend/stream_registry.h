// The active streams of a frontend (GET/DELETE /api/streams): one
// ActiveStream per data-reading response in progress, plus the last few that
// ended, with their totals.
//
// Threading: the session that owns an ActiveStream updates its counters on its
// strand with relaxed atomics only (no lock per chunk or byte); the registry's
// mutex is taken when a stream starts or ends and when the list is read.
// Bounded: at most one active entry per open connection (max_connections) and
// `max_recent` ended ones.
#ifndef NZBMESH_SERVICES_FRONTEND_STREAM_REGISTRY_H_
#define NZBMESH_SERVICES_FRONTEND_STREAM_REGISTRY_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace nzbmesh::frontend {

class ActiveStream {
 public:
  // Ends the response from another thread: runs `done(true)` once its fetches
  // are cancelled and its broker session released, `done(false)` when the
  // response had already ended.
  using KillFn = std::function<void(std::function<void(bool killed)> done)>;
  // Read-ahead bytes the response holds now; called only while listing.
  using ReadAheadFn = std::function<int64_t()>;

  struct Info {
    std::string path;        // as the client asked for it, "/dav/..." (decoded)
    std::string client;      // remote IP address
    std::string user_agent;  // at most 200 bytes, non-printable bytes as '?'
    absl::Time started;
    int64_t offset = 0;  // first file byte of the response
  };

  ActiveStream(uint64_t id, Info info, KillFn kill, ReadAheadFn read_ahead);

  // "s<N>", unique per process.
  std::string id() const;
  uint64_t numeric_id() const { return id_; }
  const Info& info() const { return info_; }

  // Owner's strand only. `n` body bytes were written; `offset` is the next
  // file byte. Lock-free.
  void AddBytes(int64_t n, int64_t offset, absl::Time now);

  int64_t bytes_sent() const { return bytes_.load(std::memory_order_relaxed); }
  int64_t offset() const { return offset_.load(std::memory_order_relaxed); }
  // Rate over the last completed second of sending; decays when the stream
  // stalls; the average since the start during the first second.
  double BytesPerSecond(absl::Time now) const;

  void Kill(std::function<void(bool)> done) const { kill_(std::move(done)); }
  int64_t ReadAheadBytes() const { return read_ahead_ ? read_ahead_() : 0; }

 private:
  const uint64_t id_;
  const Info info_;
  const KillFn kill_;
  const ReadAheadFn read_ahead_;
  std::atomic<int64_t> bytes_{0};
  std::atomic<int64_t> offset_{0};
  // The rate window: written by the owner only, read by listings.
  std::atomic<int64_t> window_start_ns_;
  std::atomic<int64_t> window_bytes_{0};
  std::atomic<double> rate_{-1};  // < 0: no full window yet
};

class StreamRegistry {
 public:
  struct Options {
    // Ended streams kept for the listing (newest first). 0 = none.
    size_t max_recent = 32;
    // How long an ended stream stays listed.
    absl::Duration keep_recent = absl::Minutes(10);
  };

  explicit StreamRegistry(Options options) : options_(options) {}

  // Registers a response that starts streaming; the caller keeps the pointer
  // and calls AddBytes on it, and End() when the response ends.
  std::shared_ptr<ActiveStream> Start(ActiveStream::Info info, ActiveStream::KillFn kill,
                                      ActiveStream::ReadAheadFn read_ahead);
  // Moves the stream to the recently-ended list with its totals. Idempotent.
  void End(const ActiveStream& stream, absl::Time now);

  // The active stream named `id` ("s<N>"), or nullptr.
  std::shared_ptr<ActiveStream> Find(const std::string& id) const;
  size_t active() const;

  // {"streams":[{id, path, client, user_agent, started_unix_ms, offset,
  //   bytes_sent, bytes_per_second, read_ahead_bytes}...],
  //  "recent":[{id, path, client, user_agent, started_unix_ms, ended_unix_ms,
  //   bytes_sent}...]}; streams oldest first, recent newest first.
  std::string ListJson(absl::Time now) const;

 private:
  struct Ended {
    uint64_t id = 0;
    ActiveStream::Info info;
    absl::Time ended;
    int64_t bytes_sent = 0;
  };

  const Options options_;
  std::atomic<uint64_t> next_id_{1};
  mutable absl::Mutex mu_;  // protects the active map and the recent list
  absl::flat_hash_map<uint64_t, std::shared_ptr<ActiveStream>> active_ ABSL_GUARDED_BY(mu_);
  std::deque<Ended> recent_ ABSL_GUARDED_BY(mu_);  // front = newest
};

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_STREAM_REGISTRY_H_
