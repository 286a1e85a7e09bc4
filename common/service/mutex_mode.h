// absl::Mutex's deadlock detector, off for production binaries.
//
// Debian builds Abseil without NDEBUG, so every absl::Mutex::Lock() runs
// the deadlock detector: it records the lock in one process-wide graph
// under a global lock. `mutex_mode_benchmark` on the 2-core test machine
// (Abseil 20220623): 51 ns instead of 11 ns for a nested lock pair on one
// thread, and 148 ns instead of 6 ns of CPU per lock when two threads lock
// their own mutexes (they serialise on the graph's lock). The services, the test news
// server and every benchmark turn it off; unit tests keep it on, so a
// lock-order inversion still aborts the test that creates it.
#ifndef NZBMESH_COMMON_SERVICE_MUTEX_MODE_H_
#define NZBMESH_COMMON_SERVICE_MUTEX_MODE_H_

namespace nzbmesh {

// Call first thing in main(); safe at any time (later locks skip the check).
void DisableMutexDeadlockDetection();

}  // namespace nzbmesh

#endif  // NZBMESH_COMMON_SERVICE_MUTEX_MODE_H_
