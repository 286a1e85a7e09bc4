#include "services/importer/health.h"

#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log/log.h"

namespace nzbmesh::importer {

HealthSweeper::HealthSweeper(Store* store, BrokerClient* broker, HealthOptions options, ImporterMetrics* metrics)
    : store_(store), broker_(broker), options_(options), metrics_(metrics) {}

HealthSweeper::~HealthSweeper() { Stop(); }

void HealthSweeper::Start() {
  if (!options_.enabled || thread_.joinable()) return;
  thread_ = std::thread([this] {
    while (true) {
      auto r = RunOnce();
      sweeps_.fetch_add(1);
      if (!r.ok()) log::Warning("health sweep failed", {{"error", r.status().ToString()}});
      absl::MutexLock lock(&mu_);
      auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stop), options_.interval)) return;
    }
  });
}

void HealthSweeper::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  cancel_.Cancel();  // a STAT in flight returns CANCELLED now
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<HealthSweeper::SweepResult> HealthSweeper::RunOnce() {
  SweepResult out;
  auto due = store_->FilesForHealthCheck(options_.files_per_sweep, absl::Now() - options_.interval);
  if (!due.ok()) return due.status();
  std::mt19937_64 rng(absl::ToUnixNanos(absl::Now()));
  for (const HealthCandidate& c : *due) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) break;
    }
    auto layout = store_->GetFileLayoutById(c.file_id);
    if (!layout.ok()) {
      ++out.skipped;
      continue;
    }
    // Articles behind the file: its segments, or those of the volumes its
    // extents touch.
    std::vector<std::string> ids;
    for (const auto& s : layout->segments) ids.push_back(s.message_id);
    std::set<int> vols;
    for (const auto& e : layout->extents) vols.insert(e.volume);
    for (int v : vols) {
      for (const auto& s : layout->volumes[v].segments) ids.push_back(s.message_id);
    }
    if (ids.empty()) {
      ++out.skipped;
      continue;
    }
    std::set<size_t> pick = {0, ids.size() - 1};
    const size_t want = std::min<size_t>(ids.size(), std::max(1, options_.sample));
    std::uniform_int_distribution<size_t> d(0, ids.size() - 1);
    while (pick.size() < want) pick.insert(d(rng));
    std::vector<std::string> sample;
    for (size_t i : pick) sample.push_back(ids[i]);
    auto res =
        broker_->StatSegments(sample, nzbmesh::broker::v1::HEALTH, absl::Now() + options_.call_timeout, &cancel_);
    if (!res.ok() && cancel_.cancelled()) break;  // Stop(): no verdict for this file
    if (!res.ok()) {
      ++out.skipped;
      log::Warning("health check skipped", {{"path", c.path}, {"error", res.status().ToString()}});
      continue;
    }
    int missing = 0, errors = 0;
    for (const auto& r : *res) {
      const char* result = !r.error.empty() ? "error" : r.exists ? "exists" : "missing";
      if (!r.error.empty()) {
        ++errors;
      } else if (!r.exists) {
        ++missing;
      }
      if (metrics_) metrics_->segments_checked.Add({{"purpose", "health"}, {"result", result}}).Increment();
    }
    Health h = missing > 0 ? Health::kBroken : errors > 0 ? Health::kDegraded : Health::kHealthy;
    std::string detail = absl::StrCat(missing, " missing, ", errors, " errors of ", res->size(), " sampled");
    absl::Status s = store_->RecordHealth(c.file_id, h, static_cast<int>(res->size()), missing, detail);
    if (!s.ok()) {
      ++out.skipped;
      continue;
    }
    ++out.files;
    if (h == Health::kHealthy) ++out.healthy;
    if (h == Health::kDegraded) ++out.degraded;
    if (h == Health::kBroken) ++out.broken;
    if (metrics_) metrics_->health_results.Add({{"result", HealthName(h)}}).Increment();
  }
  return out;
}

}  // namespace nzbmesh::importer
