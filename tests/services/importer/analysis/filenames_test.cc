#include "services/importer/analysis/filenames.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nzbmesh::importer {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(FilenameFromSubject, TakesQuotedNameOrKnownExtensionToken) {
  EXPECT_EQ(FilenameFromSubject("[01/10] - \"Movie.2020.1080p.mkv\" yEnc (1/100)"), "Movie.2020.1080p.mkv");
  EXPECT_EQ(FilenameFromSubject("Release [3/9] \"release.part03.rar\" 50.0 MB yEnc (7/70)"),
            "release.part03.rar");
  EXPECT_EQ(FilenameFromSubject("Show.S01E01.nfo yEnc (1/1)"), "Show.S01E01.nfo");
  EXPECT_EQ(FilenameFromSubject("\"group\" - \"sub.srt\" yEnc"), "sub.srt");
  EXPECT_EQ(FilenameFromSubject("a3f9c2e1b4d5 yEnc (1/5)"), std::nullopt);
}

TEST(PartFromSubject, ReadsLastPartGroup) {
  std::optional<SubjectPart> p = PartFromSubject("[1/10] - \"x.rar\" yEnc (3/57)");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->part, 3);
  EXPECT_EQ(p->total, 57);
  EXPECT_EQ(PartFromSubject("no parts here"), std::nullopt);
}

TEST(LooksObfuscated, FlagsRandomNamesOnly) {
  EXPECT_TRUE(LooksObfuscated("a3f9c2e1b4d5f6a7b8c9d0e1f2a3b4c5"));
  EXPECT_TRUE(LooksObfuscated("a3f9c2e1b4d5f6a7b8c9d0e1f2a3b4c5.mkv"));
  EXPECT_TRUE(LooksObfuscated("xK3jP9qL2mN8vB4cZ7"));
  EXPECT_TRUE(LooksObfuscated("9f8e7d6c5b4a39281706f5e4.part01.rar"));
  EXPECT_FALSE(LooksObfuscated("Movie.Name.2020.1080p.BluRay.x264.mkv"));
  EXPECT_FALSE(LooksObfuscated("release.part01.rar"));
  EXPECT_FALSE(LooksObfuscated("subs.srt"));
}

TEST(SanitizeFilename, RemovesTraversalSeparatorsControlsAndLeadingDots) {
  EXPECT_EQ(SanitizeFilename(".."), "_");
  EXPECT_EQ(SanitizeFilename("."), "_");
  EXPECT_EQ(SanitizeFilename(".hidden.mkv"), "hidden.mkv");
  EXPECT_EQ(SanitizeFilename("../../etc/passwd"), "_.._etc_passwd");
  EXPECT_EQ(SanitizeFilename("a\\b"), "a_b");
  EXPECT_EQ(SanitizeFilename(std::string("a\0b\x01" "c\x7f.txt", 10)), "abc.txt");
  EXPECT_EQ(SanitizeFilename("name.  "), "name");
  EXPECT_EQ(SanitizeFilename("\xD1\x82\xD0\xB5\xD1\x81\xD1\x82.txt"), "\xD1\x82\xD0\xB5\xD1\x81\xD1\x82.txt");
  EXPECT_EQ(SanitizeFilename("bad\xFF\xFEutf8"), "bad__utf8");
  EXPECT_EQ(SanitizeFilename("c1\xC2\x85x"), "c1__x");  // U+0085 (NEL) is a control.
}

TEST(SanitizeFilename, CapsLengthKeepingExtensionAndWholeCharacters) {
  std::string longname;
  for (int i = 0; i < 200; ++i) longname += "\xD1\x82";  // 400 bytes of Cyrillic.
  const std::string out = SanitizeFilename(longname + ".mkv");
  EXPECT_LE(out.size(), kMaxFilenameBytes);
  EXPECT_TRUE(out.size() > 4 && out.substr(out.size() - 4) == ".mkv");
  EXPECT_EQ((out.size() - 4) % 2, 0u);  // No split character.
}

TEST(SanitizePath, NeverClimbsOut) {
  EXPECT_EQ(SanitizePath("../../etc/passwd"), "etc/passwd");
  EXPECT_EQ(SanitizePath("/abs/./x"), "abs/x");
  EXPECT_EQ(SanitizePath("a\\..\\b"), "a/b");
  EXPECT_EQ(SanitizePath("../.."), "_");
  EXPECT_EQ(SanitizePath("dir/.hidden"), "dir/hidden");
}

TEST(UniqueNamer, SuffixesCollisionsCaseInsensitively) {
  UniqueNamer namer;
  EXPECT_EQ(namer.Claim("a.mkv"), "a.mkv");
  EXPECT_EQ(namer.Claim("a.mkv"), "a (2).mkv");
  EXPECT_EQ(namer.Claim("A.MKV"), "A (3).MKV");
  EXPECT_EQ(namer.Claim("noext"), "noext");
  EXPECT_EQ(namer.Claim("noext"), "noext (2)");
}

TEST(ParseVolumeName, RecognisesConventions) {
  VolumeName v = ParseVolumeName("Release.rar");
  EXPECT_EQ(v.kind, VolumeKind::kRar);
  EXPECT_EQ(v.index, 0);
  v = ParseVolumeName("Release.r00");
  EXPECT_EQ(v.kind, VolumeKind::kRarOld);
  EXPECT_EQ(v.set_name, "Release");
  EXPECT_EQ(v.index, 1);
  EXPECT_EQ(ParseVolumeName("Release.r99").index, 100);
  EXPECT_EQ(ParseVolumeName("Release.s00").index, 101);
  v = ParseVolumeName("Release.part010.rar");
  EXPECT_EQ(v.kind, VolumeKind::kRarPart);
  EXPECT_EQ(v.set_name, "Release");
  EXPECT_EQ(v.index, 9);
  v = ParseVolumeName("release.7z.003");
  EXPECT_EQ(v.kind, VolumeKind::kSevenZipSplit);
  EXPECT_EQ(v.set_name, "release");
  EXPECT_EQ(v.index, 2);
  v = ParseVolumeName("movie.mkv.001");
  EXPECT_EQ(v.kind, VolumeKind::kSplit);
  EXPECT_EQ(v.set_name, "movie.mkv");
  v = ParseVolumeName("release.vol03+04.par2");
  EXPECT_EQ(v.kind, VolumeKind::kPar2Volume);
  EXPECT_EQ(v.set_name, "release");
  EXPECT_EQ(v.index, 3);
  EXPECT_EQ(v.par2_blocks, 4);
  EXPECT_EQ(ParseVolumeName("release.par2").kind, VolumeKind::kPar2Index);
  EXPECT_EQ(ParseVolumeName("movie.mkv").kind, VolumeKind::kNone);
}

TEST(GroupVolumeSets, OrdersVolumesAndAttachesPar2) {
  const std::vector<std::string> names = {
      "a.r01", "a.rar", "a.r00", "b.part10.rar", "b.part9.rar", "b.part1.rar", "movie.nfo",
      "c.7z.002", "c.7z.001", "a.par2", "a.vol0+1.par2", "b.par2"};
  std::vector<VolumeSet> sets = GroupVolumeSets(names);
  ASSERT_EQ(sets.size(), 3u);
  EXPECT_EQ(sets[0].set_name, "a");
  EXPECT_THAT(sets[0].volumes, ElementsAre(1, 2, 0));
  EXPECT_THAT(sets[0].par2_files, ElementsAre(9, 10));
  EXPECT_EQ(sets[1].set_name, "b");
  EXPECT_THAT(sets[1].volumes, ElementsAre(5, 4, 3));  // part1, part9, part10 (width mismatch).
  EXPECT_THAT(sets[1].par2_files, ElementsAre(11));
  EXPECT_EQ(sets[2].kind, VolumeKind::kSevenZipSplit);
  EXPECT_THAT(sets[2].volumes, ElementsAre(8, 7));
  EXPECT_THAT(sets[2].par2_files, IsEmpty());
}

TEST(FileFilter, KeepsMediaAndExtrasDropsSamplesAndJunk) {
  FileFilter filter{FileFilterOptions{}};
  EXPECT_TRUE(filter.Allows("Movie.2020.mkv"));
  EXPECT_TRUE(filter.Allows("Subs/English.srt"));
  EXPECT_TRUE(filter.Allows("movie.nfo"));
  EXPECT_FALSE(filter.Allows("movie-sample.mkv"));
  EXPECT_FALSE(filter.Allows("Sample/movie.mkv"));
  EXPECT_FALSE(filter.Allows("setup.exe"));
  EXPECT_FALSE(filter.Allows("release.sfv"));
  EXPECT_TRUE(filter.Allows("resample.mkv"));  // "sample" only as a token.
  FileFilterOptions keep_all;
  keep_all.allowed_extensions.clear();
  keep_all.drop_samples = false;
  EXPECT_TRUE(FileFilter(keep_all).Allows("anything.xyz"));
  EXPECT_TRUE(FileFilter(keep_all).Allows("sample.mkv"));
}

}  // namespace
}  // namespace nzbmesh::importer
