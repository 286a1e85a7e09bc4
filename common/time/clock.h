// An injectable clock. Production code takes a Clock* (default
// Clock::Real()); tests pass a SimulatedClock and advance it by hand, so
// timers and timeouts are tested without sleeping.
#ifndef NZBMESH_COMMON_TIME_CLOCK_H_
#define NZBMESH_COMMON_TIME_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace nzbmesh {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // Blocks until Now() >= deadline or `cond` (evaluated under `mu`, which the
  // caller holds) becomes true. Returns the value of `cond` at wake-up.
  virtual bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& cond,
                                 absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) = 0;
  // The process-wide real clock (never destroyed).
  static Clock* Real();
};

// A clock that moves only when told. Waiters wake when AdvanceTime passes
// their deadline or their condition becomes true.
class SimulatedClock : public Clock {
 public:
  explicit SimulatedClock(absl::Time start = absl::UnixEpoch() + absl::Hours(24 * 365 * 50));
  absl::Time Now() const override;
  bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& cond,
                         absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) override;
  void AdvanceTime(absl::Duration d);
  void SetTime(absl::Time t);

 private:
  mutable absl::Mutex mu_;  // protects now_
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nzbmesh

#endif  // NZBMESH_COMMON_TIME_CLOCK_H_
