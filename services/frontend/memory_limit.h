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
#include <functional>
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

// glibc malloc thresholds for a process that allocates and frees a decoded
// segment (~0.7 MiB) per fetch, hundreds of them a second. glibc's defaults
// adapt the mmap threshold to the largest freed chunk and then trim the
// heap whenever twice that (~1.5 MiB) lies free at its top, so the freed
// segments go back to the kernel and the next ones page-fault fresh zeroed
// pages. Keeping up to kKeptHeapTopBytes free at the top, and mmapping only
// chunks of kMmapThresholdBytes and more, takes that off the hot path: a
// process reading 2 GiB through FetchSegment page-faulted ~10× less and read
// up to 10 % faster, the frontend's 2 GiB read spent ~3 % less CPU per GB,
// and the RSS of 200 streams did not change (docs/PERFORMANCE.md, "Freed
// segments stay mapped"). IdleHeapTrimmer hands the kept memory back once
// nothing streams.
inline constexpr int kKeptHeapTopBytes = 64 << 20;
inline constexpr int kMmapThresholdBytes = 32 << 20;  // glibc's ceiling on 64-bit

// Which of the two thresholds KeepFreedHeap() sets: each is left alone when
// the environment chooses it (MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_,
// or glibc.malloc.mmap_threshold / trim_threshold in GLIBC_TUNABLES).
struct HeapThresholds {
  bool mmap_threshold = false;
  bool trim_threshold = false;
};
HeapThresholds HeapThresholdsToSet(const char* mmap_threshold_env, const char* trim_threshold_env,
                                   const char* glibc_tunables_env);
// Applies HeapThresholdsToSet(getenv(...)) with mallopt; returns what it set.
HeapThresholds KeepFreedHeap();

// Hands the heap KeepFreedHeap keeps back to the kernel when streaming has
// stopped: Tick() is called periodically (the frontend's main: every 10 s);
// after `idle_ticks` consecutive ticks on which `idle()` held it runs `trim`
// (malloc_trim(0) by default) once, and not again before a busy tick. Trimming
// a large free heap holds malloc's lock for tens of milliseconds, which is
// why it waits for idleness instead of running under load. Not thread-safe:
// one caller ticks.
class IdleHeapTrimmer {
 public:
  explicit IdleHeapTrimmer(std::function<bool()> idle, int idle_ticks = 3, std::function<void()> trim = {});
  // Returns whether this tick trimmed.
  bool Tick();
  int64_t trims() const { return trims_; }

 private:
  std::function<bool()> idle_;
  const int idle_ticks_;
  std::function<void()> trim_;
  int64_t idle_run_ = 0;  // consecutive idle ticks
  int64_t trims_ = 0;
};

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_MEMORY_LIMIT_H_
