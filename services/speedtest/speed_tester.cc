#include "services/speedtest/speed_tester.h"

#include <thread>
#include <utility>

#include "absl/cleanup/cleanup.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "services/speedtest/runner.h"

namespace nzbmesh::speedtest {

SpeedTester::SpeedTester(const SpeedTesterOptions& options, nzbmesh::broker::v1::Broker::StubInterface* broker,
                         ResultStore* store, metrics::Registry* registry)
    : options_(options),
      broker_(broker),
      store_(store),
      clock_(options.clock),
      runs_family_(metrics::BuildCounter()
                       .Name("nzbmesh_speedtest_runs_total")
                       .Help("Speed-test runs started, by outcome.")
                       .Register(*registry)),
      runs_ok_(runs_family_.Add({{"result", "ok"}})),
      runs_failed_(runs_family_.Add({{"result", "error"}})),
      deduplicated_(metrics::BuildCounter()
                        .Name("nzbmesh_speedtest_deduplicated_total")
                        .Help("Requests that joined a run already in flight for the same provider.")
                        .Register(*registry)
                        .Add({})),
      cache_hits_(metrics::BuildCounter()
                      .Name("nzbmesh_speedtest_cache_hits_total")
                      .Help("Requests answered from the result cache.")
                      .Register(*registry)
                      .Add({})),
      rate_limited_(metrics::BuildCounter()
                        .Name("nzbmesh_speedtest_rate_limited_total")
                        .Help("Requests refused by the per-caller rate limit.")
                        .Register(*registry)
                        .Add({})),
      last_mbps_(metrics::BuildGauge()
                     .Name("nzbmesh_speedtest_last_megabytes_per_second")
                     .Help("Throughput of the last successful run, per provider (MB = 10^6 bytes).")
                     .Register(*registry)),
      duration_(metrics::BuildHistogram()
                    .Name("nzbmesh_speedtest_run_duration_seconds")
                    .Help("Wall time of speed-test runs.")
                    .Register(*registry)
                    .Add({}, metrics::ExponentialBuckets(0.1, 2, 12))) {}

SpeedTester::~SpeedTester() {
  std::vector<RunThread> threads;
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = true;
    for (auto& [provider, run] : runs_) run->cancel = true;
    threads.swap(threads_);
  }
  for (auto& t : threads) t.thread.join();
}

void SpeedTester::ReapThreadsLocked(std::vector<std::thread>* to_join) {
  for (auto it = threads_.begin(); it != threads_.end();) {
    if (it->done->load()) {
      to_join->push_back(std::move(it->thread));
      it = threads_.erase(it);
    } else {
      ++it;
    }
  }
}

absl::StatusOr<uint64_t> SpeedTester::Subscribe(const v1::RunSpeedTestRequest& request, const std::string& caller,
                                                std::shared_ptr<Sink> sink) {
  const std::string& provider = request.provider();
  if (provider.empty()) return absl::InvalidArgumentError("provider is required");
  if (request.duration_seconds() < 0 || request.bytes() < 0 || request.connections() < 0) {
    return absl::InvalidArgumentError("duration_seconds, bytes and connections must be >= 0");
  }
  if (absl::Seconds(request.duration_seconds()) > options_.max_duration) {
    return absl::InvalidArgumentError(absl::StrCat("duration_seconds must be <= ",
                                                   absl::ToDoubleSeconds(options_.max_duration)));
  }
  std::vector<std::string> ids;
  auto it = options_.message_ids.find(provider);
  ids = it != options_.message_ids.end() ? it->second : options_.default_message_ids;
  if (ids.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no test articles configured for provider \"", provider,
        "\"; list them under speedtest.tests (message_ids or nzb) or speedtest.default_message_ids"));
  }

  v1::SpeedTestResult cached;
  uint64_t id = 0;
  std::vector<std::thread> finished;  // joined below, outside the lock (they are exiting)
  absl::Cleanup join_finished = [&finished] {
    for (auto& t : finished) t.join();
  };
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return absl::UnavailableError("speed-test service is shutting down");
    const absl::Time now = clock_->Now();
    id = next_id_++;
    auto c = cache_.find(provider);
    if (!request.force() && c != cache_.end() && now - c->second.at < options_.result_ttl) {
      ++stats_.cache_hits;
      cache_hits_.Increment();
      cached = c->second.result;
      cached.set_cached(true);
    } else if (auto r = runs_.find(provider); r != runs_.end()) {
      ++stats_.deduplicated;
      deduplicated_.Increment();
      r->second->sinks[id] = sink;
      return id;
    } else {
      if (options_.max_runs_per_caller > 0) {
        auto& starts = starts_by_caller_[caller];
        while (!starts.empty() && now - starts.front() >= options_.rate_window) starts.pop_front();
        if (static_cast<int>(starts.size()) >= options_.max_runs_per_caller) {
          ++stats_.rate_limited;
          rate_limited_.Increment();
          const absl::Duration wait = starts.front() + options_.rate_window - now;
          return absl::ResourceExhaustedError(absl::StrCat(
              "rate limit: this caller started ", starts.size(), " speed tests in the last ",
              absl::FormatDuration(options_.rate_window), "; retry in ", absl::FormatDuration(absl::Ceil(wait, absl::Seconds(1))),
              " (cached results are always available without force)"));
        }
        starts.push_back(now);
        // Forget callers that went quiet (bounded memory).
        for (auto s = starts_by_caller_.begin(); s != starts_by_caller_.end();) {
          s = s->second.empty() ? starts_by_caller_.erase(s) : std::next(s);
        }
      }
      auto run = std::make_shared<Run>();
      run->sinks[id] = sink;
      runs_[provider] = run;
      ++stats_.runs;
      ReapThreadsLocked(&finished);
      auto done = std::make_shared<std::atomic<bool>>(false);
      threads_.push_back(RunThread{done, std::thread([this, provider, run, request, done, ids = std::move(ids)]() mutable {
                                     RunMain(provider, run, request, std::move(ids));
                                     done->store(true);
                                   })});
      return id;
    }
  }
  // Cache hit: answer inline, outside the lock.
  sink->OnFinal(cached);
  return id;
}

void SpeedTester::Unsubscribe(const std::string& provider, uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto r = runs_.find(provider);
  if (r == runs_.end()) return;
  r->second->sinks.erase(id);
  if (r->second->sinks.empty()) r->second->cancel = true;
}

std::vector<std::shared_ptr<SpeedTester::Sink>> SpeedTester::SinksOf(const std::shared_ptr<Run>& run) {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Sink>> out;
  for (auto& [id, s] : run->sinks) out.push_back(s);
  return out;
}

void SpeedTester::RunMain(std::string provider, std::shared_ptr<Run> run, v1::RunSpeedTestRequest request,
                          std::vector<std::string> ids) {
  RunSpec spec;
  spec.provider = provider;
  spec.has_candidate = request.has_candidate();
  if (spec.has_candidate) spec.candidate = request.candidate();
  spec.message_ids = std::move(ids);
  spec.duration = request.duration_seconds() > 0 ? absl::Seconds(request.duration_seconds())
                                                 : options_.default_duration;
  spec.max_bytes = request.bytes();
  spec.concurrency = request.connections();
  spec.progress_interval = options_.progress_interval;
  log::Info("speed test started", {{"provider", provider}});
  const absl::Time t0 = absl::Now();
  absl::StatusOr<v1::SpeedTestResult> result = ExecuteRun(
      broker_, spec,
      [&](const v1::SpeedTestProgress& p) {
        for (auto& s : SinksOf(run)) s->OnProgress(p);
      },
      &run->cancel);
  duration_.Observe(absl::ToDoubleSeconds(absl::Now() - t0));
  if (result.ok()) {
    runs_ok_.Increment();
    last_mbps_.Add({{"provider", provider}}).Set(result->megabytes_per_second());
    log::Info("speed test finished", {{"provider", provider},
                                      {"mb_per_s", result->megabytes_per_second()},
                                      {"bytes", result->bytes()},
                                      {"errors", result->errors()},
                                      {"missing", result->missing()}});
    if (store_ != nullptr) {
      absl::Status s = store_->Insert(*result);
      if (!s.ok()) log::Error("speed-test result not recorded", {{"provider", provider}, {"error", s.ToString()}});
    }
  } else {
    runs_failed_.Increment();
    log::Warning("speed test failed", {{"provider", provider}, {"error", result.status().ToString()}});
  }

  std::vector<std::shared_ptr<Sink>> sinks;
  {
    absl::MutexLock lock(&mu_);
    // Publish the result and retire the run in one step, so no request can
    // find neither (and start a second run).
    if (result.ok()) cache_[provider] = Cached{*result, clock_->Now()};
    runs_.erase(provider);
    for (auto& [id, s] : run->sinks) sinks.push_back(s);
    run->sinks.clear();
  }
  for (auto& s : sinks) s->OnFinal(result);
}

absl::StatusOr<std::vector<v1::SpeedTestResult>> SpeedTester::ListResults(const std::string& provider, int limit) {
  if (store_ == nullptr) {
    return absl::FailedPreconditionError("speed-test history is disabled (no database configured)");
  }
  if (limit < 0) return absl::InvalidArgumentError("limit must be >= 0");
  return store_->List(provider, limit == 0 ? 50 : std::min(limit, 1000));
}

SpeedTester::Stats SpeedTester::GetStats() {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace nzbmesh::speedtest
