#include "services/frontend/memory_limit.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

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

}  // namespace
}  // namespace nzbmesh::frontend
