// Reusable byte buffers for decoded segments. glibc maps and unmaps each
// ~1 MB allocation, which costs ~1 ms of page faults per call on these
// machines; recycling a few dozen buffers removes that from the hot path.
#ifndef NZBMESH_SERVICES_BROKER_BUFFER_POOL_H_
#define NZBMESH_SERVICES_BROKER_BUFFER_POOL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace nzbmesh::broker {

class BufferPool {
 public:
  // A buffer on loan; returns to the pool when the last copy goes away.
  using Handle = std::shared_ptr<std::string>;

  // Keeps at most `max_free` idle buffers of at most `max_keep_bytes` capacity.
  explicit BufferPool(size_t max_free = 64, size_t max_keep_bytes = 4 << 20)
      : state_(std::make_shared<State>()), max_free_(max_free), max_keep_bytes_(max_keep_bytes) {}

  Handle Get() {
    std::string* s = nullptr;
    {
      absl::MutexLock lock(&state_->mu);
      if (!state_->free.empty()) {
        s = state_->free.back().release();
        state_->free.pop_back();
      }
    }
    if (s == nullptr) {
      s = new std::string();
      s->reserve(1 << 20);
    }
    s->clear();
    std::weak_ptr<State> weak = state_;
    size_t max_free = max_free_, max_keep = max_keep_bytes_;
    return Handle(s, [weak, max_free, max_keep](std::string* b) {
      std::unique_ptr<std::string> owned(b);
      if (auto st = weak.lock(); st && b->capacity() <= max_keep) {
        absl::MutexLock lock(&st->mu);
        if (st->free.size() < max_free) st->free.push_back(std::move(owned));
      }
    });
  }

  size_t free_count() {
    absl::MutexLock lock(&state_->mu);
    return state_->free.size();
  }

 private:
  struct State {
    absl::Mutex mu;  // protects free
    std::vector<std::unique_ptr<std::string>> free ABSL_GUARDED_BY(mu);
  };
  std::shared_ptr<State> state_;
  const size_t max_free_;
  const size_t max_keep_bytes_;
};

}  // namespace nzbmesh::broker

#endif  // NZBMESH_SERVICES_BROKER_BUFFER_POOL_H_
