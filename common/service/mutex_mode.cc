#include "common/service/mutex_mode.h"

#include "absl/synchronization/mutex.h"

namespace nzbmesh {

void DisableMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace nzbmesh
