// FrontendServer: the HTTP/1.1 face of nzbmesh — WebDAV (/dav/), range GET,
// the SABnzbd-compatible API (/sabnzbd/api), /healthz and /readyz.
//
// Threading model: `io_threads` threads run one Asio io_context. Each
// connection is a Session bound to a strand; nothing blocks on those threads:
// catalog and importer calls are asynchronous, segment data arrives from
// FileReader callbacks (fetcher threads) and is posted back to the session's
// strand. While a response body streams, the session keeps a read armed on
// the socket so a client disconnect is seen at once (F9): the reader is closed
// (every outstanding fetch cancelled) and the broker stream session released.
// Closing readers drains on a bounded closer pool (F7). SABnzbd addurl
// downloads run on NzbUrlClient's own thread; the session waits for the
// callback like for any importer call.
//
// Admin API (API key in X-Api-Key or ?apikey=): GET /api/streams lists the
// streaming responses in progress (StreamRegistry; sessions update their
// counters with atomics, no lock per chunk); DELETE /api/streams/ID aborts one
// on its own strand: its fetches are cancelled and its broker session closed
// before the 204 is sent.
#ifndef NZBMESH_SERVICES_FRONTEND_FRONTEND_SERVER_H_
#define NZBMESH_SERVICES_FRONTEND_FRONTEND_SERVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/frontend/catalog_client.h"
#include "services/frontend/file_cache.h"
#include "services/frontend/file_reader.h"
#include "services/frontend/frontend_metrics.h"
#include "services/frontend/nzb_url_client.h"
#include "services/frontend/read_classifier.h"
#include "services/frontend/reader_support.h"
#include "services/frontend/segment_fetcher.h"
#include "services/frontend/stream_registry.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace nzbmesh::frontend {

class FrontendServer {
 public:
  struct WebDavUser {
    std::string username;
    // Lower-case hex SHA-256 of the password (config `password_sha256`).
    std::string password_sha256;
  };

  struct Options {
    // Address to bind; "127.0.0.1", "0.0.0.0", "::".
    std::string listen_address = "127.0.0.1";
    // TCP port; 0 picks a free one (see port()).
    int port = 0;
    // Threads running the event loop. 0 = 1. One is the default: the heavy
    // work (receiving segments, and sending a chunk that waited for its
    // segment) runs on the fetcher's threads, and with two io threads every
    // completion Asio posts from one wakes the other (25–50 µs per wake-up on
    // a 2-core VM). One io thread read 2 GiB 5 % faster on 6 % less CPU, and
    // a seek's first byte came 0.04–0.06× of a fetch sooner
    // (docs/PERFORMANCE.md, "One io thread").
    int io_threads = 1;
    // Open connections allowed; further connections are closed on accept. 0 = unlimited.
    int max_connections = 10000;
    // Request line + headers limit; larger requests get 431 and the connection
    // closes. Values above 65535 are lowered to it: Beast stores a field's
    // length in 16 bits and throws on longer ones.
    size_t max_header_bytes = 64 * 1024 - 1;
    // Body limit of WebDAV requests (PROPFIND); larger gets 413.
    size_t max_body_bytes = 1 << 20;
    // Body limit of SABnzbd uploads (addfile).
    size_t max_upload_bytes = 64 << 20;
    // A keep-alive connection may wait this long for the next request's first byte.
    absl::Duration idle_timeout = absl::Seconds(60);
    // From the first byte, the whole request (headers and body) must arrive
    // within this (slowloris defence); the connection is closed otherwise.
    absl::Duration request_timeout = absl::Seconds(20);
    // A single write to the client must complete within this; a client that
    // stops reading is disconnected (its fetches are cancelled).
    absl::Duration write_timeout = absl::Seconds(60);

    // Basic-auth users of /dav/. Empty = /dav/ is open for reading and DELETE
    // is refused (403).
    std::vector<WebDavUser> webdav_users;
    // Realm in WWW-Authenticate.
    std::string auth_realm = "nzbmesh";
    // Key of the SABnzbd API and of /api/streams. Empty = every SABnzbd call
    // but mode=version is refused, and /api/streams answers 403.
    std::string api_key;
    // Where the user's mount shows /dav/ (SABnzbd history `storage`).
    std::string complete_dir = "/mnt/nzbmesh";
    // SABnzbd categories offered to *arr apps (get_cats/get_config).
    std::vector<std::string> categories = {"movies", "tv", "music"};
    // SABnzbd mode=addurl: the NZB download (http/https only, capped at
    // max_upload_bytes like addfile) must finish within `addurl_timeout`,
    // redirects included, following at most `addurl_max_redirects` (0..5).
    // `addurl_ca_file`: PEM of extra CAs trusted for https ("" = system store).
    absl::Duration addurl_timeout = absl::Seconds(30);
    int addurl_max_redirects = 5;
    std::string addurl_ca_file;

    // Reader: read-ahead in segments before the first segment arrives, then
    // initial and maximum (see ReaderOptions).
    int fresh_read_ahead = ReaderOptions{}.fresh_read_ahead;
    absl::Duration fresh_read_ahead_delay = ReaderOptions{}.fresh_read_ahead_delay;
    int initial_read_ahead = ReaderOptions{}.initial_read_ahead;
    int max_read_ahead = ReaderOptions{}.max_read_ahead;
    // Decoded-segment memory of all streams together: read-ahead windows and
    // the per-file segment LRUs (F11). Cached segments are evicted first, then
    // windows shrink. 0 = unlimited.
    int64_t stream_memory_limit = int64_t{512} << 20;
    // Decoded segments cached per file for small random reads (F5), within
    // stream_memory_limit.
    size_t lru_segments_per_file = 8;
    // A segment found missing is not fetched again for this long (F3), then
    // tried afresh (a provider may have it again).
    absl::Duration missing_segment_ttl = absl::Seconds(60);
    // Files whose segment caches are kept.
    size_t cached_files = 256;
    // Threads draining closed readers; more closes run inline (F7).
    int closer_threads = 4;
    // Attempts per segment for transient broker errors.
    int max_fetch_attempts = ReaderOptions{}.max_fetch_attempts;
    // Largest body chunk written at once.
    size_t chunk_bytes = 256 * 1024;
    // Ranges in one request; more is answered 416.
    int max_ranges = 100;
    // Traffic class of reads (ReadClassifier): a bounded range no longer than
    // `probe_max_bytes` is read with the PROBE class (media scanners) unless
    // it starts where a read of the same file by the same client address
    // ended, at most `probe_sequential_window` ago (a player reading in small
    // pieces): then STREAM. Longer and open-ended ranges are STREAM.
    // probe_max_bytes 0 = always STREAM; window 0 = short reads always PROBE.
    int64_t probe_max_bytes = 1 << 20;
    absl::Duration probe_sequential_window = absl::Seconds(30);
    // Ended streams GET /api/streams still lists ("recent"), and for how long.
    // 0 = none.
    size_t recent_streams = 32;
    absl::Duration recent_streams_ttl = absl::Minutes(10);
  };

  // Dependencies; all must outlive the server. `metrics` may be null.
  struct Deps {
    SegmentFetcher* fetcher = nullptr;
    CatalogClient* catalog = nullptr;
    ImporterClient* importer = nullptr;
    FrontendMetrics* metrics = nullptr;
  };

  // INVALID_ARGUMENT for a missing dependency or a malformed option
  // (including an addurl_* option or an unreadable addurl_ca_file).
  static absl::StatusOr<std::unique_ptr<FrontendServer>> Create(const Options& options, Deps deps);
  ~FrontendServer();  // Shutdown(0) if still running

  // Binds and starts serving. UNAVAILABLE when the address cannot be bound.
  absl::Status Start();
  // The bound port (valid after Start()).
  int port() const { return port_; }
  // Stops accepting, answers /readyz 503, lets responses in progress finish
  // for up to `grace`, then closes every connection and joins the io threads.
  // Idempotent.
  void Shutdown(absl::Duration grace);

  int open_connections() const;
  int active_streams() const { return active_streams_.load(); }
  const MemoryBudget& memory_budget() const { return budget_; }
  // The /api/streams body (see StreamRegistry::ListJson).
  std::string StreamsJson() const { return streams_.ListJson(absl::Now()); }

 private:
  class Session;
  class Acceptor;
  friend class Session;

  FrontendServer(const Options& options, Deps deps, std::unique_ptr<NzbUrlClient> urls);
  void DoAccept();
  void Unregister(uint64_t id);

  const Options options_;
  const Deps deps_;
  FrontendMetrics default_metrics_;
  FrontendMetrics* const metrics_;

  MemoryBudget budget_;  // outlives everything that holds a charge
  // Before closers_: a reader's drain still running on a closer thread when
  // the pool is destroyed cancels its timers here.
  DelayScheduler scheduler_;
  CloserPool closers_;
  FileCacheRegistry files_;
  StreamRegistry streams_;
  ReadClassifier classifier_;
  // SABnzbd addurl downloads; its own thread, never the io threads.
  std::unique_ptr<NzbUrlClient> urls_;

  std::atomic<bool> draining_{false};
  std::atomic<int> active_streams_{0};
  int port_ = 0;

  mutable absl::Mutex mu_;  // protects the session registry and lifecycle flags
  absl::flat_hash_map<uint64_t, std::weak_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu_);
  uint64_t next_session_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;

  // Declared last: the io_context (shared with sessions so handlers queued by
  // late callbacks stay valid) and the objects bound to it.
  std::shared_ptr<boost::asio::io_context> ioc_;
  std::unique_ptr<Acceptor> acceptor_;
  std::vector<std::thread> threads_;
};

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_FRONTEND_SERVER_H_
