#include "services/importer/analysis/par2.h"

#include <algorithm>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/importer/analysis/archive.h"
#include "services/importer/analysis/filenames.h"
#include "tests/services/importer/analysis/mini_json.h"
#include "tests/services/importer/analysis/test_fixtures.h"

namespace nzbmesh::importer {
namespace {

using ::nzbmesh::testing::ArchivesDir;
using ::nzbmesh::testing::Json;
using ::nzbmesh::testing::ReadFileOrEmpty;
using ::nzbmesh::testing::Sha256Hex;
using ::testing::HasSubstr;

const Json& FindSet(const std::string& id) {
  static const Json* const manifest = [] {
    auto* j = new Json;
    nzbmesh::testing::JsonParser(ReadFileOrEmpty(ArchivesDir() + "/manifest.json")).Parse(j);
    return j;
  }();
  for (const Json& s : (*manifest)["sets"].array) {
    if (s["id"].str == id) return s;
  }
  static const Json kNull;
  return kNull;
}

class Par2ManifestTest : public ::testing::TestWithParam<std::string> {};

// Every PAR2 file of the set (index and recovery volumes) describes exactly
// the protected files listed in the manifest.
TEST_P(Par2ManifestTest, FileDescriptionsMatchManifest) {
  const Json& set = FindSet(GetParam());
  ASSERT_EQ(set["par2"].type, Json::kObject);
  const Json& protected_files = set["par2"]["protected"];
  for (const Json& par2_file : set["par2"]["files"].array) {
    const std::string data = ReadFileOrEmpty(ArchivesDir() + "/" + GetParam() + "/" + par2_file["name"].str);
    ASSERT_EQ(static_cast<int64_t>(data.size()), par2_file["size"].Int());
    absl::StatusOr<Par2ParseResult> parsed = ParsePar2(data);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->bad_packets, 0);
    ASSERT_EQ(parsed->files.size(), protected_files.array.size()) << par2_file["name"].str;
    for (const Json& want : protected_files.array) {
      auto it = std::find_if(parsed->files.begin(), parsed->files.end(),
                             [&](const Par2FileDescription& d) { return d.name == want["name"].str; });
      ASSERT_NE(it, parsed->files.end()) << want["name"].str;
      EXPECT_EQ(it->length, want["size"].Int());
      EXPECT_EQ(Md5Hex(it->md5), want["md5"].str);
      EXPECT_EQ(Md5Hex(it->md5_16k), want["md5_16k"].str);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(SetsWithPar2, Par2ManifestTest,
                         ::testing::Values("rar5/store-vols", "7z/store-vols"),
                         [](const auto& info) { return info.param[0] == 'r' ? "rar5" : "sevenzip"; });

TEST(Par2, DamagedPacketIsSkippedAndCounted) {
  std::string data = ReadFileOrEmpty(ArchivesDir() + "/7z/store-vols/release.par2");
  absl::StatusOr<Par2ParseResult> clean = ParsePar2(data);
  ASSERT_TRUE(clean.ok());
  // Flip a byte inside the first FileDesc packet's name.
  const size_t at = data.find("release.7z.001");
  ASSERT_NE(at, std::string::npos);
  data[at] ^= 0x20;
  absl::StatusOr<Par2ParseResult> damaged = ParsePar2(data);
  ASSERT_TRUE(damaged.ok());
  EXPECT_EQ(damaged->bad_packets, 1);
  EXPECT_EQ(damaged->packets, clean->packets - 1);
  EXPECT_EQ(damaged->files.size(), clean->files.size() - 1);
}

TEST(Par2, NotPar2IsInvalidArgument) {
  absl::StatusOr<Par2ParseResult> parsed = ParsePar2("PAR2\0PKT but nothing else, really, nothing at all......");
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(parsed.status().message(), HasSubstr("no valid PAR2 packet"));
}

// The whole obfuscated-release path: volumes posted under random hex names,
// in random order. The first 16 KiB of each identifies it in the PAR2 index,
// the recovered names give the volume order, and the set maps exactly as the
// manifest says. 7z continuation volumes have no signature, so without PAR2
// their order could not be known.
TEST(Par2, RecoversObfuscatedVolumeNamesAndOrderForMapping) {
  std::mt19937_64 rng(7);
  for (const std::string id : {"7z/store-vols", "rar5/store-vols"}) {
    const Json& set = FindSet(id);
    Par2NameIndex index;
    absl::StatusOr<Par2ParseResult> parsed = ParsePar2(
        ReadFileOrEmpty(ArchivesDir() + "/" + id + "/" + set["par2"]["files"].array[0]["name"].str));
    ASSERT_TRUE(parsed.ok());
    index.Add(*parsed);

    struct Posted {
      std::string obfuscated_name;
      std::string bytes;
    };
    std::vector<Posted> posted;
    for (const Json& v : set["volumes"].array) {
      posted.push_back({absl::StrFormat("%016x%016x", rng(), rng()),
                        ReadFileOrEmpty(ArchivesDir() + "/" + id + "/" + v["name"].str)});
    }
    std::shuffle(posted.begin(), posted.end(), rng);

    std::vector<std::string> recovered;
    for (const Posted& p : posted) {
      EXPECT_TRUE(LooksObfuscated(p.obfuscated_name));
      const Par2FileDescription* d =
          index.FindByContent(absl::string_view(p.bytes).substr(0, kPar2HashPrefixBytes),
                              static_cast<int64_t>(p.bytes.size()));
      ASSERT_NE(d, nullptr) << id;
      recovered.push_back(d->name);
    }
    std::vector<VolumeSet> sets = GroupVolumeSets(recovered);
    ASSERT_EQ(sets.size(), 1u) << id;
    std::vector<ArchiveVolume> volumes;
    std::vector<const std::string*> contents;
    for (int i : sets[0].volumes) {
      volumes.push_back({recovered[i], static_cast<int64_t>(posted[i].bytes.size())});
      contents.push_back(&posted[i].bytes);
    }
    ByteReader reader = [&](int v, int64_t off, int64_t len) -> absl::StatusOr<std::string> {
      return contents[v]->substr(off, len);
    };
    absl::StatusOr<ArchiveMapping> mapping = MapArchive(volumes, reader);
    ASSERT_TRUE(mapping.ok()) << mapping.status();
    ASSERT_EQ(mapping->rejection, ArchiveRejection::kNone) << mapping->rejection_detail;
    for (const Json& f : set["files"].array) {
      auto it = std::find_if(mapping->members.begin(), mapping->members.end(),
                             [&](const ArchiveMember& m) { return m.name == f["name"].str; });
      ASSERT_NE(it, mapping->members.end()) << f["name"].str;
      std::string bytes;
      for (const ArchiveExtent& e : it->extents) bytes += contents[e.volume]->substr(e.volume_offset, e.length);
      EXPECT_EQ(Sha256Hex(bytes), f["sha256"].str) << id << " " << f["name"].str;
    }
  }
}

}  // namespace
}  // namespace nzbmesh::importer
