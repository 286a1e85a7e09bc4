// Runs the archive mapper over every set in tests/testdata/archives/
// manifest.json (real RAR4/RAR5/7z volumes) and checks the verdict, and for
// accepted sets every member's extents and SHA-256 against the manifest.
#include "services/importer/analysis/archive.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/services/importer/analysis/mini_json.h"
#include "tests/services/importer/analysis/test_fixtures.h"

namespace nzbmesh::importer {
namespace {

using ::nzbmesh::testing::ArchivesDir;
using ::nzbmesh::testing::Json;
using ::nzbmesh::testing::ReadFileOrEmpty;
using ::nzbmesh::testing::Sha256Hex;
using ::testing::HasSubstr;

const Json& Manifest() {
  static const Json* const manifest = [] {
    auto* j = new Json;
    const std::string text = ReadFileOrEmpty(ArchivesDir() + "/manifest.json");
    if (!nzbmesh::testing::JsonParser(text).Parse(j)) j->type = Json::kNull;
    return j;
  }();
  return *manifest;
}

std::vector<std::string> SetIds() {
  std::vector<std::string> ids;
  for (const Json& s : Manifest()["sets"].array) ids.push_back(s["id"].str);
  return ids;
}

const Json& FindSet(const std::string& id) {
  for (const Json& s : Manifest()["sets"].array) {
    if (s["id"].str == id) return s;
  }
  static const Json kNull;
  return kNull;
}

// A set's volumes loaded into memory, with a reader over them.
struct LoadedSet {
  std::vector<ArchiveVolume> volumes;
  std::vector<std::string> contents;

  ByteReader Reader() const {
    return [this](int v, int64_t offset, int64_t length) -> absl::StatusOr<std::string> {
      if (v < 0 || v >= static_cast<int>(contents.size())) return absl::NotFoundError("volume");
      return contents[v].substr(offset, length);
    };
  }
  // Bytes of a member, concatenated from its extents.
  std::string Bytes(const ArchiveMember& m) const {
    std::string out;
    for (const ArchiveExtent& e : m.extents) out += contents[e.volume].substr(e.volume_offset, e.length);
    return out;
  }
};

LoadedSet Load(const Json& set) {
  LoadedSet loaded;
  for (const Json& v : set["volumes"].array) {
    loaded.volumes.push_back({v["name"].str, v["size"].Int()});
    loaded.contents.push_back(ReadFileOrEmpty(ArchivesDir() + "/" + set["id"].str + "/" + v["name"].str));
  }
  return loaded;
}

std::string ExtentsToString(const LoadedSet& loaded, const std::vector<ArchiveExtent>& extents) {
  std::string out;
  for (const ArchiveExtent& e : extents) {
    absl::StrAppend(&out, loaded.volumes[e.volume].name, "@", e.volume_offset, "+", e.length, "; ");
  }
  return out;
}

std::string SegmentsToString(const Json& file) {
  std::string out;
  for (const Json& s : file["segments"].array) {
    absl::StrAppend(&out, s["volume"].str, "@", s["offset"].Int(), "+", s["length"].Int(), "; ");
  }
  return out;
}

// Checks accepted members against the manifest's files (extents + SHA-256).
void ExpectMembersMatchManifest(const Json& set, const LoadedSet& loaded, const ArchiveMapping& m,
                                bool only_accepted) {
  std::map<std::string, const ArchiveMember*> by_name;
  for (const ArchiveMember& member : m.members) by_name[member.name] = &member;
  int checked = 0;
  for (const Json& f : set["files"].array) {
    if (f["dir"].b) continue;
    auto it = by_name.find(f["name"].str);
    ASSERT_NE(it, by_name.end()) << "missing member " << f["name"].str;
    const ArchiveMember& member = *it->second;
    if (only_accepted && member.rejection != ArchiveRejection::kNone) continue;
    EXPECT_EQ(member.rejection, ArchiveRejection::kNone) << member.name << ": " << member.rejection_detail;
    EXPECT_FALSE(member.is_directory) << member.name;
    EXPECT_EQ(member.size, f["size"].Int()) << member.name;
    EXPECT_EQ(ExtentsToString(loaded, member.extents), SegmentsToString(f)) << member.name;
    // file_offset must be contiguous.
    int64_t next = 0;
    for (const ArchiveExtent& e : member.extents) {
      EXPECT_EQ(e.file_offset, next) << member.name;
      next += e.length;
    }
    EXPECT_EQ(next, member.size) << member.name;
    if (f["sha256"].type == Json::kString) {
      EXPECT_EQ(Sha256Hex(loaded.Bytes(member)), f["sha256"].str) << member.name;
    }
    ++checked;
  }
  if (!only_accepted) {
    int non_dirs = 0;
    for (const ArchiveMember& member : m.members) non_dirs += !member.is_directory;
    EXPECT_EQ(non_dirs, checked) << "mapper found members the manifest does not list";
  }
}

class ArchiveManifestTest : public ::testing::TestWithParam<std::string> {};

TEST(ArchiveManifest, ManifestLoadsAndListsEverySet) {
  ASSERT_EQ(Manifest().type, Json::kObject) << "could not read " << ArchivesDir() << "/manifest.json";
  EXPECT_EQ(SetIds().size(), 37u);
}

TEST_P(ArchiveManifestTest, MapsSetAsManifestExpects) {
  const Json& set = FindSet(GetParam());
  ASSERT_EQ(set.type, Json::kObject);
  const LoadedSet loaded = Load(set);
  int64_t total = 0;
  for (size_t i = 0; i < loaded.contents.size(); ++i) {
    ASSERT_EQ(static_cast<int64_t>(loaded.contents[i].size()), loaded.volumes[i].size)
        << loaded.volumes[i].name;
    total += loaded.volumes[i].size;
  }
  absl::StatusOr<ArchiveMapping> mapping = MapArchive(loaded.volumes, loaded.Reader());
  ASSERT_TRUE(mapping.ok()) << mapping.status();
  const std::string expect = set["expect"].str;
  const std::string format = set["format"].str;
  EXPECT_EQ(ArchiveFormatName(mapping->format),
            format == "RAR4" ? "rar4" : format == "RAR5" ? "rar5" : "7z");
  // Only headers are read: a few hundred bytes per volume, never member data.
  EXPECT_LE(mapping->bytes_read, 1024 * static_cast<int64_t>(loaded.volumes.size()) + 2048)
      << "of " << total;
  RecordProperty("bytes_read", static_cast<int>(mapping->bytes_read));

  if (expect == "accept") {
    EXPECT_EQ(mapping->rejection, ArchiveRejection::kNone) << mapping->rejection_detail;
    ExpectMembersMatchManifest(set, loaded, *mapping, /*only_accepted=*/false);
    return;
  }
  ASSERT_TRUE(absl::StartsWith(expect, "reject")) << expect;
  if (absl::StrContains(expect, "encrypted headers")) {
    EXPECT_EQ(mapping->rejection, ArchiveRejection::kUnsupportedEncrypted);
    EXPECT_TRUE(mapping->headers_encrypted);
    EXPECT_THAT(mapping->rejection_detail, HasSubstr("headers are encrypted"));
  } else if (absl::StrContains(expect, "encrypted")) {
    EXPECT_EQ(mapping->rejection, ArchiveRejection::kUnsupportedEncrypted) << mapping->rejection_detail;
    EXPECT_FALSE(mapping->headers_encrypted);
  } else if (absl::StrContains(expect, "solid")) {
    EXPECT_TRUE(mapping->rejection == ArchiveRejection::kUnsupportedSolid ||
                mapping->rejection == ArchiveRejection::kUnsupportedCompressed)
        << ArchiveRejectionName(mapping->rejection);
    EXPECT_TRUE(mapping->solid);
  } else if (absl::StrContains(expect, "compressed")) {
    EXPECT_EQ(mapping->rejection, ArchiveRejection::kUnsupportedCompressed) << mapping->rejection_detail;
  } else {
    // "reject (or accept only the plain stored members)": rar4/encrypted-files-mixed.
    EXPECT_EQ(mapping->rejection, ArchiveRejection::kUnsupportedEncrypted) << mapping->rejection_detail;
    ArchiveMapOptions partial;
    partial.accept_partial = true;
    absl::StatusOr<ArchiveMapping> p = MapArchive(loaded.volumes, loaded.Reader(), partial);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->rejection, ArchiveRejection::kNone);
    int accepted = 0;
    for (const ArchiveMember& m : p->members) accepted += m.rejection == ArchiveRejection::kNone;
    EXPECT_EQ(accepted, 2);
    ExpectMembersMatchManifest(set, loaded, *p, /*only_accepted=*/true);
  }
  // When headers are readable every listed member is present and rejected
  // unless it is a plain stored member.
  if (!mapping->headers_encrypted) {
    for (const ArchiveMember& m : mapping->members) {
      EXPECT_TRUE(m.extents.empty() || m.rejection == ArchiveRejection::kNone) << m.name;
    }
  }
}

std::string TestName(const ::testing::TestParamInfo<std::string>& info) {
  std::string out;
  for (char c : info.param) out.push_back(absl::ascii_isalnum(c) ? c : '_');
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllSets, ArchiveManifestTest, ::testing::ValuesIn(SetIds()), TestName);

// Obfuscated posts: random hex names, shuffled input order. RAR sets are
// still mapped correctly because the headers number the volumes; 7z sets
// because the first volume has the signature and the tail is the short one.
TEST(ArchiveObfuscated, RecognisesAcceptedSetsByContentUnderRandomNames) {
  std::mt19937_64 rng(42);
  int sets = 0;
  for (const Json& set : Manifest()["sets"].array) {
    if (set["expect"].str != "accept") continue;
    const LoadedSet original = Load(set);
    if (set["format"].str == "7z" && original.volumes.size() > 2) continue;  // Needs PAR2 names.
    absl::StatusOr<ArchiveMapping> want = MapArchive(original.volumes, original.Reader());
    ASSERT_TRUE(want.ok());

    std::vector<int> perm(original.volumes.size());
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    if (perm.size() > 1 && std::is_sorted(perm.begin(), perm.end())) std::reverse(perm.begin(), perm.end());
    LoadedSet obfuscated;
    for (int p : perm) {
      obfuscated.volumes.push_back({absl::StrFormat("%016x%016x", rng(), rng()), original.volumes[p].size});
      obfuscated.contents.push_back(original.contents[p]);
    }
    absl::StatusOr<ArchiveMapping> got = MapArchive(obfuscated.volumes, obfuscated.Reader());
    ASSERT_TRUE(got.ok()) << set["id"].str;
    ASSERT_EQ(got->rejection, ArchiveRejection::kNone) << set["id"].str << ": " << got->rejection_detail;
    ASSERT_EQ(got->members.size(), want->members.size()) << set["id"].str;
    for (size_t i = 0; i < want->members.size(); ++i) {
      const ArchiveMember& w = want->members[i];
      const ArchiveMember& g = got->members[i];
      EXPECT_EQ(g.name, w.name);
      ASSERT_EQ(g.extents.size(), w.extents.size()) << set["id"].str << " " << w.name;
      for (size_t k = 0; k < w.extents.size(); ++k) {
        EXPECT_EQ(perm[g.extents[k].volume], w.extents[k].volume) << set["id"].str << " " << w.name;
        EXPECT_EQ(g.extents[k].volume_offset, w.extents[k].volume_offset);
        EXPECT_EQ(g.extents[k].length, w.extents[k].length);
      }
      EXPECT_EQ(Sha256Hex(obfuscated.Bytes(g)), Sha256Hex(original.Bytes(w)));
    }
    ++sets;
  }
  EXPECT_GE(sets, 15);
}

TEST(ArchiveErrors, ReaderErrorIsReturnedUnchanged) {
  const LoadedSet loaded = Load(FindSet("rar5/store-vols"));
  ByteReader failing = [](int, int64_t, int64_t) -> absl::StatusOr<std::string> {
    return absl::NotFoundError("article <abc@x> missing");
  };
  absl::StatusOr<ArchiveMapping> m = MapArchive(loaded.volumes, failing);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(m.status().message(), HasSubstr("article <abc@x> missing"));
}

TEST(ArchiveErrors, MissingLastVolumeIsCorrupt) {
  for (const char* id : {"rar4/store-vols-oldnames", "rar5/store-vols", "7z/store-vols-2"}) {
    LoadedSet loaded = Load(FindSet(id));
    loaded.volumes.pop_back();
    loaded.contents.pop_back();
    absl::StatusOr<ArchiveMapping> m = MapArchive(loaded.volumes, loaded.Reader());
    ASSERT_TRUE(m.ok()) << id << ": " << m.status();
    EXPECT_EQ(m->rejection, ArchiveRejection::kCorrupt) << id;
    EXPECT_THAT(m->rejection_detail, ::testing::AnyOf(HasSubstr("missing"), HasSubstr("beyond")))
        << id;
  }
}

TEST(ArchiveErrors, FlippedHeaderByteFailsCrc) {
  LoadedSet loaded = Load(FindSet("rar4/store-single"));
  loaded.contents[0][30] ^= 0x01;  // Inside the first file header.
  absl::StatusOr<ArchiveMapping> m = MapArchive(loaded.volumes, loaded.Reader());
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->rejection, ArchiveRejection::kCorrupt);
  EXPECT_THAT(m->rejection_detail, HasSubstr("CRC mismatch"));
}

TEST(ArchiveErrors, NotAnArchiveIsInvalidArgument) {
  std::vector<ArchiveVolume> volumes = {{"movie.mkv", 100}};
  ByteReader reader = [](int, int64_t, int64_t len) -> absl::StatusOr<std::string> {
    return std::string(len, 'x');
  };
  absl::StatusOr<ArchiveMapping> m = MapArchive(volumes, reader);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("signature"));
}

// Nested archive: the RAR5 archive of rar5/store-single-3 is treated as a
// stored member spread over three outer volumes; the inner members' extents
// are composed back onto the outer volumes.
TEST(ArchiveNested, MapsArchiveInsideStoredMember) {
  const LoadedSet inner_set = Load(FindSet("rar5/store-single-3"));
  const std::string& blob = inner_set.contents[0];
  // Outer "volumes": the blob cut in three, each behind a 100-byte header.
  LoadedSet outer;
  ArchiveMember outer_member;
  outer_member.name = "inner.rar";
  outer_member.size = static_cast<int64_t>(blob.size());
  const int64_t cut[] = {0, 700, 1500, static_cast<int64_t>(blob.size())};
  for (int i = 0; i < 3; ++i) {
    std::string vol(100, 'H');
    vol += blob.substr(cut[i], cut[i + 1] - cut[i]);
    outer.volumes.push_back({absl::StrCat("outer", i), static_cast<int64_t>(vol.size())});
    outer.contents.push_back(vol);
    outer_member.extents.push_back({i, 100, cut[i], cut[i + 1] - cut[i]});
  }
  NestedVolume nested = MakeNestedVolume(outer_member, outer.Reader());
  absl::StatusOr<ArchiveMapping> m = MapArchive({nested.volume}, nested.reader);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->rejection, ArchiveRejection::kNone) << m->rejection_detail;
  for (const Json& f : FindSet("rar5/store-single-3")["files"].array) {
    const ArchiveMember* found = nullptr;
    for (const ArchiveMember& am : m->members) found = am.name == f["name"].str ? &am : found;
    ASSERT_NE(found, nullptr) << f["name"].str;
    ArchiveMember composed = *found;
    composed.extents = ComposeExtents(found->extents, outer_member);
    EXPECT_EQ(Sha256Hex(outer.Bytes(composed)), f["sha256"].str) << f["name"].str;
  }
}

// Nested multi-volume set, both layers real: the stored RAR5 volumes of
// rar5/store-vols packed by 7-Zip into a stored 3-volume 7z
// (tests/services/importer/testdata/nested-7z-rar5, README there). The inner
// members map to extents over the inner volumes, which compose onto the
// outer 7z volumes; the bytes match the manifest.
TEST(ArchiveNested, MapsMultiVolumeRar5SetInsideA7zSet) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* ws = std::getenv("TEST_WORKSPACE");
  const std::string dir = absl::StrCat(srcdir ? srcdir : ".", "/", ws ? ws : "nzbmesh",
                                       "/tests/services/importer/testdata/nested-7z-rar5");
  LoadedSet outer;
  for (const char* name : {"nested.7z.001", "nested.7z.002", "nested.7z.003"}) {
    outer.contents.push_back(ReadFileOrEmpty(absl::StrCat(dir, "/", name)));
    ASSERT_FALSE(outer.contents.back().empty()) << name;
    outer.volumes.push_back({name, static_cast<int64_t>(outer.contents.back().size())});
  }
  absl::StatusOr<ArchiveMapping> om = MapArchive(outer.volumes, outer.Reader());
  ASSERT_TRUE(om.ok()) << om.status();
  ASSERT_EQ(om->rejection, ArchiveRejection::kNone) << om->rejection_detail;
  std::map<std::string, ArchiveMember> by_name;
  for (const ArchiveMember& m : om->members) by_name[m.name] = m;
  ASSERT_EQ(by_name.count("readme.nfo"), 1u);
  EXPECT_EQ(Sha256Hex(outer.Bytes(by_name["readme.nfo"])),
            "1b13012bf96b0c48def05b141eb190c3ad5f1534b3e1924cc7f8ebb4d72a5400");
  std::vector<ArchiveMember> inner_volumes;
  for (const char* name : {"rar5-vols.part1.rar", "rar5-vols.part2.rar", "rar5-vols.part3.rar"}) {
    ASSERT_EQ(by_name.count(name), 1u) << name;
    inner_volumes.push_back(by_name[name]);
  }
  // Every inner volume straddles an outer volume boundary but the last.
  EXPECT_EQ(inner_volumes[0].extents.size(), 2u);
  EXPECT_EQ(inner_volumes[1].extents.size(), 2u);

  NestedSet nested = MakeNestedSet(inner_volumes, outer.Reader());
  ASSERT_EQ(nested.volumes.size(), 3u);
  EXPECT_EQ(nested.volumes[1].name, "rar5-vols.part2.rar");
  EXPECT_EQ(nested.volumes[1].size, 102400);
  EXPECT_EQ(nested.reader(3, 0, 1).status().code(), absl::StatusCode::kOutOfRange);
  absl::StatusOr<ArchiveMapping> im = MapArchive(nested.volumes, nested.reader);
  ASSERT_TRUE(im.ok()) << im.status();
  ASSERT_EQ(im->rejection, ArchiveRejection::kNone) << im->rejection_detail;
  EXPECT_EQ(im->format, ArchiveFormat::kRar5);
  int checked = 0;
  for (const Json& f : FindSet("rar5/store-vols")["files"].array) {
    const ArchiveMember* found = nullptr;
    for (const ArchiveMember& am : im->members) found = am.name == f["name"].str ? &am : found;
    ASSERT_NE(found, nullptr) << f["name"].str;
    if (found->is_directory) continue;
    ArchiveMember composed = *found;
    composed.extents = ComposeSetExtents(found->extents, inner_volumes);
    int64_t covered = 0;
    std::set<int> outer_used;
    for (const ArchiveExtent& e : composed.extents) {
      EXPECT_EQ(e.file_offset, covered) << f["name"].str;  // in file order, no gaps
      covered += e.length;
      outer_used.insert(e.volume);
    }
    EXPECT_EQ(covered, found->size) << f["name"].str;
    if (found->size > 150000) {
      EXPECT_GE(outer_used.size(), 2u) << f["name"].str;
    }
    EXPECT_EQ(Sha256Hex(outer.Bytes(composed)), f["sha256"].str) << f["name"].str;
    ++checked;
  }
  EXPECT_GE(checked, 2);
}

}  // namespace
}  // namespace nzbmesh::importer
