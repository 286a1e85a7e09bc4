#include "services/importer/watch_folder.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "common/log/log.h"

namespace nzbmesh::importer {

namespace fs = std::filesystem;

WatchFolder::WatchFolder(JobQueue* queue, std::string dir, absl::Duration interval)
    : queue_(queue), dir_(std::move(dir)), interval_(interval) {}

WatchFolder::~WatchFolder() { Stop(); }

void WatchFolder::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] {
    while (true) {
      ScanOnce();
      absl::MutexLock lock(&mu_);
      auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stop), interval_)) return;
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

int WatchFolder::ScanOnce() {
  int queued = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir_, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it.depth() > 1) {
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec) || !absl::EndsWithIgnoreCase(it->path().filename().string(), ".nzb")) continue;
    const fs::path path = it->path();
    Submission s;
    s.filename = path.filename().string();
    if (it.depth() == 1) s.category = path.parent_path().filename().string();
    std::ifstream in(path, std::ios::binary);
    std::stringstream buf;
    buf << in.rdbuf();
    s.nzb = buf.str();
    auto r = in ? queue_->Submit(s, "watch") : absl::StatusOr<SubmitResult>(absl::UnavailableError("unreadable"));
    if (!r.ok() && absl::IsUnavailable(r.status())) {
      log::Warning("watch folder: cannot queue NZB; will retry", {{"file", s.filename}, {"error", r.status().ToString()}});
      continue;
    }
    fs::path done = path;
    done += r.ok() ? ".queued" : ".failed";
    fs::rename(path, done, ec);
    if (r.ok()) {
      ++queued;
      log::Info("watch folder: queued NZB", {{"file", s.filename}, {"job", r->job_id}, {"duplicate", r->duplicate}});
    } else {
      log::Warning("watch folder: NZB refused", {{"file", s.filename}, {"error", r.status().ToString()}});
    }
  }
  return queued;
}

}  // namespace nzbmesh::importer
