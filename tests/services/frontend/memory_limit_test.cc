#include "services/frontend/memory_limit.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace nzbmesh::frontend {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

class CgroupDir {
 public:
  CgroupDir() {
    std::string tmpl = std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/cgXXXXXX";
    root_ = mkdtemp(tmpl.data());
  }
  ~CgroupDir() { std::filesystem::remove_all(root_); }
  void Write(const std::string& rel, const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(root_ + "/" + rel).parent_path());
    std::ofstream(root_ + "/" + rel) << text;
  }
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

TEST(CgroupMemoryLimitTest, ReadsCgroupV2MemoryMax) {
  CgroupDir d;
  d.Write("memory.max", "536870912\n");
  EXPECT_EQ(CgroupMemoryLimit(d.root()), 512 * kMiB);
}

TEST(CgroupMemoryLimitTest, V2MaxMeansUnlimited) {
  CgroupDir d;
  d.Write("memory.max", "max\n");
  EXPECT_EQ(CgroupMemoryLimit(d.root()), std::nullopt);
}

TEST(CgroupMemoryLimitTest, FallsBackToCgroupV1AndItsUnlimitedSentinel) {
  CgroupDir d;
  d.Write("memory/memory.limit_in_bytes", "805306368\n");
  EXPECT_EQ(CgroupMemoryLimit(d.root()), 768 * kMiB);
  d.Write("memory/memory.limit_in_bytes", "9223372036854771712\n");
  EXPECT_EQ(CgroupMemoryLimit(d.root()), std::nullopt);
}

TEST(CgroupMemoryLimitTest, MissingOrGarbageIsUnknown) {
  CgroupDir d;
  EXPECT_EQ(CgroupMemoryLimit(d.root()), std::nullopt);
  d.Write("memory.max", "lots\n");
  EXPECT_EQ(CgroupMemoryLimit(d.root()), std::nullopt);
}

TEST(FitStreamMemoryLimitTest, LeavesAThirdOfThePodForEverythingElse) {
  EXPECT_EQ(FitStreamMemoryLimit(512 * kMiB, std::nullopt), 512 * kMiB);  // no limit: as configured
  EXPECT_EQ(FitStreamMemoryLimit(512 * kMiB, 768 * kMiB), 512 * kMiB);    // fits: unchanged
  EXPECT_EQ(FitStreamMemoryLimit(512 * kMiB, 512 * kMiB), 512 * kMiB - 512 * kMiB / 3);
  EXPECT_EQ(FitStreamMemoryLimit(512 * kMiB, 256 * kMiB), 128 * kMiB);    // at least 128 MiB of room
  EXPECT_EQ(FitStreamMemoryLimit(512 * kMiB, 128 * kMiB), 32 * kMiB);     // floor
  EXPECT_EQ(FitStreamMemoryLimit(64 * kMiB, 512 * kMiB), 64 * kMiB);      // never raised
}

TEST(MallocArenasTest, OneArenaUnlessTheEnvironmentChooses) {
  EXPECT_EQ(MallocArenasToSet(nullptr, nullptr), 1);
  EXPECT_EQ(MallocArenasToSet("", ""), 1);
  EXPECT_EQ(MallocArenasToSet(nullptr, "glibc.malloc.trim_threshold=1000"), 1);
  EXPECT_EQ(MallocArenasToSet("4", nullptr), 0);
  EXPECT_EQ(MallocArenasToSet(nullptr, "glibc.malloc.arena_max=8:glibc.malloc.tcache_count=0"), 0);
}

TEST(HeapThresholdsTest, BothSetUnlessTheEnvironmentChooses) {
  HeapThresholds t = HeapThresholdsToSet(nullptr, nullptr, nullptr);
  EXPECT_TRUE(t.mmap_threshold);
  EXPECT_TRUE(t.trim_threshold);
  t = HeapThresholdsToSet("", "", "glibc.malloc.arena_max=1");
  EXPECT_TRUE(t.mmap_threshold);
  EXPECT_TRUE(t.trim_threshold);
  t = HeapThresholdsToSet("1048576", nullptr, nullptr);
  EXPECT_FALSE(t.mmap_threshold);
  EXPECT_TRUE(t.trim_threshold);
  t = HeapThresholdsToSet(nullptr, "0", nullptr);
  EXPECT_TRUE(t.mmap_threshold);
  EXPECT_FALSE(t.trim_threshold);
  t = HeapThresholdsToSet(nullptr, nullptr, "glibc.malloc.trim_threshold=1:glibc.malloc.mmap_threshold=2");
  EXPECT_FALSE(t.mmap_threshold);
  EXPECT_FALSE(t.trim_threshold);
}

TEST(IdleHeapTrimmerTest, TrimsOnceAfterTheIdleTicksAndAgainOnlyAfterBusy) {
  bool idle = true;
  int trims = 0;
  IdleHeapTrimmer t([&] { return idle; }, 3, [&] { ++trims; });
  EXPECT_FALSE(t.Tick());
  EXPECT_FALSE(t.Tick());
  EXPECT_TRUE(t.Tick());  // the third idle tick in a row
  EXPECT_EQ(trims, 1);
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(t.Tick());  // still the same idle spell
  idle = false;
  EXPECT_FALSE(t.Tick());
  idle = true;
  EXPECT_FALSE(t.Tick());
  EXPECT_FALSE(t.Tick());
  idle = false;  // busy again before the third: the count starts over
  EXPECT_FALSE(t.Tick());
  idle = true;
  EXPECT_FALSE(t.Tick());
  EXPECT_FALSE(t.Tick());
  EXPECT_TRUE(t.Tick());
  EXPECT_EQ(trims, 2);
  EXPECT_EQ(t.trims(), 2);
}

int64_t RssBytes() {
  long pages = 0, resident = 0;
  std::ifstream("/proc/self/statm") >> pages >> resident;
  return static_cast<int64_t>(resident) * sysconf(_SC_PAGESIZE);
}

// The real allocator: freed segments stay mapped (the next ones reuse them
// without page faults) until the idle trim hands them back. With glibc's
// defaults the first segments are mmapped and unmapped on free, so the
// "kept" expectation fails.
TEST(IdleHeapTrimmerTest, KeptSegmentsStayResidentUntilTheIdleTrim) {
  const HeapThresholds set = KeepFreedHeap();
  ASSERT_TRUE(set.mmap_threshold && set.trim_threshold) << "MALLOC_*_THRESHOLD_ in the test's environment";
  constexpr size_t kSegment = 768000;
  constexpr int kSegments = 48;  // ~35 MiB: under the kept 64 MiB
  const int64_t base = RssBytes();
  std::vector<char*> segments;
  volatile char sink = 0;
  for (int i = 0; i < kSegments; ++i) {
    segments.push_back(static_cast<char*>(std::malloc(kSegment)));
    ASSERT_NE(segments.back(), nullptr);
    std::memset(segments.back(), i + 1, kSegment);
  }
  for (char* p : segments) sink = sink + p[kSegment / 2];
  const int64_t held = RssBytes() - base;
  ASSERT_GT(held, 30 * kMiB);
  for (auto it = segments.rbegin(); it != segments.rend(); ++it) std::free(*it);
  EXPECT_GT(RssBytes() - base, held - 4 * kMiB) << "freed segments went back to the kernel";

  IdleHeapTrimmer trimmer([] { return true; }, 1);
  EXPECT_TRUE(trimmer.Tick());
  EXPECT_LT(RssBytes() - base, 8 * kMiB) << "the idle trim kept the freed segments";
}

}  // namespace
}  // namespace nzbmesh::frontend
