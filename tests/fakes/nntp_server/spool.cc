#include "tests/fakes/nntp_server/spool.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace nzbmesh::testing {
namespace {

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

std::string SpoolMessageIdPrefix(const std::string& data, const std::string& name) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a, 64 bit
  for (unsigned char c : data) h = (h ^ c) * 1099511628211ull;
  return absl::StrCat("spool.", absl::Hex(h, absl::kZeroPad16), ".", name);
}

absl::Status PostSpool(FakeNntpServer* server, const std::string& dir, int64_t part_size) {
  std::error_code ec;
  // Sorted: the NZBs list files in name order and the log reads the same
  // on every start.
  std::vector<std::filesystem::directory_entry> entries;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) entries.push_back(entry);
  if (ec) return absl::NotFoundError(absl::StrCat("cannot read --spool ", dir, ": ", ec.message()));
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.path() < b.path(); });
  for (const auto& entry : entries) {
    if (entry.is_directory()) {
      std::vector<FakeNntpServer::PostedFile> files;
      std::vector<std::filesystem::path> paths;
      for (const auto& f : std::filesystem::directory_iterator(entry.path())) {
        if (f.is_regular_file()) paths.push_back(f.path());
      }
      std::sort(paths.begin(), paths.end());
      for (const auto& path : paths) {
        const std::string data = ReadAll(path);
        const std::string name = path.filename().string();
        files.push_back(server->PostFile(name, data, part_size, SpoolMessageIdPrefix(data, name)));
      }
      std::ofstream nzb(entry.path().string() + ".nzb", std::ios::binary);
      nzb << MakeNzb(files);
      std::fprintf(stderr, "posted release %s: %zu files\n", entry.path().string().c_str(), files.size());
      continue;
    }
    if (!entry.is_regular_file() || absl::EndsWith(entry.path().string(), ".nzb")) continue;
    const std::string data = ReadAll(entry.path());
    const std::string name = entry.path().filename().string();
    auto file = server->PostFile(name, data, part_size, SpoolMessageIdPrefix(data, name));
    std::ofstream nzb(entry.path().string() + ".nzb", std::ios::binary);
    nzb << MakeNzb({file});
    std::fprintf(stderr, "posted %s: %zu articles, %s.nzb\n", name.c_str(), file.segments.size(),
                 entry.path().string().c_str());
  }
  return absl::OkStatus();
}

}  // namespace nzbmesh::testing
