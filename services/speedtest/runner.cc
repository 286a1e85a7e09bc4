#include "services/speedtest/runner.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/status/grpc_status.h"

namespace nzbmesh::speedtest {
namespace {

namespace bv1 = ::nzbmesh::broker::v1;

// A fetch that ends with DEADLINE_EXCEEDED this close to the run's end was
// cut off by it (the broker may answer a hair before the client's clock).
constexpr absl::Duration kEndSlack = absl::Milliseconds(100);

// State shared by the workers of one run.
class RunState {
 public:
  RunState(const RunSpec& spec, absl::Time end) : spec_(spec), end_(end) {}

  // Next article to fetch, or false when the run is over.
  bool Next(const std::atomic<bool>* cancel, std::string* id, grpc::ClientContext* ctx) {
    absl::MutexLock lock(&mu_);
    if (ShouldStopLocked(cancel)) return false;
    const size_t n = spec_.message_ids.size();
    *id = spec_.message_ids[issued_ % n];
    ++issued_;
    active_.insert(ctx);
    return true;
  }
  void AddBytes(int64_t b) {
    absl::MutexLock lock(&mu_);
    bytes_ += b;
  }
  void Finished(grpc::ClientContext* ctx, const absl::Status& s, bool counted, double ttfb) {
    absl::MutexLock lock(&mu_);
    active_.erase(ctx);
    ++completed_;
    if (s.ok()) {
      if (counted) {
        ++articles_;
        ttfbs_.push_back(ttfb);
      }
    } else if ((s.code() == absl::StatusCode::kCancelled || s.code() == absl::StatusCode::kDeadlineExceeded) &&
               (stopping_ || absl::Now() >= end_ - kEndSlack)) {
      // Cut off by the end of the run: neither an error nor an article.
    } else if (s.code() == absl::StatusCode::kNotFound) {
      ++missing_;
    } else {
      ++errors_;
      last_error_ = s;
    }
    if (completed_ % spec_.message_ids.size() == 0) {
      // A whole pass without a byte from this provider: more passes won't help.
      if (bytes_ == 0) pass_without_bytes_ = true;
    }
  }
  // Stops issuing and cancels fetches in flight.
  void Stop() {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto* c : active_) c->TryCancel();
  }
  bool Over(const std::atomic<bool>* cancel) {
    absl::MutexLock lock(&mu_);
    return ShouldStopLocked(cancel);
  }
  // Blocks until the run is over or `deadline` (a bound: a cancel flag or the
  // run's end time is noticed at the latest then).
  void WaitOver(const std::atomic<bool>* cancel, absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto over = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ShouldStopLocked(cancel); };
    mu_.AwaitWithDeadline(absl::Condition(&over), deadline);
  }
  int64_t bytes() {
    absl::MutexLock lock(&mu_);
    return bytes_;
  }
  void Fill(v1::SpeedTestResult* r) {
    absl::MutexLock lock(&mu_);
    r->set_bytes(bytes_);
    r->set_articles(articles_);
    r->set_errors(errors_);
    r->set_missing(missing_);
    r->set_ttfb_median_seconds(Percentile(ttfbs_, 0.5));
    r->set_ttfb_p95_seconds(Percentile(ttfbs_, 0.95));
  }
  absl::Status last_error() {
    absl::MutexLock lock(&mu_);
    return last_error_;
  }

 private:
  bool ShouldStopLocked(const std::atomic<bool>* cancel) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (stopping_ || pass_without_bytes_) return true;
    if (cancel != nullptr && cancel->load()) return true;
    if (spec_.max_bytes > 0 && bytes_ >= spec_.max_bytes) return true;
    return absl::Now() >= end_;
  }

  const RunSpec& spec_;
  const absl::Time end_;
  absl::Mutex mu_;  // protects everything below
  uint64_t issued_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t completed_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t articles_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t errors_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t missing_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<double> ttfbs_ ABSL_GUARDED_BY(mu_);
  std::set<grpc::ClientContext*> active_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool pass_without_bytes_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status last_error_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<bv1::ProviderStatus> FindProvider(bv1::Broker::StubInterface* broker, const RunSpec& spec) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + spec.status_timeout));
  bv1::PoolStatus st;
  grpc::Status s = broker->GetPoolStatus(&ctx, bv1::GetPoolStatusRequest(), &st);
  if (!s.ok()) {
    absl::Status a = FromGrpcStatus(s);
    return absl::Status(a.code(), absl::StrCat("broker GetPoolStatus: ", a.message()));
  }
  std::vector<std::string> names;
  for (const auto& p : st.providers()) {
    if (p.name() == spec.provider) return p;
    names.push_back(p.name());
  }
  return absl::NotFoundError(absl::StrCat("provider \"", spec.provider, "\" is not in the broker's pool (providers: ",
                                          names.empty() ? "none" : absl::StrJoin(names, ", "), ")"));
}

void Worker(bv1::Broker::StubInterface* broker, const RunSpec& spec, RunState* state, const std::atomic<bool>* cancel,
            absl::Time end) {
  while (true) {
    grpc::ClientContext ctx;
    std::string id;
    if (!state->Next(cancel, &id, &ctx)) return;
    ctx.set_deadline(absl::ToChronoTime(end));
    const absl::Time t0 = absl::Now();
    std::unique_ptr<grpc::ClientReaderInterface<bv1::FetchSegmentResponse>> reader;
    if (spec.has_candidate) {
      bv1::FetchCandidateSegmentRequest req;
      *req.mutable_provider() = spec.candidate;
      req.set_message_id(id);
      reader = broker->FetchCandidateSegment(&ctx, req);
    } else {
      bv1::FetchSegmentRequest req;
      req.set_message_id(id);
      req.set_traffic_class(bv1::SPEEDTEST);
      req.set_provider(spec.provider);
      reader = broker->FetchSegment(&ctx, req);
    }
    bv1::FetchSegmentResponse resp;
    bool first = true, counted = false;
    double ttfb = 0;
    int64_t expected = -1, received = 0;
    while (reader->Read(&resp)) {
      if (first) {
        first = false;
        ttfb = absl::ToDoubleSeconds(absl::Now() - t0);
        counted = spec.has_candidate || resp.metadata().provider() == spec.provider;
        expected = resp.metadata().decoded_size();
      }
      received += static_cast<int64_t>(resp.data().size());
      if (counted) state->AddBytes(static_cast<int64_t>(resp.data().size()));
    }
    absl::Status s = FromGrpcStatus(reader->Finish());
    if (s.code() == absl::StatusCode::kDataLoss) s = absl::OkStatus();  // bytes arrived; CRC is the broker's concern
    // The run's end (byte budget reached by these very bytes, or time) may
    // cancel the call after its last byte arrived but before its status: the
    // article was transferred whole and counts.
    if ((s.code() == absl::StatusCode::kCancelled || s.code() == absl::StatusCode::kDeadlineExceeded) &&
        expected >= 0 && received == expected && state->Over(cancel)) {
      s = absl::OkStatus();
    }
    state->Finished(&ctx, s, counted, ttfb);
  }
}

}  // namespace

double Percentile(std::vector<double> samples, double q) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  size_t rank = static_cast<size_t>(std::ceil(q * samples.size()));
  rank = std::clamp<size_t>(rank, 1, samples.size());
  return samples[rank - 1];
}

absl::StatusOr<v1::SpeedTestResult> ExecuteRun(bv1::Broker::StubInterface* broker, const RunSpec& spec,
                                               const std::function<void(const v1::SpeedTestProgress&)>& progress,
                                               const std::atomic<bool>* cancel) {
  if (spec.message_ids.empty()) return absl::InvalidArgumentError("speed test: no test articles");
  if (spec.duration <= absl::ZeroDuration()) return absl::InvalidArgumentError("speed test: duration must be > 0");
  int provider_max = 1;
  if (spec.has_candidate) {
    provider_max = std::max(1, spec.candidate.max_connections()) * std::max(1, spec.candidate.pipeline_depth());
  } else {
    auto provider = FindProvider(broker, spec);
    if (!provider.ok()) return provider.status();
    provider_max = std::max(1, provider->max_connections() * std::max(1, provider->pipeline_depth()));
  }
  int concurrency = spec.concurrency;
  if (concurrency <= 0 || concurrency > provider_max) concurrency = provider_max;

  const absl::Time start = absl::Now();
  const absl::Time end = start + spec.duration;
  RunState state(spec, end);
  std::vector<std::thread> workers;
  workers.reserve(concurrency);
  for (int i = 0; i < concurrency; ++i) {
    workers.emplace_back([&] { Worker(broker, spec, &state, cancel, end); });
  }

  // Progress and connection sampling until the workers stop issuing.
  int32_t max_busy = 0;
  auto sample = [&] {
    if (spec.has_candidate) return;  // temporary pools are not in GetPoolStatus
    auto p = FindProvider(broker, spec);
    if (p.ok()) max_busy = std::max(max_busy, p->connections_busy());
  };
  auto report = [&] {
    if (!progress) return;
    v1::SpeedTestProgress pr;
    const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
    const int64_t bytes = state.bytes();
    pr.set_elapsed_seconds(elapsed);
    pr.set_bytes(bytes);
    pr.set_megabytes_per_second(elapsed > 0 ? bytes / 1e6 / elapsed : 0);
    progress(pr);
  };
  while (!state.Over(cancel)) {
    sample();
    report();
    state.WaitOver(cancel, std::min(end, absl::Now() + spec.progress_interval));
  }
  sample();
  state.Stop();
  for (auto& w : workers) w.join();
  const absl::Time finish = absl::Now();

  if (cancel != nullptr && cancel->load()) return absl::CancelledError("speed test cancelled: every caller left");
  v1::SpeedTestResult r;
  r.set_provider(spec.provider);
  state.Fill(&r);
  const double secs = std::max(1e-9, absl::ToDoubleSeconds(finish - start));
  r.set_duration_seconds(secs);
  r.set_megabytes_per_second(r.bytes() / 1e6 / secs);
  if (max_busy == 0 && r.articles() > 0) max_busy = 1;  // every sample fell between fetches
  r.set_connections_used(std::min<int32_t>(max_busy, std::max(1, provider_max)));
  r.set_started_unix_ms(absl::ToUnixMillis(start));
  if (r.bytes() == 0 && r.articles() == 0 && r.errors() > 0) {
    absl::Status e = state.last_error();
    return absl::Status(e.code(), absl::StrCat("speed test of ", spec.provider, ": every fetch failed; last error: ",
                                               e.message()));
  }
  return r;
}

}  // namespace nzbmesh::speedtest
