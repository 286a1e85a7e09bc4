// The frontend's view of the broker: fetch one decoded segment, hold a stream
// session. Pure interface (the seam); the real implementation is
// grpc_segment_fetcher.h, tests use tests/services/frontend/fake_segment_fetcher.h.
#ifndef NZBMESH_SERVICES_FRONTEND_SEGMENT_FETCHER_H_
#define NZBMESH_SERVICES_FRONTEND_SEGMENT_FETCHER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace nzbmesh::frontend {

// yEnc header fields of a fetched article (mirrors broker.v1.SegmentMetadata).
struct SegmentInfo {
  std::string name;         // file name from =ybegin
  int64_t part = 0;         // 0 for single-part posts
  int64_t total_parts = 0;  // 0 when the poster did not say
  int64_t begin = 0;        // 1-based first byte of the part in the file
  int64_t end = 0;          // 1-based last byte
  int64_t file_size = 0;    // =ybegin size
  uint32_t crc32 = 0;
  bool crc_verified = false;
  std::string provider;     // provider that served it (diagnostics only)
  // The broker found no clean copy on any provider (DATA_LOSS with every
  // byte it decoded): served unverified, never cached (a provider may heal).
  bool damaged = false;
};

// One decoded article. `data` is immutable and shared: caches and every reader
// holding the segment point at the same bytes.
struct Segment {
  std::shared_ptr<const std::string> data;
  SegmentInfo info;
};

// Broker traffic classes the frontend uses.
enum class TrafficClass {
  kStream,  // playback
  kProbe,   // short reads by media scanners
};

struct FetchOptions {
  TrafficClass traffic_class = TrafficClass::kStream;
  // Broker stream session the fetch counts against; 0 = none.
  uint64_t stream_session_id = 0;
  // Fetched ahead of the read position (not the segment a reader waits for
  // now): the broker serves such STREAM fetches after needed-now ones (B12).
  bool read_ahead = false;
};

// A fetch in progress. Destroying the handle does NOT cancel: call Cancel().
class FetchHandle {
 public:
  virtual ~FetchHandle() = default;
  // Cancels the fetch at once: the broker drops it from its queue or frees its
  // slot. Thread-safe and idempotent; a no-op once the fetch completed. The
  // callback still runs exactly once (with CANCELLED unless the result won
  // the race), possibly on the calling thread before Cancel returns.
  virtual void Cancel() = 0;
  // The reader now needs this read-ahead fetch (FetchOptions::read_ahead):
  // asks the broker to serve it as needed-now if it still waits in the
  // broker's queue, keeping its place ahead of later needed-now fetches
  // (B13); nothing changes for one already on the wire. A no-op for a fetch
  // that was not read-ahead, was promoted before, or has completed.
  // Thread-safe; never blocks and never runs the fetch's callback.
  virtual void Promote() = 0;
};

// A broker stream session held while a response plays; closed on destruction.
class StreamSession {
 public:
  virtual ~StreamSession() = default;
  // The broker's session id, or 0 while the broker has not answered yet (or
  // the session failed). Thread-safe, never blocks.
  virtual uint64_t id() const = 0;
};

using FetchCallback = std::function<void(absl::StatusOr<Segment>)>;

class SegmentFetcher {
 public:
  virtual ~SegmentFetcher() = default;

  // Starts fetching one article. `done` runs exactly once, on any thread,
  // possibly inline within Fetch() or Cancel(): callers must not hold a lock
  // that `done` takes while calling either. Status codes follow the broker:
  // NOT_FOUND (missing on every provider), DATA_LOSS, RESOURCE_EXHAUSTED,
  // UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED.
  virtual std::unique_ptr<FetchHandle> Fetch(const std::string& message_id, const FetchOptions& options,
                                             FetchCallback done) = 0;

  // Opens a broker stream session labelled `label` (shown in pool status).
  // Never blocks; the id becomes known asynchronously.
  virtual std::unique_ptr<StreamSession> OpenSession(const std::string& label) = 0;

  // A stream reader's fair share of the broker's STREAM capacity: fetches it
  // may keep in flight, rounded up (the broker's slots divided among the
  // stream sessions open at the broker, every frontend's, or at least those
  // open through this fetcher). 0 = unknown: no bound.
  // Thread-safe, lock-free and cheap (readers call it under their lock).
  virtual int StreamShare() const = 0;
};

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_SEGMENT_FETCHER_H_
