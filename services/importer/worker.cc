#include "services/importer/worker.h"

#include <unistd.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/log/log.h"

namespace nzbmesh::importer {

namespace {
std::string DefaultOwner() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::random_device rd;
  return absl::StrCat(host[0] ? host : "importer", "-", getpid(), "-", absl::Hex(rd() & 0xffff));
}
}  // namespace

WorkerPool::WorkerPool(Store* store, BrokerClient* broker, ImportPipeline* pipeline, WorkerOptions options,
                       ImporterMetrics* metrics)
    : store_(store),
      broker_(broker),
      pipeline_(pipeline),
      options_(options),
      metrics_(metrics),
      owner_(options.owner.empty() ? DefaultOwner() : options.owner) {}

WorkerPool::~WorkerPool() { Stop(); }

void WorkerPool::Start() {
  absl::MutexLock lock(&mu_);
  if (started_) return;
  started_ = true;
  for (int i = 0; i < options_.workers; ++i) threads_.emplace_back([this, i] { WorkerLoop(i); });
  threads_.emplace_back([this] { JanitorLoop(); });
}

void WorkerPool::Stop() {
  stopping_.store(true);
  // Every broker call of every worker (lease waits, STAT samples, fetches)
  // returns CANCELLED now; later calls fail at once.
  calls_.Cancel();
  Wake();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

bool WorkerPool::CancelRunning(int64_t job_id) {
  absl::MutexLock lock(&mu_);
  auto it = running_.find(job_id);
  if (it == running_.end()) return false;
  it->second.by_api->store(true);
  it->second.cancelled->store(true);
  it->second.calls->Cancel();
  return true;
}

void WorkerPool::Wake() {
  absl::MutexLock lock(&mu_);
  ++wake_seq_;
}

bool WorkerPool::Idle(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  const int64_t seen = wake_seq_;
  auto woken = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return wake_seq_ != seen || stopping_.load(); };
  mu_.AwaitWithTimeout(absl::Condition(&woken), d);
  return !stopping_.load();
}

void WorkerPool::JanitorLoop() {
  const absl::Duration period = std::min(options_.heartbeat_interval, options_.poll_interval * 5);
  while (!stopping_.load()) {
    auto n = store_->RequeueExpired(options_.retry_backoff);
    if (n.ok() && *n > 0) {
      log::Warning("requeued jobs whose worker stopped heartbeating", {{"jobs", *n}});
      Wake();
    }
    if (metrics_) {
      auto counts = store_->CountJobsByState();
      if (counts.ok()) {
        for (JobState s : {JobState::kQueued, JobState::kRunning, JobState::kCompleted, JobState::kFailed,
                           JobState::kCancelled}) {
          int64_t v = 0;
          for (auto& [st, c] : *counts)
            if (st == s) v = c;
          metrics_->jobs.Add({{"state", JobStateName(s)}}).Set(static_cast<double>(v));
        }
      }
    }
    absl::MutexLock lock(&mu_);
    auto stop = [this] { return stopping_.load(); };
    mu_.AwaitWithTimeout(absl::Condition(&stop), period);
  }
}

void WorkerPool::WorkerLoop(int index) {
  const std::string owner = absl::StrCat(owner_, "/w", index);
  while (!stopping_.load()) {
    auto due = store_->HasClaimableJob();
    if (!due.ok()) {
      log::Warning("cannot poll the job queue", {{"error", due.status().ToString()}});
      if (!Idle(options_.broker_retry_delay)) break;
      continue;
    }
    if (!*due) {
      if (!Idle(options_.poll_interval)) break;
      continue;
    }
    // The lease first: the broker gates whole jobs, not wire calls.
    auto lease = broker_->AcquireImportLease(owner, &calls_);
    if (!lease.ok()) {
      if (stopping_.load()) break;
      log::Warning("import lease refused; retrying", {{"error", lease.status().ToString()}});
      if (!Idle(options_.broker_retry_delay)) break;
      continue;
    }
    if (stopping_.load()) break;  // granted as Stop() began; released on the way out
    auto claimed = store_->ClaimJob(owner, options_.heartbeat_timeout);
    if (!claimed.ok()) {
      log::Warning("cannot claim a job", {{"error", claimed.status().ToString()}});
      continue;
    }
    if (!claimed->has_value()) continue;  // another worker was faster; the lease is released
    RunJob(owner, std::move(**claimed));
  }
}

void WorkerPool::RunJob(const std::string& owner, ClaimedJob claimed) {
  const JobRecord& job = claimed.job;
  const absl::Time start = absl::Now();
  log::Info("job started", {{"job", job.id}, {"attempt", job.attempts}, {"owner", owner}, {"name", job.name}});
  std::atomic<bool> cancelled{false};
  std::atomic<bool> lost{false};
  std::atomic<bool> cancelled_by_api{false};
  // The job's broker calls: cancelled by CancelRunning(), and by Stop()
  // through calls_ (which every worker's calls hang off).
  CallCanceller job_calls;
  if (!calls_.Register(&job_calls, [&job_calls] { job_calls.Cancel(); })) job_calls.Cancel();
  {
    absl::MutexLock lock(&mu_);
    running_[job.id] = RunningJob{&cancelled, &cancelled_by_api, &job_calls};
  }
  std::atomic<double> progress{0};
  absl::Notification done;
  std::thread heartbeat([&] {
    while (!done.WaitForNotificationWithTimeout(options_.heartbeat_interval)) {
      absl::Status s = store_->Heartbeat(job.id, owner, job.attempts, options_.heartbeat_timeout, progress.load());
      if (absl::IsFailedPrecondition(s)) {
        lost.store(true);
        cancelled.store(true);
        return;
      }
      if (!s.ok()) log::Warning("heartbeat failed", {{"job", job.id}, {"error", s.ToString()}});
    }
  });
  auto plan = pipeline_->Run(
      job, claimed.nzb, cancelled, [&](double p) { progress.store(p); }, &job_calls);
  absl::Status result;
  std::string path;
  if (plan.ok()) {
    // Also when stopping: the analysis is done and writing it is one short
    // transaction. A job cancelled or re-claimed meanwhile is refused here.
    auto p = store_->CompleteJob(job.id, owner, job.attempts, *plan);
    if (p.ok()) {
      path = *p;
    } else {
      result = p.status();
    }
  } else {
    result = plan.status();
  }
  done.Notify();
  heartbeat.join();
  {
    absl::MutexLock lock(&mu_);
    running_.erase(job.id);
  }
  calls_.Unregister(&job_calls);
  attempts_finished_.fetch_add(1);
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  if (metrics_) metrics_->job_duration.Observe(secs);

  if (result.ok()) {
    int64_t bytes = 0;
    for (const auto& f : plan->files) bytes += f.size;
    if (metrics_) {
      metrics_->jobs_finished.Add({{"result", "completed"}, {"reason", ""}}).Increment();
      metrics_->catalog_bytes.Increment(static_cast<double>(bytes));
      metrics_->catalog_files.Increment(static_cast<double>(plan->files.size()));
    }
    log::Info("job completed", {{"job", job.id}, {"path", path}, {"files", plan->files.size()}, {"seconds", secs}});
    return;
  }
  if (lost.load() || cancelled_by_api.load() || absl::IsFailedPrecondition(result)) {
    // Cancelled through the API or the claim went to another worker: the
    // database already says what happened; nothing was written.
    if (metrics_) metrics_->jobs_finished.Add({{"result", "abandoned"}, {"reason", ""}}).Increment();
    log::Info("job abandoned (cancelled or re-claimed)", {{"job", job.id}, {"detail", result.ToString()}});
    return;
  }
  if (stopping_.load()) {
    // Stop() cut the attempt short (its broker calls were cancelled, so
    // whatever failed may be that): the job goes back to the queue at once,
    // the attempt uncounted, instead of waiting out its claim.
    auto released = store_->ReleaseJob(job.id, owner, job.attempts,
                                       absl::StrCat("importer ", owner, " stopped during the job; requeued"));
    const char* outcome = released.ok() ? "requeued" : "abandoned";
    if (metrics_) metrics_->jobs_finished.Add({{"result", outcome}, {"reason", ""}}).Increment();
    if (absl::IsFailedPrecondition(released.status())) {
      // Cancelled through the API (or re-claimed) before the heartbeat saw it.
      log::Info("job abandoned on stop (cancelled or re-claimed)", {{"job", job.id}});
    } else if (!released.ok()) {
      // The claim expires and the janitor of another importer requeues it.
      log::Warning("cannot give the job back on stop", {{"job", job.id}, {"error", released.status().ToString()}});
    } else {
      log::Info("job requeued on stop",
                {{"job", job.id}, {"attempts", released->attempts}, {"detail", result.ToString()}});
    }
    return;
  }
  FailureClass c = ClassifyFailure(result);
  const std::string message(result.message());
  const absl::Duration backoff = options_.retry_backoff;
  auto failed = store_->FailJob(job.id, owner, job.attempts, c.reason, message, c.transient, backoff);
  const bool requeued = failed.ok() && failed->state == JobState::kQueued;
  if (metrics_) {
    metrics_->jobs_finished.Add({{"result", requeued ? "retry" : "failed"}, {"reason", FailureReasonName(c.reason)}})
        .Increment();
  }
  if (!failed.ok()) {
    log::Warning("cannot record the job failure", {{"job", job.id}, {"error", failed.status().ToString()}});
  } else {
    log::Info(requeued ? "job failed; requeued" : "job failed",
              {{"job", job.id}, {"reason", FailureReasonName(c.reason)}, {"message", message}});
  }
}

}  // namespace nzbmesh::importer
