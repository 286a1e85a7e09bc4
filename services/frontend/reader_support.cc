#include "services/frontend/reader_support.h"

#include <algorithm>
#include <utility>

namespace nzbmesh::frontend {

bool MemoryBudget::TryReserve(int64_t n) {
  if (limit_ <= 0) {
    NotePeak(used_.fetch_add(n, std::memory_order_relaxed) + n);
    return true;
  }
  int64_t cur = used_.load(std::memory_order_relaxed);
  while (true) {
    if (cur + n > limit_) return false;
    if (used_.compare_exchange_weak(cur, cur + n, std::memory_order_relaxed)) {
      NotePeak(cur + n);
      return true;
    }
  }
}

bool MemoryBudget::ReserveOrReclaim(int64_t n) {
  if (TryReserve(n)) return true;
  if (!reclaimer_) return false;
  // Concurrent releases may have made room meanwhile: ask for at least 1 byte.
  reclaimer_(std::max<int64_t>(1, used() + n - limit_));
  return TryReserve(n);
}

CloserPool::CloserPool(int threads) : max_threads_(threads) {}

CloserPool::~CloserPool() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
}

void CloserPool::Run(std::function<void()> fn) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      if (idle_ > static_cast<int>(work_.size())) {
        work_.push_back(std::move(fn));
        return;
      }
      if (static_cast<int>(threads_.size()) < max_threads_) {
        work_.push_back(std::move(fn));
        ++idle_;  // the new thread counts as idle until it takes the work
        threads_.emplace_back([this] { Loop(); });
        return;
      }
    }
  }
  inline_runs_.fetch_add(1);
  fn();
}

int CloserPool::threads_started() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(threads_.size());
}

void CloserPool::Loop() {
  while (true) {
    std::function<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](CloserPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) { return p->stopping_ || !p->work_.empty(); },
          this));
      if (work_.empty()) return;  // stopping
      fn = std::move(work_.front());
      work_.pop_front();
      --idle_;
    }
    fn();
    absl::MutexLock lock(&mu_);
    ++idle_;
  }
}

DelayScheduler::DelayScheduler() : thread_([this] { Loop(); }) {}

DelayScheduler::~DelayScheduler() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

uint64_t DelayScheduler::Schedule(absl::Duration delay, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  uint64_t id = next_id_++;
  tasks_.emplace(absl::Now() + delay, std::make_pair(id, std::move(fn)));
  return id;
}

void DelayScheduler::Cancel(uint64_t id) {
  absl::MutexLock lock(&mu_);
  for (auto it = tasks_.begin(); it != tasks_.end(); ++it) {
    if (it->second.first == id) {
      tasks_.erase(it);
      return;
    }
  }
}

void DelayScheduler::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    if (tasks_.empty()) {
      mu_.Await(absl::Condition(
          +[](DelayScheduler* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) { return s->stopping_ || !s->tasks_.empty(); },
          this));
      continue;
    }
    absl::Time due = tasks_.begin()->first;
    if (absl::Now() < due) {
      // Wakes early when an earlier task is added or on stop.
      size_t n = tasks_.size();
      struct Arg {
        DelayScheduler* s;
        size_t n;
        absl::Time due;
      } arg{this, n, due};
      mu_.AwaitWithDeadline(absl::Condition(
                                +[](Arg* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                  return a->s->stopping_ || a->s->tasks_.size() != a->n ||
                                         (!a->s->tasks_.empty() && a->s->tasks_.begin()->first != a->due);
                                },
                                &arg),
                            due);
      continue;
    }
    auto fn = std::move(tasks_.begin()->second.second);
    tasks_.erase(tasks_.begin());
    mu_.Unlock();
    fn();
    mu_.Lock();
  }
}

}  // namespace nzbmesh::frontend
