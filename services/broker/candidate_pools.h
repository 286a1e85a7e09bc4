// CandidatePools: temporary broker pools for speed-testing providers that are
// not in the running pool (T4 in docs/INVARIANTS.md).
//
// Runs inside the broker (FetchCandidateSegment), because
// only the broker opens NNTP connections. Each candidate provider account
// (host, port, username) gets at most one temporary Pool, created on first
// use and reused while it keeps being used; `ttl` after its last Acquire a
// janitor thread shuts it down (closing every connection). A pool still held
// by a caller is never closed under it: the janitor waits until it is
// released. The temporary pool never opens more connections than the
// candidate's max_connections (it is a regular Pool with that budget).
//
// Threading: one janitor thread (waits on the injected Clock); Acquire and
// Shutdown may be called from any thread. mu_ is never held while a Pool is
// created or shut down (both may block on the network or on joins).
#ifndef NZBMESH_SERVICES_BROKER_CANDIDATE_POOLS_H_
#define NZBMESH_SERVICES_BROKER_CANDIDATE_POOLS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/time/clock.h"
#include "services/broker/pool.h"

namespace nzbmesh::broker {

struct CandidatePoolsOptions {
  // A temporary pool is closed this long after its last Acquire (and once no
  // caller holds it). Must be > 0.
  absl::Duration ttl = absl::Minutes(5);
  // At most this many candidate accounts at once; Acquire of another one
  // fails with RESOURCE_EXHAUSTED. 0 = unlimited.
  int max_pools = 8;
  // Scheduling knobs of each temporary pool (its `providers` and `clock` are
  // ignored: the pool holds exactly the candidate and uses the real clock).
  PoolOptions pool_template;
  // Drives the TTL and the janitor (tests pass a SimulatedClock).
  Clock* clock = Clock::Real();
};

class CandidatePools {
 public:
  static absl::StatusOr<std::unique_ptr<CandidatePools>> Create(const CandidatePoolsOptions& options);
  ~CandidatePools();  // Shutdown()

  // The temporary pool of `candidate`'s account, created on first use; its
  // TTL restarts now. Keep the pointer only while using it. Errors:
  // INVALID_ARGUMENT (bad candidate), FAILED_PRECONDITION (the account's
  // pool is in use with different settings), RESOURCE_EXHAUSTED (max_pools),
  // UNAVAILABLE (shut down).
  absl::StatusOr<std::shared_ptr<Pool>> Acquire(const ProviderOptions& candidate);

  // Closes every temporary pool and stops the janitor. Idempotent; later
  // Acquire calls fail with UNAVAILABLE.
  void Shutdown();

  // Live temporary pools, and pools created since start (tests, metrics).
  int size();
  int64_t pools_created();

 private:
  struct Entry {
    std::shared_ptr<Pool> pool;  // owns the pool and its registry
    std::string fingerprint;             // settings it was created with
    absl::Time expires;                  // last Acquire + ttl
  };

  explicit CandidatePools(const CandidatePoolsOptions& options);
  void JanitorMain();
  static std::string AccountKey(const ProviderOptions& p);
  static std::string Fingerprint(const ProviderOptions& p);

  const CandidatePoolsOptions options_;
  Clock* const clock_;

  absl::Mutex mu_;  // protects everything below
  std::map<std::string, Entry> pools_ ABSL_GUARDED_BY(mu_);  // by account key
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  bool changed_ ABSL_GUARDED_BY(mu_) = false;  // wakes the janitor to recompute its deadline
  int64_t created_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread janitor_;
  absl::Mutex shutdown_mu_;  // serialises Shutdown (join)
};

}  // namespace nzbmesh::broker

#endif  // NZBMESH_SERVICES_BROKER_CANDIDATE_POOLS_H_
