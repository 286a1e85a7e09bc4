// The frontend's view of the importer: resolve catalog paths (Catalog) and
// submit NZBs / list jobs (Importer). Pure interfaces with asynchronous
// callbacks so HTTP io threads never block on gRPC. Real implementations are in
// grpc_catalog_client.h; CachingCatalogClient adds the bounded TTL layout
// cache; tests use tests/services/frontend/fake_catalog.h.
//
// Callback contract (both interfaces): `done` runs exactly once, on any thread,
// possibly inline; callers must not hold a lock `done` takes.
#ifndef NZBMESH_SERVICES_FRONTEND_CATALOG_CLIENT_H_
#define NZBMESH_SERVICES_FRONTEND_CATALOG_CLIENT_H_

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/time/clock.h"
#include "nzbmesh/importer/v1/catalog.pb.h"
#include "nzbmesh/importer/v1/importer.pb.h"

namespace nzbmesh::frontend {

using importer::v1::Entry;
using importer::v1::FileLayout;

// Catalog paths are "/<category>/<release>/<file>"; "/" is the root.
class CatalogClient {
 public:
  using EntryCallback = std::function<void(absl::StatusOr<Entry>)>;
  using ListCallback = std::function<void(absl::StatusOr<std::vector<Entry>>)>;
  using LayoutCallback = std::function<void(absl::StatusOr<std::shared_ptr<const FileLayout>>)>;
  using DeleteCallback = std::function<void(absl::StatusOr<int64_t>)>;  // files deleted

  virtual ~CatalogClient() = default;
  // NOT_FOUND when the path does not exist.
  virtual void Stat(const std::string& path, EntryCallback done) = 0;
  virtual void ListDirectory(const std::string& path, ListCallback done) = 0;
  virtual void GetFileLayout(const std::string& path, LayoutCallback done) = 0;
  virtual void DeletePath(const std::string& path, DeleteCallback done) = 0;
};

// What the SABnzbd API needs from the importer.
class ImporterClient {
 public:
  using SubmitCallback = std::function<void(absl::StatusOr<importer::v1::SubmitNzbResponse>)>;
  using JobsCallback = std::function<void(absl::StatusOr<std::vector<importer::v1::Job>>)>;
  using JobCallback = std::function<void(absl::StatusOr<importer::v1::Job>)>;

  virtual ~ImporterClient() = default;
  virtual void SubmitNzb(const importer::v1::SubmitNzbRequest& request, SubmitCallback done) = 0;
  // Newest first; `state` UNSPECIFIED = all; limit 0 = 100.
  virtual void ListJobs(importer::v1::JobState state, int limit, JobsCallback done) = 0;
  virtual void CancelJob(int64_t job_id, JobCallback done) = 0;
};

// Decorator: caches GetFileLayout results (bounded LRU with a TTL) and drops
// cached layouts under a path when DeletePath succeeds (or is attempted).
// Stat of a file whose layout is cached, and which the catalog confirmed in
// the last `stat_ttl`, is answered with the layout's entry (the GETs of a
// seek burst make one catalog call, not one each); a Stat that finds the
// file gone drops its layout. Other Stats and ListDirectory pass through
// uncached. Thread-safe.
class CachingCatalogClient : public CatalogClient {
 public:
  struct Options {
    // Most layouts kept; the least recently used is evicted. 0 disables caching.
    size_t max_entries = 1024;
    // How long a layout is served from cache before it is fetched again.
    absl::Duration ttl = absl::Minutes(5);
    // How long after the catalog last confirmed a cached file (its layout
    // fetched, or a Stat that found it with the same ETag) a Stat of it is
    // answered from the cache. Bounds how long a file deleted elsewhere (by
    // another frontend, the importer's API) still answers here; 0 = never.
    absl::Duration stat_ttl = absl::Seconds(10);
    // Time source; nullptr = Clock::Real().
    Clock* clock = nullptr;
  };

  // `inner` must outlive this object.
  CachingCatalogClient(CatalogClient* inner, Options options);

  void Stat(const std::string& path, EntryCallback done) override;
  void ListDirectory(const std::string& path, ListCallback done) override;
  void GetFileLayout(const std::string& path, LayoutCallback done) override;
  void DeletePath(const std::string& path, DeleteCallback done) override;

  // Drops cached layouts at `path` and below it.
  void Invalidate(const std::string& path);
  size_t size() const;
  int64_t hits() const;
  int64_t misses() const;
  // Stat() calls answered from a cached layout's entry.
  int64_t stat_hits() const;

 private:
  struct Cached {
    std::shared_ptr<const FileLayout> layout;
    absl::Time expires;
    absl::Time confirmed;  // the catalog last said this file version exists
    std::list<std::string>::iterator lru_pos;
  };

  // The cache entry of `path` if it has not expired (an expired one is
  // dropped); marks it most recently used. Valid until the map changes.
  Cached* FreshLocked(const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  CatalogClient* const inner_;
  const Options options_;
  Clock* const clock_;
  mutable absl::Mutex mu_;  // protects the cache, the LRU order and counters
  absl::flat_hash_map<std::string, Cached> cache_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> lru_ ABSL_GUARDED_BY(mu_);  // front = most recent
  int64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t stat_hits_ ABSL_GUARDED_BY(mu_) = 0;
  // Bumped on every invalidation so a fetch that started before a delete does
  // not re-insert the stale layout.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_CATALOG_CLIENT_H_
