#include "services/frontend/catalog_client.h"

#include <utility>

#include "absl/strings/match.h"

namespace nzbmesh::frontend {

CachingCatalogClient::CachingCatalogClient(CatalogClient* inner, Options options)
    : inner_(inner), options_(options), clock_(options.clock != nullptr ? options.clock : Clock::Real()) {}

void CachingCatalogClient::Stat(const std::string& path, EntryCallback done) { inner_->Stat(path, std::move(done)); }

void CachingCatalogClient::ListDirectory(const std::string& path, ListCallback done) {
  inner_->ListDirectory(path, std::move(done));
}

void CachingCatalogClient::GetFileLayout(const std::string& path, LayoutCallback done) {
  uint64_t generation = 0;
  std::shared_ptr<const FileLayout> hit;
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(path);
    if (it != cache_.end()) {
      if (it->second.expires > clock_->Now()) {
        ++hits_;
        lru_.splice(lru_.begin(), lru_, it->second.lru_pos);
        hit = it->second.layout;
      } else {
        lru_.erase(it->second.lru_pos);
        cache_.erase(it);
      }
    }
    if (hit == nullptr) ++misses_;
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
        cache_[path] = Cached{*result, clock_->Now() + options_.ttl, lru_.begin()};
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

int64_t CachingCatalogClient::misses() const {
  absl::MutexLock lock(&mu_);
  return misses_;
}

}  // namespace nzbmesh::frontend
