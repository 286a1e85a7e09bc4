#include "services/importer/watch_folder.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"

namespace nzbmesh::importer {

namespace fs = std::filesystem;

WatchFolder::WatchFolder(JobQueue* queue, WatchFolderOptions options)
    : queue_(queue), options_(std::move(options)) {}

WatchFolder::~WatchFolder() { Stop(); }

void WatchFolder::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] {
    while (true) {
      ScanOnce();
      scans_.fetch_add(1);
      absl::MutexLock lock(&mu_);
      auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stop), options_.interval)) return;
    }
  });
}

void WatchFolder::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool WatchFolder::Stopping() {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

bool WatchFolder::Reject(const fs::path& path, const std::string& reason) {
  std::error_code ec;
  fs::path failed = path;
  failed += ".failed";
  fs::rename(path, failed, ec);
  if (ec) {
    // Left in place: the next scan tries again.
    log::Warning("watch folder: cannot rename a rejected NZB",
                 {{"file", path.filename().string()}, {"reason", reason}, {"error", ec.message()}});
    return false;
  }
  fs::path why = failed;
  why += ".txt";
  std::ofstream(why) << reason << "\n";
  log::Warning("watch folder: NZB rejected", {{"file", path.filename().string()}, {"reason", reason}});
  return true;
}

WatchFolder::ScanResult WatchFolder::ScanOnce() {
  ScanResult out;
  // Collect first: renaming while iterating is unspecified for the iterator.
  std::vector<std::pair<fs::path, int>> candidates;  // path, depth
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(options_.dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it.depth() > 1) {
      it.disable_recursion_pending();
      continue;
    }
    std::error_code fec;
    if (!it->is_regular_file(fec) || !absl::EndsWithIgnoreCase(it->path().filename().string(), ".nzb")) continue;
    candidates.emplace_back(it->path(), it.depth());
  }
  std::map<std::string, Seen> unparsed;
  for (const auto& [path, depth] : candidates) {
    if (Stopping()) break;
    // Size and mtime before reading: a write after this makes the next scan
    // see a change.
    std::error_code size_ec, time_ec;
    const Seen now{fs::file_size(path, size_ec), fs::last_write_time(path, time_ec)};
    if (size_ec || time_ec) continue;  // gone meanwhile
    Submission s;
    s.filename = path.filename().string();
    if (depth == 1) s.category = path.parent_path().filename().string();
    std::ifstream in(path, std::ios::binary);
    std::stringstream buf;
    buf << in.rdbuf();
    if (!in) {
      log::Warning("watch folder: cannot read NZB; will retry", {{"file", s.filename}});
      continue;
    }
    s.nzb = buf.str();
    if (auto parsed = ParseNzb(s.nzb, options_.nzb); !parsed.ok()) {
      auto prev = unparsed_.find(path.string());
      const bool unchanged = prev != unparsed_.end() && prev->second.size == now.size && prev->second.mtime == now.mtime;
      const bool settled = fs::file_time_type::clock::now() - now.mtime >= absl::ToChronoNanoseconds(options_.settle);
      if (unchanged && settled) {
        if (Reject(path, absl::StrCat("not a valid NZB: ", parsed.status().message()))) ++out.rejected;
      } else {
        unparsed[path.string()] = now;  // maybe still being written
        ++out.waiting;
      }
      continue;
    }
    auto r = queue_->Submit(s, "watch");
    if (!r.ok() && absl::IsUnavailable(r.status())) {
      log::Warning("watch folder: cannot queue NZB; will retry", {{"file", s.filename}, {"error", r.status().ToString()}});
      continue;
    }
    if (!r.ok()) {
      if (Reject(path, absl::StrCat("refused by the queue: ", r.status().message()))) ++out.rejected;
      continue;
    }
    fs::path done = path;
    done += ".queued";
    fs::rename(path, done, ec);
    ++out.queued;
    log::Info("watch folder: queued NZB", {{"file", s.filename}, {"job", r->job_id}, {"duplicate", r->duplicate}});
  }
  unparsed_ = std::move(unparsed);
  return out;
}

}  // namespace nzbmesh::importer
