// Fitting stream_memory_limit under the memory limit of the process's cgroup
// (a Kubernetes pod's `resources.limits.memory`, a systemd MemoryMax, a
// Docker --memory). stream_memory_limit bounds decoded segments only; the
// process needs more beside them: gRPC and HTTP buffers, the allocator's
// slack, code and stacks — 55–85 MiB over the budget at 200 streams in
// `frontend_broker_benchmark` with one malloc arena (LimitMallocArenas),
// 135–175 MiB with glibc's default arenas (docs/PERFORMANCE.md). A budget configured
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

// glibc malloc arenas for the frontend: the value LimitMallocArenas() sets,
// 0 when the environment already chooses (MALLOC_ARENA_MAX, or the
// glibc.malloc.arena_max tunable in GLIBC_TUNABLES), which is then left alone.
// With glibc's default (8 per core) each thread that allocates a segment or
// a gRPC slice keeps its own arena, and each arena keeps its freed memory:
// 200 streams held 613–644 MiB over the idle process against a 512 MiB
// stream budget; with one arena 547–564 MiB, and the frontend spent no more
// CPU (less in the 2 GiB sequential read) — docs/PERFORMANCE.md.
int MallocArenasToSet(const char* malloc_arena_max_env, const char* glibc_tunables_env);
// Applies MallocArenasToSet(getenv(...)) with mallopt(M_ARENA_MAX); call
// first thing in main(), before threads start. Returns the value set (0 =
// left to the environment).
int LimitMallocArenas();

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_MEMORY_LIMIT_H_
