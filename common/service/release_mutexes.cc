// Linked into every benchmark (nzb_cc_benchmark): turns off absl::Mutex's
// deadlock detector before main() runs, as the services do in theirs, so
// benchmarks measure what production runs (common/service/mutex_mode.h).
#include "common/service/mutex_mode.h"

namespace nzbmesh {
namespace {

const bool kReleaseMutexes = [] {
  DisableMutexDeadlockDetection();
  return true;
}();

}  // namespace
}  // namespace nzbmesh
