// A deterministic in-process SegmentFetcher for frontend tests: per-message-id
// data, latency, missing and failure injection, a hold/release gate, and the
// counters the storm tests assert on (calls per id, in flight, high-water
// mark, cancels, sessions). Completions are delivered by one worker thread.
#ifndef NZBMESH_TESTS_SERVICES_FRONTEND_FAKE_SEGMENT_FETCHER_H_
#define NZBMESH_TESTS_SERVICES_FRONTEND_FAKE_SEGMENT_FETCHER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "services/frontend/segment_fetcher.h"

namespace nzbmesh::frontend::testing {

class FakeSegmentFetcher : public SegmentFetcher {
 public:
  FakeSegmentFetcher() : worker_([this] { Loop(); }) {}
  ~FakeSegmentFetcher() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    worker_.join();
  }

  // --- configuration -------------------------------------------------------
  void AddSegment(const std::string& id, std::string data) {
    absl::MutexLock lock(&mu_);
    data_[id] = std::make_shared<const std::string>(std::move(data));
    damaged_.erase(id);
  }
  // Served like a segment, marked SegmentInfo::damaged (the broker's
  // DATA_LOSS with every byte: no clean copy on any provider).
  void AddDamagedSegment(const std::string& id, std::string data) {
    absl::MutexLock lock(&mu_);
    data_[id] = std::make_shared<const std::string>(std::move(data));
    damaged_[id] = true;
  }
  void SetError(const std::string& id, absl::Status s) {
    absl::MutexLock lock(&mu_);
    errors_[id] = std::move(s);
  }
  void SetLatency(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    latency_ = d;
  }
  void SetLatency(const std::string& id, absl::Duration d) {
    absl::MutexLock lock(&mu_);
    latency_by_id_[id] = d;
  }
  // While held, replies for `id` ("" = every id) wait until Release().
  void Hold(const std::string& id = "") {
    absl::MutexLock lock(&mu_);
    held_[id] = true;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    held_.clear();
    for (auto& [key, f] : queue_) {
      if (f->due == absl::InfiniteFuture()) f->due = absl::Now();
    }
    Requeue();
  }
  // What StreamShare() returns (0 = unknown, the default).
  void SetStreamShare(int share) { share_.store(share, std::memory_order_relaxed); }
  int StreamShare() const override { return share_.load(std::memory_order_relaxed); }
  // Cancel() blocks this long (models a slow drain for F7).
  void SetCancelDelay(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    cancel_delay_ = d;
  }

  // --- counters -------------------------------------------------------------
  int calls(const std::string& id) const {
    absl::MutexLock lock(&mu_);
    auto it = calls_.find(id);
    return it == calls_.end() ? 0 : it->second;
  }
  int total_calls() const {
    absl::MutexLock lock(&mu_);
    return total_calls_;
  }
  int in_flight() const {
    absl::MutexLock lock(&mu_);
    return in_flight_;
  }
  int max_in_flight() const {
    absl::MutexLock lock(&mu_);
    return max_in_flight_;
  }
  int cancels() const {
    absl::MutexLock lock(&mu_);
    return cancels_;
  }
  int sessions_open() const {
    absl::MutexLock lock(&mu_);
    return sessions_open_;
  }
  int sessions_opened() const {
    absl::MutexLock lock(&mu_);
    return sessions_opened_;
  }
  int probe_calls() const {
    absl::MutexLock lock(&mu_);
    return probe_calls_;
  }
  // The traffic class of every Fetch of `id`, in call order.
  std::vector<TrafficClass> classes(const std::string& id) const {
    absl::MutexLock lock(&mu_);
    auto it = classes_.find(id);
    return it == classes_.end() ? std::vector<TrafficClass>{} : it->second;
  }
  // FetchOptions::read_ahead of every Fetch of `id`, in call order.
  std::vector<bool> read_ahead(const std::string& id) const {
    absl::MutexLock lock(&mu_);
    auto it = read_ahead_.find(id);
    return it == read_ahead_.end() ? std::vector<bool>{} : it->second;
  }
  // FetchHandle::Promote() calls on fetches of `id` (every call, also the
  // no-ops), and how many of them found a pending read-ahead fetch and
  // promoted it.
  int promote_calls(const std::string& id) const {
    absl::MutexLock lock(&mu_);
    auto it = promote_calls_.find(id);
    return it == promote_calls_.end() ? 0 : it->second;
  }
  int promotions(const std::string& id) const {
    absl::MutexLock lock(&mu_);
    auto it = promotions_.find(id);
    return it == promotions_.end() ? 0 : it->second;
  }
  int total_promote_calls() const {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const auto& [id, c] : promote_calls_) n += c;
    return n;
  }
  // Waits until `pred` (evaluated under the fake's lock) holds or `timeout` passes.
  bool WaitFor(std::function<bool(const FakeSegmentFetcher&)> pred, absl::Duration timeout) const {
    absl::Time deadline = absl::Now() + timeout;
    while (true) {
      if (pred(*this)) return true;
      if (absl::Now() >= deadline) return false;
      absl::MutexLock lock(&mu_);
      uint64_t v = version_;
      struct Arg {
        const FakeSegmentFetcher* f;
        uint64_t v;
      } arg{this, v};
      mu_.AwaitWithDeadline(
          absl::Condition(+[](Arg* a) ABSL_NO_THREAD_SAFETY_ANALYSIS { return a->f->version_ != a->v; }, &arg),
          std::min(deadline, absl::Now() + absl::Milliseconds(20)));
    }
  }

  // --- SegmentFetcher -------------------------------------------------------
  std::unique_ptr<FetchHandle> Fetch(const std::string& message_id, const FetchOptions& options,
                                     FetchCallback done) override {
    auto f = std::make_shared<Flight>();
    f->id = message_id;
    f->done = std::move(done);
    f->read_ahead = options.read_ahead;
    {
      absl::MutexLock lock(&mu_);
      ++calls_[message_id];
      ++total_calls_;
      if (options.traffic_class == TrafficClass::kProbe) ++probe_calls_;
      classes_[message_id].push_back(options.traffic_class);
      read_ahead_[message_id].push_back(options.read_ahead);
      ++in_flight_;
      max_in_flight_ = std::max(max_in_flight_, in_flight_);
      auto lat = latency_by_id_.find(message_id);
      absl::Duration d = lat != latency_by_id_.end() ? lat->second : latency_;
      bool held = held_.contains("") || held_.contains(message_id);
      f->due = held ? absl::InfiniteFuture() : absl::Now() + d;
      f->seq = next_seq_++;
      queue_[{f->due, f->seq}] = f;
      ++version_;
    }
    return std::make_unique<Handle>(this, f);
  }

  std::unique_ptr<StreamSession> OpenSession(const std::string& label) override {
    absl::MutexLock lock(&mu_);
    ++sessions_open_;
    ++sessions_opened_;
    ++version_;
    return std::make_unique<Session>(this, next_session_++);
  }

 private:
  struct Flight {
    std::string id;
    FetchCallback done;
    absl::Time due;
    uint64_t seq = 0;
    bool finished = false;  // removed from in-flight accounting
    bool read_ahead = false;  // still read-ahead (not promoted)
  };
  class Handle : public FetchHandle {
   public:
    Handle(FakeSegmentFetcher* f, std::shared_ptr<Flight> flight) : f_(f), flight_(std::move(flight)) {}
    void Cancel() override { f_->CancelFlight(flight_); }
    void Promote() override { f_->PromoteFlight(flight_); }

   private:
    FakeSegmentFetcher* f_;
    std::shared_ptr<Flight> flight_;
  };
  class Session : public StreamSession {
   public:
    Session(FakeSegmentFetcher* f, uint64_t id) : f_(f), id_(id) {}
    ~Session() override {
      absl::MutexLock lock(&f_->mu_);
      --f_->sessions_open_;
      ++f_->version_;
    }
    uint64_t id() const override { return id_; }

   private:
    FakeSegmentFetcher* f_;
    uint64_t id_;
  };

  void CancelFlight(const std::shared_ptr<Flight>& f) {
    absl::Duration delay;
    {
      absl::MutexLock lock(&mu_);
      delay = cancel_delay_;
      if (!f->finished) {
        queue_.erase({f->due, f->seq});
        f->finished = true;
        --in_flight_;
        ++cancels_;
        ++version_;
        cancelled_.push_back(f);
      }
    }
    if (delay > absl::ZeroDuration()) absl::SleepFor(delay);
  }

  void PromoteFlight(const std::shared_ptr<Flight>& f) {
    absl::MutexLock lock(&mu_);
    ++promote_calls_[f->id];
    if (!f->finished && f->read_ahead) {
      f->read_ahead = false;
      ++promotions_[f->id];
    }
    ++version_;
  }

  void Requeue() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::map<std::pair<absl::Time, uint64_t>, std::shared_ptr<Flight>> q;
    for (auto& [key, f] : queue_) q[{f->due, f->seq}] = f;
    queue_.swap(q);
    ++version_;
  }

  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !cancelled_.empty() || (!queue_.empty() && queue_.begin()->first.first <= absl::Now());
  }

  void Loop() {
    absl::MutexLock lock(&mu_);
    while (true) {
      absl::Time wake = queue_.empty() ? absl::Now() + absl::Milliseconds(50)
                                       : std::min(queue_.begin()->first.first, absl::Now() + absl::Milliseconds(50));
      mu_.AwaitWithDeadline(
          absl::Condition(+[](FakeSegmentFetcher* f) ABSL_NO_THREAD_SAFETY_ANALYSIS { return f->HasWork() ||
                                                                                           f->version_ != f->seen_; },
                          this),
          wake);
      seen_ = version_;
      if (stopping_) return;
      std::vector<std::pair<std::shared_ptr<Flight>, absl::StatusOr<Segment>>> ready;
      for (auto& f : cancelled_) ready.emplace_back(f, absl::CancelledError("cancelled by the caller"));
      cancelled_.clear();
      while (!queue_.empty() && queue_.begin()->first.first <= absl::Now()) {
        std::shared_ptr<Flight> f = queue_.begin()->second;
        queue_.erase(queue_.begin());
        f->finished = true;
        --in_flight_;
        ++version_;
        auto err = errors_.find(f->id);
        auto data = data_.find(f->id);
        if (err != errors_.end()) {
          ready.emplace_back(f, err->second);
        } else if (data == data_.end()) {
          ready.emplace_back(f, absl::NotFoundError("article not found on any provider"));
        } else {
          Segment s;
          s.data = data->second;
          s.info.end = static_cast<int64_t>(data->second->size());
          s.info.damaged = damaged_.contains(f->id);
          ready.emplace_back(f, std::move(s));
        }
      }
      seen_ = version_;
      mu_.Unlock();
      for (auto& [f, r] : ready) {
        auto cb = std::move(f->done);
        cb(std::move(r));
      }
      mu_.Lock();
    }
  }

  mutable absl::Mutex mu_;  // protects everything below
  absl::flat_hash_map<std::string, std::shared_ptr<const std::string>> data_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Status> errors_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, bool> damaged_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Duration> latency_by_id_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, bool> held_ ABSL_GUARDED_BY(mu_);
  absl::Duration latency_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  absl::Duration cancel_delay_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  std::map<std::pair<absl::Time, uint64_t>, std::shared_ptr<Flight>> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Flight>> cancelled_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> calls_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::vector<TrafficClass>> classes_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::vector<bool>> read_ahead_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> promote_calls_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> promotions_ ABSL_GUARDED_BY(mu_);
  int total_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int probe_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int max_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int cancels_ ABSL_GUARDED_BY(mu_) = 0;
  int sessions_open_ ABSL_GUARDED_BY(mu_) = 0;
  int sessions_opened_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_session_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t seen_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int> share_{0};
  std::thread worker_;
};

}  // namespace nzbmesh::frontend::testing

#endif  // NZBMESH_TESTS_SERVICES_FRONTEND_FAKE_SEGMENT_FETCHER_H_
