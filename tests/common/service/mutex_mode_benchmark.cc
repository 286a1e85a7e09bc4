// What absl::Mutex's deadlock detector costs with Debian's Abseil (built
// without NDEBUG, so the detector is on unless a binary turns it off; see
// common/service/mutex_mode.h). Every benchmark binary links
// //common/service:release_mutexes, so the detector starts off here;
// detect:1 turns it back on for its run.
//   BM_LockPair/detect:D             one thread: lock a, lock b, unlock both
//   BM_OwnMutex/detect:D/threads:2   two threads, each locking its own mutex
// Run: bazel run -c opt //tests/common/service:mutex_mode_benchmark
#include <benchmark/benchmark.h>

#include "absl/synchronization/mutex.h"

namespace {

void SetDetection(bool on) {
  absl::SetMutexDeadlockDetectionMode(on ? absl::OnDeadlockCycle::kAbort : absl::OnDeadlockCycle::kIgnore);
}

void BM_LockPair(benchmark::State& state) {
  SetDetection(state.range(0) == 1);
  absl::Mutex a, b;
  for (auto _ : state) {
    a.Lock();
    b.Lock();
    b.Unlock();
    a.Unlock();
  }
  SetDetection(false);
}
BENCHMARK(BM_LockPair)->ArgName("detect")->Arg(0)->Arg(1);

void BM_OwnMutex(benchmark::State& state) {
  if (state.thread_index() == 0) SetDetection(state.range(0) == 1);
  absl::Mutex mu;
  for (auto _ : state) {
    mu.Lock();
    mu.Unlock();
  }
  if (state.thread_index() == 0) SetDetection(false);
}
BENCHMARK(BM_OwnMutex)->ArgName("detect")->Arg(0)->Arg(1)->Threads(2)->UseRealTime();

}  // namespace
