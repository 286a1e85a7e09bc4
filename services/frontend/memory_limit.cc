#include "services/frontend/memory_limit.h"

#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"

namespace nzbmesh::frontend {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
// cgroup v1 reports "no limit" as a page-rounded INT64_MAX; anything past
// 1 PiB is no limit a host has.
constexpr int64_t kUnlimitedAbove = int64_t{1} << 50;

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<int64_t> ParseLimit(const std::string& text) {
  absl::string_view v = absl::StripAsciiWhitespace(text);
  if (v == "max") return std::nullopt;
  int64_t n = 0;
  if (!absl::SimpleAtoi(v, &n) || n <= 0 || n >= kUnlimitedAbove) return std::nullopt;
  return n;
}

// Whether the environment chooses a malloc setting itself: its own variable
// set, or the tunable named in GLIBC_TUNABLES. Such settings are left alone.
bool EnvironmentChooses(const char* env, const char* glibc_tunables_env, const char* tunable) {
  if (env != nullptr && *env != '\0') return true;
  return glibc_tunables_env != nullptr && std::strstr(glibc_tunables_env, tunable) != nullptr;
}

}  // namespace

std::optional<int64_t> CgroupMemoryLimit(const std::string& cgroup_root) {
  if (auto v2 = ReadFile(cgroup_root + "/memory.max")) return ParseLimit(*v2);
  if (auto v1 = ReadFile(cgroup_root + "/memory/memory.limit_in_bytes")) return ParseLimit(*v1);
  return std::nullopt;
}

int64_t FitStreamMemoryLimit(int64_t configured, std::optional<int64_t> process_limit) {
  if (!process_limit.has_value()) return configured;
  const int64_t room = std::max(*process_limit / 3, 128 * kMiB);
  const int64_t fit = std::max(*process_limit - room, 32 * kMiB);
  return std::min(configured, fit);
}

int MallocArenasToSet(const char* malloc_arena_max_env, const char* glibc_tunables_env) {
  return EnvironmentChooses(malloc_arena_max_env, glibc_tunables_env, "glibc.malloc.arena_max") ? 0 : 1;
}

int LimitMallocArenas() {
  const int n = MallocArenasToSet(std::getenv("MALLOC_ARENA_MAX"), std::getenv("GLIBC_TUNABLES"));
  if (n > 0) mallopt(M_ARENA_MAX, n);
  return n;
}

HeapThresholds HeapThresholdsToSet(const char* mmap_threshold_env, const char* trim_threshold_env,
                                   const char* glibc_tunables_env) {
  HeapThresholds t;
  t.mmap_threshold = !EnvironmentChooses(mmap_threshold_env, glibc_tunables_env, "glibc.malloc.mmap_threshold");
  t.trim_threshold = !EnvironmentChooses(trim_threshold_env, glibc_tunables_env, "glibc.malloc.trim_threshold");
  return t;
}

HeapThresholds KeepFreedHeap() {
  const HeapThresholds t = HeapThresholdsToSet(std::getenv("MALLOC_MMAP_THRESHOLD_"),
                                               std::getenv("MALLOC_TRIM_THRESHOLD_"), std::getenv("GLIBC_TUNABLES"));
  if (t.mmap_threshold) mallopt(M_MMAP_THRESHOLD, kMmapThresholdBytes);
  if (t.trim_threshold) mallopt(M_TRIM_THRESHOLD, kKeptHeapTopBytes);
  return t;
}

IdleHeapTrimmer::IdleHeapTrimmer(std::function<bool()> idle, int idle_ticks, std::function<void()> trim)
    : idle_(std::move(idle)), idle_ticks_(std::max(1, idle_ticks)), trim_(std::move(trim)) {
  if (!trim_) trim_ = [] { malloc_trim(0); };
}

bool IdleHeapTrimmer::Tick() {
  if (!idle_()) {
    idle_run_ = 0;
    return false;
  }
  // Exactly on the idle_ticks_-th idle tick in a row: once per idle spell.
  if (++idle_run_ != idle_ticks_) return false;
  trim_();
  ++trims_;
  return true;
}

}  // namespace nzbmesh::frontend
