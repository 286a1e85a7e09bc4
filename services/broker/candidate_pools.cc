#include "services/broker/candidate_pools.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"

namespace nzbmesh::broker {
namespace {

// A temporary pool together with the private metrics registry it reports to
// (candidate pools are not exported: their names could collide with the
// running pool's providers).
struct Holder {
  metrics::Registry registry;
  std::unique_ptr<Pool> pool;
  ~Holder() {
    if (pool) pool->Shutdown();
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<CandidatePools>> CandidatePools::Create(const CandidatePoolsOptions& options) {
  if (options.ttl <= absl::ZeroDuration()) return absl::InvalidArgumentError("candidate pools: ttl must be > 0");
  if (options.max_pools < 0) return absl::InvalidArgumentError("candidate pools: max_pools must be >= 0");
  if (options.clock == nullptr) return absl::InvalidArgumentError("candidate pools: clock is required");
  return std::unique_ptr<CandidatePools>(new CandidatePools(options));
}

CandidatePools::CandidatePools(const CandidatePoolsOptions& options) : options_(options), clock_(options.clock) {
  janitor_ = std::thread([this] { JanitorMain(); });
}

CandidatePools::~CandidatePools() { Shutdown(); }

std::string CandidatePools::AccountKey(const ProviderOptions& p) {
  return absl::StrCat(p.connection.host, ":", p.connection.port, ":", p.connection.username);
}

std::string CandidatePools::Fingerprint(const ProviderOptions& p) {
  // The password is part of the settings but never of anything logged.
  return absl::StrCat(static_cast<int>(p.connection.tls), "|", p.connection.tls_verify, "|", p.connection.tls_ca_file,
                      "|", std::hash<std::string>()(p.connection.password), "|", p.max_connections, "|",
                      p.pipeline_depth);
}

absl::StatusOr<std::shared_ptr<Pool>> CandidatePools::Acquire(const ProviderOptions& candidate) {
  if (candidate.connection.host.empty() || candidate.connection.port <= 0 || candidate.connection.port > 65535) {
    return absl::InvalidArgumentError("candidate provider: host and a port in 1..65535 are required");
  }
  if (candidate.max_connections < 1 || candidate.pipeline_depth < 1) {
    return absl::InvalidArgumentError("candidate provider: max_connections >= 1 and pipeline_depth >= 1 are required");
  }
  const std::string key = AccountKey(candidate);
  const std::string fp = Fingerprint(candidate);
  std::shared_ptr<Pool> stale;  // an unused pool with old settings, closed outside the lock
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return absl::UnavailableError("candidate pools are shut down");
    auto it = pools_.find(key);
    if (it != pools_.end()) {
      if (it->second.fingerprint == fp) {
        it->second.expires = clock_->Now() + options_.ttl;
        changed_ = true;
        return it->second.pool;
      }
      if (it->second.pool.use_count() > 1) {
        return absl::FailedPreconditionError(absl::StrCat(
            "candidate provider ", key, " is being tested with different settings; retry when that test ends"));
      }
      stale = std::move(it->second.pool);
      pools_.erase(it);
    }
    if (options_.max_pools > 0 && static_cast<int>(pools_.size()) >= options_.max_pools) {
      return absl::ResourceExhaustedError(absl::StrCat("already ", pools_.size(),
                                                       " temporary candidate pools open (max_pools); retry in ",
                                                       absl::FormatDuration(options_.ttl)));
    }
  }
  if (stale) stale->Shutdown();  // before dialling again: the account budget is shared

  PoolOptions po = options_.pool_template;
  po.clock = Clock::Real();
  ProviderOptions p = candidate;
  p.backup = false;
  // Connections must survive between tests for the pool to be worth reusing.
  p.idle_timeout = std::max(p.idle_timeout, options_.ttl);
  po.providers = {p};
  auto holder = std::make_shared<Holder>();
  auto pool = Pool::Create(po, &holder->registry);
  if (!pool.ok()) return pool.status();
  holder->pool = std::move(*pool);
  std::shared_ptr<Pool> shared(holder, holder->pool.get());

  absl::MutexLock lock(&mu_);
  if (shutdown_) return absl::UnavailableError("candidate pools are shut down");
  auto [it, inserted] = pools_.try_emplace(key);
  if (!inserted) {
    // Another caller created it meanwhile: use theirs, ours closes when dropped.
    it->second.expires = clock_->Now() + options_.ttl;
    changed_ = true;
    return it->second.pool;
  }
  it->second = Entry{shared, fp, clock_->Now() + options_.ttl};
  ++created_;
  changed_ = true;
  log::Info("temporary candidate pool created", {{"provider", candidate.name}, {"account", key}});
  return shared;
}

void CandidatePools::JanitorMain() {
  while (true) {
    std::vector<std::shared_ptr<Pool>> expired;
    {
      absl::MutexLock lock(&mu_);
      absl::Time next = absl::InfiniteFuture();
      for (const auto& [key, e] : pools_) next = std::min(next, e.expires);
      changed_ = false;
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return shutdown_ || changed_; };
      clock_->AwaitWithDeadline(&mu_, absl::Condition(&wake), next);
      if (shutdown_) return;
      const absl::Time now = clock_->Now();
      for (auto it = pools_.begin(); it != pools_.end();) {
        // use_count() == 1: only this map holds it, nobody is testing with it.
        if (it->second.expires <= now && it->second.pool.use_count() == 1) {
          log::Info("temporary candidate pool expired; closing it", {{"account", it->first}});
          expired.push_back(std::move(it->second.pool));
          it = pools_.erase(it);
        } else {
          if (it->second.expires <= now) {
            // In use past its TTL: look again shortly.
            it->second.expires = now + std::min(options_.ttl, absl::Seconds(1));
          }
          ++it;
        }
      }
    }
    for (auto& p : expired) p->Shutdown();  // closes connections, joins threads
  }
}

void CandidatePools::Shutdown() {
  absl::MutexLock serial(&shutdown_mu_);
  std::map<std::string, Entry> pools;
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = true;
    pools.swap(pools_);
  }
  if (janitor_.joinable()) janitor_.join();
  for (auto& [key, e] : pools) e.pool->Shutdown();
}

int CandidatePools::size() {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(pools_.size());
}

int64_t CandidatePools::pools_created() {
  absl::MutexLock lock(&mu_);
  return created_;
}

}  // namespace nzbmesh::broker
