// In-memory CatalogClient and ImporterClient for frontend tests. Callbacks run
// inline. Files are registered with their layout; directories are implied by
// the paths and can be added explicitly.
#ifndef NZBMESH_TESTS_SERVICES_FRONTEND_FAKE_CATALOG_H_
#define NZBMESH_TESTS_SERVICES_FRONTEND_FAKE_CATALOG_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "services/frontend/catalog_client.h"

namespace nzbmesh::frontend::testing {

class FakeCatalog : public CatalogClient {
 public:
  void AddFile(const FileLayout& layout) {
    absl::MutexLock lock(&mu_);
    const std::string& path = layout.entry().path();
    entries_[path] = layout.entry();
    layouts_[path] = std::make_shared<const FileLayout>(layout);
    AddParentsLocked(path);
  }
  void AddDirectory(const std::string& path) {
    absl::MutexLock lock(&mu_);
    Entry e;
    e.set_path(path);
    e.set_name(path.substr(path.rfind('/') + 1));
    e.set_directory(true);
    e.set_mtime_unix(1700000000);
    entries_[path] = e;
    AddParentsLocked(path);
  }
  void SetError(absl::Status s) {
    absl::MutexLock lock(&mu_);
    error_ = std::move(s);
  }
  int layout_calls() const {
    absl::MutexLock lock(&mu_);
    return layout_calls_;
  }
  int stat_calls() const {
    absl::MutexLock lock(&mu_);
    return stat_calls_;
  }
  bool Exists(const std::string& path) const {
    absl::MutexLock lock(&mu_);
    return entries_.contains(path);
  }

  void Stat(const std::string& path, EntryCallback done) override {
    absl::StatusOr<Entry> r = absl::NotFoundError(path);
    {
      absl::MutexLock lock(&mu_);
      ++stat_calls_;
      if (!error_.ok()) {
        r = error_;
      } else if (auto it = entries_.find(path); it != entries_.end()) {
        r = it->second;
      }
    }
    done(std::move(r));
  }
  void ListDirectory(const std::string& path, ListCallback done) override {
    std::vector<Entry> out;
    {
      absl::MutexLock lock(&mu_);
      std::string prefix = path == "/" ? "/" : path + "/";
      for (const auto& [p, e] : entries_) {
        if (absl::StartsWith(p, prefix) && p.size() > prefix.size() &&
            p.find('/', prefix.size()) == std::string::npos) {
          out.push_back(e);
        }
      }
    }
    done(std::move(out));
  }
  void GetFileLayout(const std::string& path, LayoutCallback done) override {
    absl::StatusOr<std::shared_ptr<const FileLayout>> r = absl::NotFoundError(path);
    {
      absl::MutexLock lock(&mu_);
      ++layout_calls_;
      if (auto it = layouts_.find(path); it != layouts_.end()) r = it->second;
    }
    done(std::move(r));
  }
  void DeletePath(const std::string& path, DeleteCallback done) override {
    int64_t n = 0;
    {
      absl::MutexLock lock(&mu_);
      for (auto it = entries_.begin(); it != entries_.end();) {
        if (it->first == path || absl::StartsWith(it->first, path + "/")) {
          if (!it->second.directory()) ++n;
          layouts_.erase(it->first);
          it = entries_.erase(it);
        } else {
          ++it;
        }
      }
    }
    if (n == 0) {
      done(absl::NotFoundError(path));
    } else {
      done(n);
    }
  }

 private:
  void AddParentsLocked(const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (size_t i = path.rfind('/'); i != std::string::npos && i > 0; i = path.rfind('/', i - 1)) {
      std::string dir = path.substr(0, i);
      if (entries_.contains(dir)) continue;
      Entry e;
      e.set_path(dir);
      e.set_name(dir.substr(dir.rfind('/') + 1));
      e.set_directory(true);
      e.set_mtime_unix(1700000000);
      entries_[dir] = e;
    }
  }

  mutable absl::Mutex mu_;  // protects everything below
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<const FileLayout>> layouts_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  int layout_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int stat_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

class FakeImporter : public ImporterClient {
 public:
  void SubmitNzb(const importer::v1::SubmitNzbRequest& request, SubmitCallback done) override {
    importer::v1::SubmitNzbResponse r;
    {
      absl::MutexLock lock(&mu_);
      submitted_.push_back(request);
      importer::v1::Job j;
      j.set_job_id(static_cast<int64_t>(jobs_.size()) + 41);
      j.set_state(importer::v1::QUEUED);
      j.set_name(request.name().empty() ? request.filename() : request.name());
      j.set_category(request.category());
      jobs_.push_back(j);
      r.set_job_id(j.job_id());
    }
    done(r);
  }
  void ListJobs(importer::v1::JobState state, int limit, JobsCallback done) override {
    std::vector<importer::v1::Job> out;
    {
      absl::MutexLock lock(&mu_);
      out = jobs_;
    }
    done(std::move(out));
  }
  void CancelJob(int64_t job_id, JobCallback done) override {
    absl::MutexLock lock(&mu_);
    for (auto& j : jobs_) {
      if (j.job_id() == job_id) {
        j.set_state(importer::v1::CANCELLED);
        importer::v1::Job copy = j;
        mu_.Unlock();
        done(copy);
        mu_.Lock();
        return;
      }
    }
    mu_.Unlock();
    done(absl::NotFoundError("no such job"));
    mu_.Lock();
  }
  void AddJob(importer::v1::Job j) {
    absl::MutexLock lock(&mu_);
    jobs_.push_back(std::move(j));
  }
  std::vector<importer::v1::SubmitNzbRequest> submitted() const {
    absl::MutexLock lock(&mu_);
    return submitted_;
  }

 private:
  mutable absl::Mutex mu_;  // protects everything below
  std::vector<importer::v1::SubmitNzbRequest> submitted_ ABSL_GUARDED_BY(mu_);
  std::vector<importer::v1::Job> jobs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nzbmesh::frontend::testing

#endif  // NZBMESH_TESTS_SERVICES_FRONTEND_FAKE_CATALOG_H_
