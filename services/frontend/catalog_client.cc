#include "services/frontend/catalog_client.h"

#include <utility>

#include "absl/strings/match.h"

namespace nzbmesh::frontend {

CachingCatalogClient::CachingCatalogClient(CatalogClient* inner, Options options)
    : inner_(inner), options_(options), clock_(options.clock != nullptr ? options.clock : Clock::Real()) {}

CachingCatalogClient::Cached* CachingCatalogClient::FreshLocked(const std::string& path) {
  auto it = cache_.find(path);
  if (it == cache_.end()) return nullptr;
  if (it->second.expires <= clock_->Now()) {
    lru_.erase(it->second.lru_pos);
    cache_.erase(it);
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second.lru_pos);
  return &it->second;
}

void CachingCatalogClient::Stat(const std::string& path, EntryCallback done) {
  // A file whose layout is cached has its entry in it: the GETs and seeks of
  // a file being played are answered here, not each by a catalog call (and a
  // database query behind it), while the catalog confirmed the file
  // recently. Directories and other files go through.
  std::shared_ptr<const FileLayout> hit;
  uint64_t generation = 0;
  {
    absl::MutexLock lock(&mu_);
    if (const Cached* c = FreshLocked(path); c != nullptr && c->confirmed + options_.stat_ttl > clock_->Now()) {
      hit = c->layout;
      ++stat_hits_;
    }
    generation = generation_;
  }
  if (hit != nullptr) {
    done(hit->entry());
    return;
  }
  inner_->Stat(path, [this, path, generation, done = std::move(done)](absl::StatusOr<importer::v1::Entry> e) {
    if (absl::IsNotFound(e.status())) {
      Invalidate(path);  // gone: its layout goes too
    } else if (e.ok()) {
      absl::MutexLock lock(&mu_);
      auto it = cache_.find(path);
      if (generation == generation_ && it != cache_.end() && it->second.layout->entry().etag() == e->etag()) {
        it->second.confirmed = clock_->Now();
      }
    }
    done(std::move(e));
  });
}

void CachingCatalogClient::ListDirectory(const std::string& path, ListCallback done) {
  inner_->ListDirectory(path, std::move(done));
}

void CachingCatalogClient::GetFileLayout(const std::string& path, LayoutCallback done) {
  uint64_t generation = 0;
  std::shared_ptr<const FileLayout> hit;
  {
    absl::MutexLock lock(&mu_);
    if (const Cached* c = FreshLocked(path)) {
      hit = c->layout;
      ++hits_;
    } else {
      ++misses_;
    }
    generation = generation_;
  }
  if (hit != nullptr) {
    done(std::move(hit));
    return;
  }
  inner_->GetFileLayout(path, [this, path, generation, done = std::move(done)](
                                  absl::StatusOr<std::shared_ptr<const FileLayout>> result) {
    if (result.ok() && options_.max_entries > 0) {
      absl::MutexLock lock(&mu_);
      if (generation == generation_ && !cache_.contains(path)) {
        lru_.push_front(path);
        const absl::Time now = clock_->Now();
        cache_[path] = Cached{*result, now + options_.ttl, now, lru_.begin()};
        while (cache_.size() > options_.max_entries) {
          cache_.erase(lru_.back());
          lru_.pop_back();
        }
      }
    }
    done(std::move(result));
  });
}

void CachingCatalogClient::DeletePath(const std::string& path, DeleteCallback done) {
  Invalidate(path);
  inner_->DeletePath(path, [this, path, done = std::move(done)](absl::StatusOr<int64_t> result) {
    Invalidate(path);  // a read racing the delete may have re-filled it
    done(std::move(result));
  });
}

void CachingCatalogClient::Invalidate(const std::string& path) {
  std::string prefix = path;
  if (!absl::EndsWith(prefix, "/")) prefix += "/";
  absl::MutexLock lock(&mu_);
  ++generation_;
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (*it == path || absl::StartsWith(*it, prefix) || path == "/") {
      cache_.erase(*it);
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
}

size_t CachingCatalogClient::size() const {
  absl::MutexLock lock(&mu_);
  return cache_.size();
}

int64_t CachingCatalogClient::hits() const {
  absl::MutexLock lock(&mu_);
  return hits_;
}

int64_t CachingCatalogClient::stat_hits() const {
  absl::MutexLock lock(&mu_);
  return stat_hits_;
}

int64_t CachingCatalogClient::misses() const {
  absl::MutexLock lock(&mu_);
  return misses_;
}

}  // namespace nzbmesh::frontend
