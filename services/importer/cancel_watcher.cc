#include "services/importer/cancel_watcher.h"

#include <algorithm>
#include <exception>
#include <utility>

#include <pqxx/pqxx>

#include "absl/strings/numbers.h"
#include "common/log/log.h"
#include "services/importer/store.h"

namespace nzbmesh::importer {
namespace {

class Receiver : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& c, const std::function<void(int64_t)>* on_cancelled)
      : pqxx::notification_receiver(c, kJobCancelledChannel), on_cancelled_(on_cancelled) {}
  void operator()(const std::string& payload, int) override {
    int64_t id = 0;
    if (absl::SimpleAtoi(payload, &id)) (*on_cancelled_)(id);
  }

 private:
  const std::function<void(int64_t)>* const on_cancelled_;
};

}  // namespace

CancelWatcher::CancelWatcher(Options options, std::function<void(int64_t)> on_cancelled, ImporterMetrics* metrics)
    : options_(std::move(options)),
      on_cancelled_([this, cb = std::move(on_cancelled)](int64_t id) {
        if (metrics_ != nullptr) metrics_->cancels_heard.Increment();
        cb(id);
      }),
      metrics_(metrics),
      thread_([this] { Loop(); }) {}

CancelWatcher::~CancelWatcher() { Stop(); }

void CancelWatcher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool CancelWatcher::WaitListening(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&listening_), timeout);
}

int64_t CancelWatcher::connections() const {
  absl::MutexLock lock(&mu_);
  return connections_;
}

void CancelWatcher::SetListening(bool on) {
  if (metrics_ != nullptr) metrics_->cancel_watcher_listening.Set(on ? 1 : 0);
  absl::MutexLock lock(&mu_);
  listening_ = on;
}

void CancelWatcher::Loop() {
  const long check_us = static_cast<long>(absl::ToInt64Microseconds(options_.stop_check));
  absl::Duration backoff = absl::Milliseconds(100);
  bool warned = false;  // one warning per outage
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      ++connections_;
    }
    try {
      pqxx::connection c(options_.database_url);
      Receiver receiver(c, &on_cancelled_);  // LISTEN
      SetListening(true);
      if (warned) log::Info("cancel watcher listening again", {});
      warned = false;
      backoff = absl::Milliseconds(100);
      while (true) {
        {
          absl::MutexLock lock(&mu_);
          if (stopping_) break;
        }
        c.await_notification(check_us / 1000000, check_us % 1000000);
        if (!c.is_open()) throw pqxx::broken_connection("the connection closed");
      }
      SetListening(false);
      return;
    } catch (const std::exception& e) {
      SetListening(false);
      if (!warned) {
        log::Warning("cancel watcher lost its database connection; reconnecting (heartbeats still stop cancelled jobs)",
                     {{"error", e.what()}});
        warned = true;
      }
    }
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);  // returns at once on Stop()
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

}  // namespace nzbmesh::importer
