// Every set in tests/testdata/archives (see MANIFEST.md) posted to the fake
// news server and imported: stored sets must map exactly (each inner file's
// bytes, read back through the catalog layout and the broker, have the
// manifest's SHA-256), every other set must fail with UNSUPPORTED_ARCHIVE and
// the right reason in the message. Plus obfuscated volume names without PAR2.
//
// The table below was generated from manifest.json (the expected SHA-256s and
// sizes are the manifest's); regenerate it if the fixtures change.
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "services/importer/analysis/crc32.h"
#include "tests/services/importer/importer_fixture.h"

namespace nzbmesh::importer::testing {
namespace {

using ::testing::HasSubstr;

struct ExpectedFile {
  std::string name;
  int64_t size;
  std::string sha256;
};

struct SetCase {
  std::string id;
  std::string expect;  // "accept", "reject: <why>", "reject (or accept only the plain stored members)"
  std::vector<std::string> volumes;
  std::vector<std::string> extra;  // PAR2 files posted alongside
  std::vector<ExpectedFile> files;  // stored, unencrypted, non-directory members
};

const std::vector<SetCase>& Sets() {
  static const auto* sets = new std::vector<SetCase>{
    {"rar4/store-vols-oldnames", "accept",
     {"rar3-old.rar", "rar3-old.r00", "rar3-old.r01"},
     {},
     {{"vols/bigfile.txt", 205000, "57613b4a0d18b31472c9abe90780dcaf834f4edf48e79008f027a99710cf3632"},
      {"vols/smallfile.txt", 2050, "6805973b24128edda3148235c77a7f7b5a7a9be6272bc882a6e030871b2b18d1"}}},
    {"rar4/store-vols-partN", "accept",
     {"rar3-vols.part1.rar", "rar3-vols.part2.rar", "rar3-vols.part3.rar"},
     {},
     {{"vols/bigfile.txt", 205000, "57613b4a0d18b31472c9abe90780dcaf834f4edf48e79008f027a99710cf3632"},
      {"vols/smallfile.txt", 2050, "6805973b24128edda3148235c77a7f7b5a7a9be6272bc882a6e030871b2b18d1"}}},
    {"rar4/store-vols-10", "accept",
     {"test_rar_multivolume_uncompressed_files.part01.rar", "test_rar_multivolume_uncompressed_files.part02.rar", "test_rar_multivolume_uncompressed_files.part03.rar", "test_rar_multivolume_uncompressed_files.part04.rar", "test_rar_multivolume_uncompressed_files.part05.rar", "test_rar_multivolume_uncompressed_files.part06.rar", "test_rar_multivolume_uncompressed_files.part07.rar", "test_rar_multivolume_uncompressed_files.part08.rar", "test_rar_multivolume_uncompressed_files.part09.rar", "test_rar_multivolume_uncompressed_files.part10.rar"},
     {},
     {{"testdir/LibarchiveAddingTest2.html", 20111, "ee16390e87152d7dec632ae2b37566da6135966e46b5166e6f40a1c827fa61ad"},
      {"testdir/testsubdir/LibarchiveAddingTest2.html", 20111, "ee16390e87152d7dec632ae2b37566da6135966e46b5166e6f40a1c827fa61ad"},
      {"LibarchiveAddingTest2.html", 20111, "ee16390e87152d7dec632ae2b37566da6135966e46b5166e6f40a1c827fa61ad"},
      {"testdir/LibarchiveAddingTest.html", 20111, "ee16390e87152d7dec632ae2b37566da6135966e46b5166e6f40a1c827fa61ad"},
      {"testdir/testsubdir/LibarchiveAddingTest.html", 20111, "ee16390e87152d7dec632ae2b37566da6135966e46b5166e6f40a1c827fa61ad"},
      {"LibarchiveAddingTest.html", 20111, "ee16390e87152d7dec632ae2b37566da6135966e46b5166e6f40a1c827fa61ad"}}},
    {"rar4/store-vols-onefile", "accept",
     {"test_rar_multivolume_single_file.part1.rar", "test_rar_multivolume_single_file.part2.rar", "test_rar_multivolume_single_file.part3.rar"},
     {},
     {{"LibarchiveAddingTest.html", 20111, "ee16390e87152d7dec632ae2b37566da6135966e46b5166e6f40a1c827fa61ad"}}},
    {"rar4/store-single", "accept",
     {"Rar.none.rar"},
     {},
     {{"exe/test.exe", 45056, "8557928804f57ecc340b3bb38b095a3607474ec8deb0076f316fcfe02b562106"},
      {"jpg/test.jpg", 40372, "b251c7501fb0f55dd4a92feabe0a6f5733bc40a02679498155fae9b30138fc53"},
      {"тест.txt", 15498, "4d581d93d369f6e1c9b295ff38d82dabd577f927dfaf0c35818c015c85e322d9"}}},
    {"rar4/compressed-single", "reject: compressed",
     {"Rar4.rar"},
     {},
     {}},
    {"rar4/compressed-vols", "reject: compressed",
     {"Rar4.multi.part01.rar", "Rar4.multi.part02.rar", "Rar4.multi.part03.rar", "Rar4.multi.part04.rar", "Rar4.multi.part05.rar", "Rar4.multi.part06.rar", "Rar4.multi.part07.rar"},
     {},
     {}},
    {"rar4/compressed-vols-rar2-oldnames", "reject: compressed",
     {"Rar2.multi.rar", "Rar2.multi.r00", "Rar2.multi.r01", "Rar2.multi.r02", "Rar2.multi.r03", "Rar2.multi.r04", "Rar2.multi.r05"},
     {},
     {}},
    {"rar4/solid", "reject: solid+compressed",
     {"Rar.solid.rar"},
     {},
     {}},
    {"rar4/encrypted-files", "reject: encrypted",
     {"Rar.encrypted_filesOnly.rar"},
     {},
     {}},
    {"rar4/encrypted-files-mixed", "reject (or accept only the plain stored members)",
     {"test_read_format_rar4_encrypted.rar"},
     {},
     {{"a.txt", 18, "02dc86d8b326a1cd07526f75b66bb7207c43376b21d9ac2c20bfedf510898861"},
      {"c.txt", 18, "0b8a3f12dc4e493b99fb5e0699c96006b51b05c0461c2e048f25d86a50a58eb8"}}},
    {"rar4/encrypted-headers", "reject: encrypted headers",
     {"Rar.encrypted_filesAndHeader.rar"},
     {},
     {}},
    {"rar4/encrypted-headers-2", "reject: encrypted headers",
     {"test_read_format_rar_encryption_header.rar"},
     {},
     {}},
    {"rar4/encrypted-headers-vols", "reject: encrypted headers",
     {"Rar.EncryptedParts.part01.rar", "Rar.EncryptedParts.part02.rar", "Rar.EncryptedParts.part03.rar", "Rar.EncryptedParts.part04.rar", "Rar.EncryptedParts.part05.rar", "Rar.EncryptedParts.part06.rar"},
     {},
     {}},
    {"rar5/store-vols", "accept",
     {"rar5-vols.part1.rar", "rar5-vols.part2.rar", "rar5-vols.part3.rar"},
     {"rar5-vols.par2", "rar5-vols.vol0+1.par2", "rar5-vols.vol1+1.par2"},
     {{"vols/bigfile.txt", 205000, "57613b4a0d18b31472c9abe90780dcaf834f4edf48e79008f027a99710cf3632"},
      {"vols/smallfile.txt", 2050, "6805973b24128edda3148235c77a7f7b5a7a9be6272bc882a6e030871b2b18d1"}}},
    {"rar5/store-vols-2", "accept",
     {"archive.part01.rar", "archive.part02.rar"},
     {},
     {{"payload_a.bin", 200000, "c7a7d73b68d21102bf7d6d9be27b4106497efc8119224bebfbd26b375541bde7"}}},
    {"rar5/store-vols-widthmismatch", "accept",
     {"archive.part01.rar", "archive.part02.rar", "archive.part03.rar", "archive.part04.rar", "archive.part05.rar", "archive.part06.rar", "archive.part07.rar", "archive.part08.rar", "archive.part09.rar", "archive.part010.rar", "archive.part011.rar", "archive.part012.rar", "archive.part013.rar", "archive.part014.rar"},
     {},
     {{"payload_a.bin", 200000, "c7a7d73b68d21102bf7d6d9be27b4106497efc8119224bebfbd26b375541bde7"}}},
    {"rar5/store-vols-37", "accept",
     {"test.part001.rar", "test.part002.rar", "test.part003.rar", "test.part004.rar", "test.part005.rar", "test.part006.rar", "test.part007.rar", "test.part008.rar", "test.part009.rar", "test.part010.rar", "test.part011.rar", "test.part012.rar", "test.part013.rar", "test.part014.rar", "test.part015.rar", "test.part016.rar", "test.part017.rar", "test.part018.rar", "test.part019.rar", "test.part020.rar", "test.part021.rar", "test.part022.rar", "test.part023.rar", "test.part024.rar", "test.part025.rar", "test.part026.rar", "test.part027.rar", "test.part028.rar", "test.part029.rar", "test.part030.rar", "test.part031.rar", "test.part032.rar", "test.part033.rar", "test.part034.rar", "test.part035.rar", "test.part036.rar", "test.part037.rar"},
     {},
     {{"fixtures/test.txt", 30104, "bccdce0750e77f23301b9fd6c230248abca3e8d01aac1d1ef6eb1f8c1675a6c1"}}},
    {"rar5/store-single", "accept",
     {"Rar5.none.rar"},
     {},
     {{"exe/test.exe", 45056, "8557928804f57ecc340b3bb38b095a3607474ec8deb0076f316fcfe02b562106"},
      {"jpg/test.jpg", 40372, "b251c7501fb0f55dd4a92feabe0a6f5733bc40a02679498155fae9b30138fc53"},
      {"тест.txt", 15498, "4d581d93d369f6e1c9b295ff38d82dabd577f927dfaf0c35818c015c85e322d9"}}},
    {"rar5/store-single-2", "accept",
     {"archive.rar"},
     {},
     {{"payload_a.bin", 200000, "c7a7d73b68d21102bf7d6d9be27b4106497efc8119224bebfbd26b375541bde7"}}},
    {"rar5/store-single-3", "accept",
     {"test_read_format_rar5_stored_manyfiles.rar"},
     {},
     {{"make_uue.tcl", 405, "41f7ec23f892c8d4f18f72b01c8748572514475a902d818b92af048c3cb87422"},
      {"cebula.txt", 814, "1e98540238b2b13d1a22f4f4fa8e2eb6c66e24d46115ffdfafd3f3f981b212e7"},
      {"test.bin", 1200, "588870a2dade35c2650fbb7898c9a9c7f21fce7c281198604e8d0c9737f2c375"}}},
    {"rar5/compressed-single", "reject: compressed",
     {"Rar5.rar"},
     {},
     {}},
    {"rar5/compressed-vols", "reject: compressed",
     {"Rar5.multi.part01.rar", "Rar5.multi.part02.rar", "Rar5.multi.part03.rar", "Rar5.multi.part04.rar", "Rar5.multi.part05.rar", "Rar5.multi.part06.rar"},
     {},
     {}},
    {"rar5/solid", "reject: solid+compressed",
     {"Rar5.solid.rar"},
     {},
     {}},
    {"rar5/solid-vols", "reject: solid+compressed",
     {"Rar.multi.solid.part01.rar", "Rar.multi.solid.part02.rar", "Rar.multi.solid.part03.rar", "Rar.multi.solid.part04.rar", "Rar.multi.solid.part05.rar", "Rar.multi.solid.part06.rar"},
     {},
     {}},
    {"rar5/encrypted-files", "reject: encrypted",
     {"Rar5.encrypted_filesOnly.rar"},
     {},
     {}},
    {"rar5/encrypted-files-stored", "reject: encrypted (even the stored member)",
     {"rar5-psw.rar"},
     {},
     {}},
    {"rar5/encrypted-headers", "reject: encrypted headers",
     {"Rar5.encrypted_filesAndHeader.rar"},
     {},
     {}},
    {"rar5/encrypted-headers-2", "reject: encrypted headers",
     {"rar5-hpsw.rar"},
     {},
     {}},
    {"7z/store-vols", "accept",
     {"release.7z.001", "release.7z.002", "release.7z.003", "release.7z.004"},
     {"release.par2", "release.vol0+1.par2", "release.vol1+1.par2"},
     {{"empty.txt", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"extras/readme.nfo", 5320, "4787397c5c1bdfc373ae2fcd0918360276b93dbfc09b4fec1828406d67f0629b"},
      {"subs.srt", 2205, "91265dde6d7ad6049c6f97d162f5e0187f1979c36e34a176ce21e7b1bba8cf94"},
      {"video.bin", 300000, "530577081e49341e8d7ad8b8f5cc915f4e2543b9a86728da815232a6ad77f4c4"}}},
    {"7z/store-vols-2", "accept",
     {"archive.7z.001", "archive.7z.002"},
     {},
     {{"payload_b.bin", 120000, "f0beb460e5dad6999a16449768b7700ab941d8a773c423324946b86c1b603a63"}}},
    {"7z/store-single", "accept",
     {"release-single.7z"},
     {},
     {{"empty.txt", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"extras/readme.nfo", 5320, "4787397c5c1bdfc373ae2fcd0918360276b93dbfc09b4fec1828406d67f0629b"},
      {"subs.srt", 2205, "91265dde6d7ad6049c6f97d162f5e0187f1979c36e34a176ce21e7b1bba8cf94"},
      {"video.bin", 300000, "530577081e49341e8d7ad8b8f5cc915f4e2543b9a86728da815232a6ad77f4c4"}}},
    {"7z/store-single-2", "accept",
     {"7Zip.Copy.7z"},
     {},
     {{"exe/test.exe", 45056, "8557928804f57ecc340b3bb38b095a3607474ec8deb0076f316fcfe02b562106"},
      {"jpg/test.jpg", 40372, "b251c7501fb0f55dd4a92feabe0a6f5733bc40a02679498155fae9b30138fc53"},
      {"тест.txt", 15498, "4d581d93d369f6e1c9b295ff38d82dabd577f927dfaf0c35818c015c85e322d9"}}},
    {"7z/compressed-vols", "reject: compressed",
     {"compressed.7z.001", "compressed.7z.002", "compressed.7z.003"},
     {},
     {}},
    {"7z/compressed-vols-2", "reject: compressed",
     {"Original.7z.001", "Original.7z.002", "Original.7z.003", "Original.7z.004", "Original.7z.005", "Original.7z.006", "Original.7z.007"},
     {},
     {}},
    {"7z/encrypted-data-stored", "reject: encrypted",
     {"stored-encrypted-data.7z"},
     {},
     {}},
    {"7z/encrypted-headers", "reject: encrypted headers",
     {"encrypted-headers.7z"},
     {},
     {}},
  };
  return *sets;
}

std::string ArchivesDir() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* ws = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/", ws ? ws : "nzbmesh", "/tests/testdata/archives");
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class ArchiveImportTest : public ImporterFixture, public ::testing::WithParamInterface<SetCase> {
 protected:
  // Posts the set's volumes (and PAR2 files) in 30,000-byte articles.
  std::string PostSet(const SetCase& c, bool obfuscate) {
    std::vector<FakeNntpServer::PostedFile> posted;
    std::vector<std::string> names = c.volumes;
    if (!obfuscate) names.insert(names.end(), c.extra.begin(), c.extra.end());
    for (size_t i = 0; i < names.size(); ++i) {
      const std::string data = ReadFile(absl::StrCat(ArchivesDir(), "/", c.id, "/", names[i]));
      const std::string name = obfuscate ? Sha256(absl::StrCat(c.id, i)).substr(0, 32) : names[i];
      posted.push_back(nntp_->PostFile(name, data, 30000, absl::StrCat(Sha256(c.id).substr(0, 8), "-", i)));
    }
    return MakeNzb(posted);
  }

  void ExpectMapped(const SetCase& c, const std::string& release) {
    for (const ExpectedFile& f : c.files) {
      SCOPED_TRACE(f.name);
      auto layout = store_->GetFileLayout(absl::StrCat(release, "/", f.name));
      ASSERT_TRUE(layout.ok()) << layout.status();
      EXPECT_EQ(layout->entry.size, f.size);
      EXPECT_EQ(Sha256(ReadThroughBroker(*layout)), f.sha256);
    }
  }
};

TEST_P(ArchiveImportTest, MapsStoredSetsExactlyAndRejectsTheRest) {
  const SetCase& c = GetParam();
  StartInstance(FastWorkers("arch", 1));
  const std::string release = absl::StrReplaceAll(c.id, {{"/", "_"}});
  SubmitResult r = Submit(PostSet(c, false), release + ".nzb", "archives");
  JobRecord j = WaitFinished(r.job_id);
  const std::string path = "/archives/" + release;
  if (c.expect == "accept") {
    ASSERT_EQ(j.state, JobState::kCompleted) << j.message;
    ExpectMapped(c, path);
    return;
  }
  if (absl::StartsWith(c.expect, "reject (or accept")) {
    // Either whole-set rejection or only the plain stored members.
    if (j.state == JobState::kCompleted) {
      ExpectMapped(c, path);
    } else {
      EXPECT_EQ(j.reason, FailureReason::kUnsupportedArchive) << j.message;
    }
    return;
  }
  EXPECT_EQ(j.state, JobState::kFailed);
  EXPECT_EQ(j.reason, FailureReason::kUnsupportedArchive) << j.message;
  EXPECT_EQ(j.attempts, 1);
  const std::string why = absl::StrContains(c.expect, "encrypted") ? "encrypted"
                          : absl::StrContains(c.expect, "solid")   ? "solid"
                                                                   : "compressed";
  EXPECT_THAT(j.message, HasSubstr(why));
  EXPECT_TRUE(store_->ListDirectory("/")->empty()) << "a rejected set left catalog rows";
}

INSTANTIATE_TEST_SUITE_P(Manifest, ArchiveImportTest, ::testing::ValuesIn(Sets()),
                         [](const ::testing::TestParamInfo<SetCase>& info) {
                           std::string n = info.param.id;
                           for (char& ch : n)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

// A minimal 7z writer for tests: every file stored (Copy coder) in its own
// folder, plain (unpacked) header with CRCs. Enough to build nested sets,
// which the fixtures lack.
void Put7zNumber(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    if (v < (uint64_t{1} << (7 * (i + 1)))) {
      out->push_back(static_cast<char>(((0xFF00 >> i) & 0xFF) | (v >> (8 * i))));
      for (int j = 0; j < i; ++j) out->push_back(static_cast<char>((v >> (8 * j)) & 0xFF));
      return;
    }
  }
  out->push_back(static_cast<char>(0xFF));
  for (int j = 0; j < 8; ++j) out->push_back(static_cast<char>((v >> (8 * j)) & 0xFF));
}

void PutLe(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

std::string Make7z(const std::vector<std::pair<std::string, std::string>>& files) {
  std::string packed;
  for (const auto& f : files) packed += f.second;
  std::string h;
  h += '\x01';  // Header
  h += '\x04';  // MainStreamsInfo
  h += '\x06';  // PackInfo
  Put7zNumber(&h, 0);
  Put7zNumber(&h, files.size());
  h += '\x09';  // Size
  for (const auto& f : files) Put7zNumber(&h, f.second.size());
  h += '\x00';
  h += '\x07';  // UnPackInfo
  h += '\x0B';  // Folder
  Put7zNumber(&h, files.size());
  h += '\x00';  // not external
  for (size_t i = 0; i < files.size(); ++i) {
    Put7zNumber(&h, 1);  // one coder
    h += '\x01';         // simple coder, id size 1
    h += '\x00';         // Copy
  }
  h += '\x0C';  // CodersUnPackSize
  for (const auto& f : files) Put7zNumber(&h, f.second.size());
  h += '\x0A';  // CRC
  h += '\x01';  // all defined
  for (const auto& f : files) PutLe(&h, Crc32(f.second), 4);
  h += '\x00';  // end UnPackInfo
  h += '\x00';  // end StreamsInfo
  h += '\x05';  // FilesInfo
  Put7zNumber(&h, files.size());
  std::string names;
  names += '\x00';  // not external
  for (const auto& f : files) {
    for (unsigned char ch : f.first) {
      names.push_back(static_cast<char>(ch));  // ASCII names only
      names.push_back('\x00');
    }
    names.append(2, '\x00');
  }
  h += '\x11';  // Name
  Put7zNumber(&h, names.size());
  h += names;
  h += '\x00';  // end FilesInfo
  h += '\x00';  // end Header
  std::string start;
  PutLe(&start, packed.size(), 8);
  PutLe(&start, h.size(), 8);
  PutLe(&start, Crc32(h), 4);
  std::string out("7z\xBC\xAF\x27\x1C\x00\x04", 8);
  PutLe(&out, Crc32(start), 4);
  out += start;
  out += packed;
  out += h;
  return out;
}

// A minimal RAR4 (RAR 1.5–4.x block format) writer for tests: one volume,
// every file stored (method 0x30), header CRCs as RAR writes them (the low
// 16 bits of the CRC32 of the header from its type byte on). Enough to put
// an archive inside a RAR, which the fixtures lack (`rar` is not packaged
// in Debian, so no real nested RAR set could be made here).
std::string MakeRar4(const std::vector<std::pair<std::string, std::string>>& files) {
  auto block = [](uint8_t type, uint16_t flags, const std::string& body) {
    std::string h;
    h.push_back(static_cast<char>(type));
    PutLe(&h, flags, 2);
    PutLe(&h, 7 + body.size(), 2);
    h += body;
    std::string out;
    PutLe(&out, Crc32(h) & 0xFFFF, 2);
    return out + h;
  };
  std::string out("Rar!\x1a\x07\x00", 7);
  out += block(0x73, 0x0000, std::string(6, '\0'));  // main header: not a volume, not solid
  for (const auto& [name, data] : files) {
    std::string body;
    PutLe(&body, data.size(), 4);        // PACK_SIZE
    PutLe(&body, data.size(), 4);        // UNP_SIZE
    body.push_back('\x02');              // HOST_OS: Windows
    PutLe(&body, Crc32(data), 4);        // FILE_CRC
    PutLe(&body, 0x5A8E3C00, 4);         // FTIME (DOS)
    body.push_back('\x14');              // UNP_VER 2.0
    body.push_back('\x30');              // METHOD: store
    PutLe(&body, name.size(), 2);        // NAME_SIZE
    PutLe(&body, 0x20, 4);               // ATTR: archive
    body += name;
    out += block(0x74, 0x8000, body);    // LHD_LONG_BLOCK: data follows
    out += data;
  }
  out += block(0x7b, 0x4000, "");
  return out;
}

// Imports `outer` posted as one file named `posted` (release `release` in
// "movies") and expects exactly `files` in the release, each read back
// through the broker byte for byte.
class NestedArchiveTest : public ImporterFixture {
 protected:
  void ExpectReleaseOf(const std::string& outer, const std::string& posted, const std::string& release,
                       const std::vector<std::pair<std::string, std::string>>& files);
};

void NestedArchiveTest::ExpectReleaseOf(const std::string& outer, const std::string& posted,
                                        const std::string& release,
                                        const std::vector<std::pair<std::string, std::string>>& files) {
  auto f = nntp_->PostFile(posted, outer, 20000, release);
  SubmitResult r = Submit(MakeNzb({f}), release + ".nzb", "movies");
  JobRecord j = WaitFinished(r.job_id);
  ASSERT_EQ(j.state, JobState::kCompleted) << j.message;
  auto rel = store_->ListDirectory("/movies/" + release);
  ASSERT_TRUE(rel.ok()) << rel.status();
  std::vector<std::string> names, want_names;
  for (const auto& e : *rel) names.push_back(e.name);
  for (const auto& [name, data] : files) want_names.push_back(name);
  EXPECT_THAT(names, ::testing::UnorderedElementsAreArray(want_names));
  for (const auto& [name, data] : files) {
    const std::string path = absl::StrCat("/movies/", release, "/", name);
    auto layout = store_->GetFileLayout(path);
    ASSERT_TRUE(layout.ok()) << path << ": " << layout.status();
    EXPECT_EQ(Sha256(ReadThroughBroker(*layout)), Sha256(data)) << path;
  }
}

// A stored 7z inside a stored 7z: the inner members are cataloged with
// extents over the outer volume, and read back exactly.
TEST_F(NestedArchiveTest, NestedStoredArchiveIsExpandedOneLevelDeep) {
  const std::string movie = RandomBytes(50000, 1);
  const std::string subs = RandomBytes(3000, 2);
  const std::string inner = Make7z({{"movie.mkv", movie}, {"subs.srt", subs}});
  StartInstance(FastWorkers("nest", 1));
  ExpectReleaseOf(Make7z({{"readme.nfo", "hello"}, {"inner.7z", inner}}), "Nested.Release.7z",
                  "Nested.Release", {{"movie.mkv", movie}, {"subs.srt", subs}, {"readme.nfo", "hello"}});
}

// A stored 7z inside a stored RAR4: the same expansion with the outer
// layer's extents taken from RAR file headers.
TEST_F(NestedArchiveTest, NestedStoredArchiveInsideARar4IsExpanded) {
  const std::string movie = RandomBytes(60000, 3);
  const std::string subs = RandomBytes(2000, 4);
  const std::string inner = Make7z({{"movie.mkv", movie}, {"subs.srt", subs}});
  StartInstance(FastWorkers("nest-rar", 1));
  ExpectReleaseOf(MakeRar4({{"release.nfo", "about"}, {"inner.7z", inner}}), "Nested.Rar.Release.rar",
                  "Nested.Rar.Release", {{"movie.mkv", movie}, {"subs.srt", subs}, {"release.nfo", "about"}});
}

// A stored multi-volume RAR5 set inside a stored 3-volume 7z set, both made
// by the real tools (tests/services/importer/testdata/nested-7z-rar5): the
// RAR5 members are cataloged with extents over the outer 7z volumes (each
// inner volume itself spans outer volumes), the inner volumes are not
// catalog entries, and the bytes streamed from the layout match the
// manifest's SHA-256.
TEST_F(ImporterFixture, NestedMultiVolumeRar5InsideA7zSetMapsAcrossBothLayers) {
  const std::string dir = absl::StrCat(std::getenv("TEST_SRCDIR"), "/", std::getenv("TEST_WORKSPACE"),
                                       "/tests/services/importer/testdata/nested-7z-rar5");
  std::vector<FakeNntpServer::PostedFile> posted;
  for (int i = 1; i <= 3; ++i) {
    const std::string name = absl::StrCat("nested.7z.00", i);
    const std::string data = ReadFile(absl::StrCat(dir, "/", name));
    ASSERT_FALSE(data.empty()) << name;
    posted.push_back(nntp_->PostFile(name, data, 30000, absl::StrCat("nest7r5-", i)));
  }
  StartInstance(FastWorkers("nestmv", 1));
  SubmitResult r = Submit(MakeNzb(posted), "Nested.Multi.nzb", "movies");
  JobRecord j = WaitFinished(r.job_id);
  ASSERT_EQ(j.state, JobState::kCompleted) << j.message;
  auto rel = store_->ListDirectory("/movies/Nested.Multi");
  ASSERT_TRUE(rel.ok()) << rel.status();
  std::vector<std::string> names;
  for (const auto& e : *rel) names.push_back(e.name);
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("vols", "readme.nfo"));
  std::map<std::string, std::string> want;
  for (const SetCase& c : Sets()) {
    if (c.id != "rar5/store-vols") continue;
    for (const ExpectedFile& f : c.files) want[f.name] = f.sha256;
  }
  ASSERT_EQ(want.count("vols/bigfile.txt"), 1u);
  ASSERT_EQ(want.count("vols/smallfile.txt"), 1u);
  for (const auto& [name, sha] : want) {
    auto layout = store_->GetFileLayout("/movies/Nested.Multi/" + name);
    ASSERT_TRUE(layout.ok()) << name << ": " << layout.status();
    EXPECT_TRUE(layout->segments.empty()) << name;
    for (const auto& v : layout->volumes) EXPECT_THAT(v.name, ::testing::StartsWith("nested.7z.")) << name;
    EXPECT_EQ(Sha256(ReadThroughBroker(*layout)), sha) << name;
  }
  auto big = store_->GetFileLayout("/movies/Nested.Multi/vols/bigfile.txt");
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->entry.size, 205000);
  EXPECT_EQ(big->volumes.size(), 3u);  // 205000 bytes over 3 inner volumes over 3 outer volumes
  auto nfo = store_->GetFileLayout("/movies/Nested.Multi/readme.nfo");
  ASSERT_TRUE(nfo.ok()) << nfo.status();
  EXPECT_EQ(Sha256(ReadThroughBroker(*nfo)), "1b13012bf96b0c48def05b141eb190c3ad5f1534b3e1924cc7f8ebb4d72a5400");
}

// The other way round: the 4 split volumes of 7z/store-vols (real 7-Zip)
// stored in a 7z written here and cut into two outer volumes (7z volumes are
// plain byte splits). The inner .7z.00N set maps across both layers.
TEST_F(ImporterFixture, NestedSplit7zSetInsideA7zSetMapsAcrossBothLayers) {
  std::vector<std::pair<std::string, std::string>> files = {{"info.txt", "wrapped by a poster\n"}};
  for (int i = 1; i <= 4; ++i) {
    const std::string name = absl::StrCat("release.7z.00", i);
    files.emplace_back(name, ReadFile(absl::StrCat(ArchivesDir(), "/7z/store-vols/", name)));
    ASSERT_FALSE(files.back().second.empty()) << name;
  }
  const std::string outer = Make7z(files);
  const size_t cut = outer.size() / 2;
  std::vector<FakeNntpServer::PostedFile> posted = {
      nntp_->PostFile("Wrapped.7z.001", outer.substr(0, cut), 30000, "wrap7-1"),
      nntp_->PostFile("Wrapped.7z.002", outer.substr(cut), 30000, "wrap7-2")};
  StartInstance(FastWorkers("wrap7", 1));
  SubmitResult r = Submit(MakeNzb(posted), "Wrapped.nzb", "movies");
  JobRecord j = WaitFinished(r.job_id);
  ASSERT_EQ(j.state, JobState::kCompleted) << j.message;
  auto rel = store_->ListDirectory("/movies/Wrapped");
  ASSERT_TRUE(rel.ok()) << rel.status();
  std::vector<std::string> names;
  for (const auto& e : *rel) names.push_back(e.name);
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("extras", "empty.txt", "subs.srt", "video.bin", "info.txt"));
  for (const SetCase& c : Sets()) {
    if (c.id != "7z/store-vols") continue;
    for (const ExpectedFile& f : c.files) {
      auto layout = store_->GetFileLayout("/movies/Wrapped/" + f.name);
      ASSERT_TRUE(layout.ok()) << f.name << ": " << layout.status();
      EXPECT_EQ(layout->entry.size, f.size) << f.name;
      EXPECT_EQ(Sha256(ReadThroughBroker(*layout)), f.sha256) << f.name;
    }
  }
  auto video = store_->GetFileLayout("/movies/Wrapped/video.bin");
  ASSERT_TRUE(video.ok());
  EXPECT_EQ(video->volumes.size(), 2u);  // both outer volumes
}

// An inner set with a volume missing does not map: its volumes stay plain
// stored members (still streamable as files) and the job completes.
TEST_F(ImporterFixture, NestedSetWithAMissingVolumeKeepsItsVolumesAsFiles) {
  std::vector<std::pair<std::string, std::string>> files;
  for (const char* name : {"rar5-vols.part1.rar", "rar5-vols.part3.rar"}) {
    files.emplace_back(name, ReadFile(absl::StrCat(ArchivesDir(), "/rar5/store-vols/", name)));
  }
  const std::string outer = Make7z(files);
  StartInstance(FastWorkers("gap", 1));
  SubmitResult r = Submit(MakeNzb({nntp_->PostFile("Gap.7z", outer, 30000, "gap7")}), "Gap.nzb", "movies");
  JobRecord j = WaitFinished(r.job_id);
  ASSERT_EQ(j.state, JobState::kCompleted) << j.message;
  auto rel = store_->ListDirectory("/movies/Gap");
  ASSERT_TRUE(rel.ok()) << rel.status();
  std::vector<std::string> names;
  for (const auto& e : *rel) names.push_back(e.name);
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("rar5-vols.part1.rar", "rar5-vols.part3.rar"));
  auto p3 = store_->GetFileLayout("/movies/Gap/rar5-vols.part3.rar");
  ASSERT_TRUE(p3.ok()) << p3.status();
  EXPECT_EQ(Sha256(ReadThroughBroker(*p3)), Sha256(files[1].second));
}

// Volume names that say nothing and no PAR2: RAR sets are found by their
// signature and ordered by the volume numbers in their headers.
TEST_F(ImporterFixture, ObfuscatedRarVolumesWithoutPar2AreMappedBySignature) {
  for (const SetCase& c : Sets()) {
    if (c.id != "rar5/store-vols-2" && c.id != "rar4/store-vols-partN") continue;
    SCOPED_TRACE(c.id);
    StartInstance(FastWorkers(absl::StrCat("ob", c.id.size()), 1));
    std::vector<FakeNntpServer::PostedFile> posted;
    // Post in reverse order so document order does not give the answer.
    for (int i = static_cast<int>(c.volumes.size()) - 1; i >= 0; --i) {
      const std::string data = ReadFile(absl::StrCat(ArchivesDir(), "/", c.id, "/", c.volumes[i]));
      posted.push_back(nntp_->PostFile(Sha256(absl::StrCat("x", c.id, i)).substr(0, 24), data, 30000,
                                       absl::StrCat("ob", Sha256(c.id).substr(0, 6), "-", i)));
    }
    const std::string release = absl::StrCat("Obf", c.id.size());
    SubmitResult r = Submit(MakeNzb(posted), release + ".nzb", "obf");
    JobRecord j = WaitFinished(r.job_id);
    ASSERT_EQ(j.state, JobState::kCompleted) << j.message;
    for (const ExpectedFile& f : c.files) {
      auto layout = store_->GetFileLayout(absl::StrCat("/obf/", release, "/", f.name));
      ASSERT_TRUE(layout.ok()) << f.name << ": " << layout.status();
      EXPECT_EQ(Sha256(ReadThroughBroker(*layout)), f.sha256) << f.name;
    }
    instances_.clear();
  }
}

}  // namespace
}  // namespace nzbmesh::importer::testing
