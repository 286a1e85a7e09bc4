// Fitting stream_memory_limit under the memory limit of the process's cgroup
// (a Kubernetes pod's `resources.limits.memory`, a systemd MemoryMax, a
// Docker --memory). stream_memory_limit bounds decoded segments only; the
// process needs more beside them: gRPC and HTTP buffers, the allocator's
// slack, code and stacks — 130–230 MB over the budget at 200 streams in
// `frontend_broker_benchmark` (docs/PERFORMANCE.md). A budget configured
// as large as the cgroup limit would get the frontend OOM-killed under
// load, so it is lowered to leave that room.
#ifndef NZBMESH_SERVICES_FRONTEND_MEMORY_LIMIT_H_
#define NZBMESH_SERVICES_FRONTEND_MEMORY_LIMIT_H_

#include <cstdint>
#include <optional>
#include <string>

namespace nzbmesh::frontend {

// The memory limit of the cgroup this process runs in, read below
// `cgroup_root`: cgroup v2 `memory.max`, else v1
// `memory/memory.limit_in_bytes`. nullopt when unlimited ("max", or v1's
// huge sentinel) or unreadable.
std::optional<int64_t> CgroupMemoryLimit(const std::string& cgroup_root = "/sys/fs/cgroup");

// The stream memory budget to use: `configured`, lowered when a process
// limit is known to leave max(limit / 3, 128 MiB) for everything else, and
// never below 32 MiB (a few segments per stream still play).
int64_t FitStreamMemoryLimit(int64_t configured, std::optional<int64_t> process_limit);

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_MEMORY_LIMIT_H_
