// ReadClassifier: the broker traffic class of one read (issue 6). Media
// scanners (Plex/Jellyfin library scans, ffprobe, rclone directory listings
// followed by header peeks) read short, scattered ranges; playback reads long
// or open-ended ranges, or short ranges back to back. Scanning must never
// compete with playback, so:
//
//   * an open-ended read (no Range, or a range reaching the end of the file)
//     or one longer than `probe_max_bytes` is STREAM;
//   * a short read that continues sequentially — it starts exactly where a
//     read of the same file by the same client ended, no longer than
//     `sequential_window` ago — is promoted to STREAM: a player reading in
//     small pieces keeps going past the probe threshold that way;
//   * any other short read is PROBE.
//
// "Ended" is where a read was asked to end (Classify) and also where it
// really stopped when the client went away early (Ended), so a player that
// drops a connection and asks for the rest is still sequential.
//
// Thread-safe; every call is O(1) except when the table is full (then one
// O(max_tracked) sweep of expired entries). Time is passed in, never read.
#ifndef NZBMESH_SERVICES_FRONTEND_READ_CLASSIFIER_H_
#define NZBMESH_SERVICES_FRONTEND_READ_CLASSIFIER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/frontend/segment_fetcher.h"

namespace nzbmesh::frontend {

class ReadClassifier {
 public:
  struct Options {
    // A bounded read no longer than this is a PROBE candidate. 0 = every read is STREAM.
    int64_t probe_max_bytes = 1 << 20;
    // How long the end of a read is remembered for the continuation check.
    // 0 = no read is ever a continuation (short reads are always PROBE).
    absl::Duration sequential_window = absl::Seconds(30);
    // (client, file) pairs remembered; past it, expired pairs are dropped,
    // then the least recently used one. At least 1.
    size_t max_tracked = 4096;
  };

  explicit ReadClassifier(const Options& options);

  // The class of a read of [first, end) of `path` by `client` (an address),
  // `bounded` = false for open-ended reads. Records `end` as where this read
  // ends. Pure decision plus bookkeeping; never blocks beyond a short lock.
  TrafficClass Classify(absl::string_view client, absl::string_view path, int64_t first, int64_t end, bool bounded,
                        absl::Time now);

  // A read of `path` by `client` stopped at `pos` (exclusive), e.g. the client
  // disconnected mid-range; a later read starting at `pos` continues it.
  void Ended(absl::string_view client, absl::string_view path, int64_t pos, absl::Time now);

  // Pairs currently remembered (tests, diagnostics).
  size_t tracked() const;

 private:
  // Recent read ends of one (client, file); a player may run a few
  // connections on one file (read-ahead), each with its own end.
  static constexpr size_t kEndsPerKey = 4;
  struct Ends {
    std::array<std::pair<int64_t, absl::Time>, kEndsPerKey> ends{};  // (end, when); when == InfinitePast = empty
    size_t next = 0;                                                // slot overwritten next
    absl::Time last_used = absl::InfinitePast();
  };

  static std::string Key(absl::string_view client, absl::string_view path);
  void RecordLocked(const std::string& key, int64_t end, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MakeRoomLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;  // protects ends_
  absl::flat_hash_map<std::string, Ends> ends_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_READ_CLASSIFIER_H_
