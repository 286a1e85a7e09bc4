#include "services/importer/job_queue.h"

#include <openssl/sha.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/importer/analysis/filenames.h"
#include "services/importer/analysis/nzb_parser.h"

namespace nzbmesh::importer {

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

JobQueue::JobQueue(Store* store, Options options, ImporterMetrics* metrics)
    : store_(store), options_(options), metrics_(metrics) {}

void JobQueue::AddListener(std::function<void()> on_new_job) {
  absl::MutexLock lock(&mu_);
  listeners_.push_back(std::move(on_new_job));
}

void JobQueue::AddCancelListener(std::function<void(int64_t)> on_cancelled) {
  absl::MutexLock lock(&mu_);
  cancel_listeners_.push_back(std::move(on_cancelled));
}

absl::StatusOr<JobRecord> JobQueue::Cancel(int64_t job_id) {
  absl::StatusOr<JobRecord> j = store_->CancelJob(job_id);
  if (!j.ok()) return j;
  std::vector<std::function<void(int64_t)>> ls;
  {
    absl::MutexLock lock(&mu_);
    ls = cancel_listeners_;
  }
  for (auto& l : ls) l(job_id);
  return j;
}

void JobQueue::Notify() {
  std::vector<std::function<void()>> ls;
  {
    absl::MutexLock lock(&mu_);
    ls = listeners_;
  }
  for (auto& l : ls) l();
}

absl::StatusOr<SubmitResult> JobQueue::Submit(const Submission& s, const std::string& source) {
  if (s.nzb.empty()) return absl::InvalidArgumentError("empty NZB");
  if (options_.max_nzb_bytes > 0 && static_cast<int64_t>(s.nzb.size()) > options_.max_nzb_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("NZB is ", s.nzb.size(), " bytes; the limit is ", options_.max_nzb_bytes));
  }
  // A quick parse only for <meta> defaults: a malformed NZB is still queued
  // and its job fails with BAD_NZB and the parser's reason.
  std::optional<NzbMeta> meta;
  if (s.name.empty() || s.category.empty() || s.password.empty()) {
    auto parsed = ParseNzb(s.nzb);
    if (parsed.ok()) meta = parsed->meta;
  }
  SubmitRecord r;
  r.nzb = s.nzb;
  r.sha256_hex = Sha256Hex(s.nzb);
  r.filename = s.filename;
  r.priority = s.priority;
  r.max_attempts = options_.max_attempts;
  std::string category = s.category;
  if (category.empty() && meta && meta->category) category = *meta->category;
  r.category = category.empty() ? "default" : SanitizeFilename(category);
  std::string name = s.name;
  if (name.empty() && meta && meta->name) name = *meta->name;
  if (name.empty()) {
    name = s.filename;
    if (absl::EndsWithIgnoreCase(name, ".nzb")) name.resize(name.size() - 4);
  }
  if (name.empty()) name = absl::StrCat("nzb-", r.sha256_hex.substr(0, 12));
  r.name = SanitizeFilename(name);
  r.password = s.password;
  if (r.password.empty() && meta && meta->password) r.password = *meta->password;
  auto res = store_->Submit(r);
  if (!res.ok()) return res;
  if (metrics_) {
    metrics_->submitted.Add({{"source", source}, {"duplicate", res->duplicate ? "true" : "false"}}).Increment();
  }
  if (!res->duplicate) Notify();
  return res;
}

absl::StatusOr<JobRecord> JobQueue::Retry(int64_t job_id) {
  auto r = store_->RetryJob(job_id);
  if (r.ok()) Notify();
  return r;
}

}  // namespace nzbmesh::importer
