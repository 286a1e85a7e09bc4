// WatchFolder: polls a directory for *.nzb files and queues them. A file in
// a sub-directory gets that sub-directory's name as its category.
//
// When a file is taken: once it parses as a whole NZB (ParseNzb), it is
// complete — a file still being written is truncated XML and does not
// parse — so it is submitted and renamed to "<name>.queued" (submitted once;
// a duplicate is logged as such). A file that does not parse is left alone
// while it may still be growing; once it is unchanged (size and mtime) since
// the previous scan and its mtime is at least `settle` old, it is malformed:
// it is renamed to "<name>.failed" and the reason is written to
// "<name>.failed.txt". Submissions the queue refuses (too large, ...) fail
// the same way; a database outage leaves the file for the next scan.
// Writers that pause longer than `settle` mid-file should write to another
// name and rename into the folder (rename is atomic).
//
// Threading: one polling thread (Start); ScanOnce() may be called directly
// (tests) but not concurrently with the thread. Stop() wakes the thread and
// joins it; a scan in progress stops before the next file.
#ifndef NZBMESH_SERVICES_IMPORTER_WATCH_FOLDER_H_
#define NZBMESH_SERVICES_IMPORTER_WATCH_FOLDER_H_

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/importer/analysis/nzb_parser.h"
#include "services/importer/job_queue.h"

namespace nzbmesh::importer {

struct WatchFolderOptions {
  std::string dir;                            // the folder; its sub-folders are categories
  absl::Duration interval = absl::Seconds(5);  // between scans
  // How long a file that does not parse must stay unchanged before it is
  // rejected as malformed (rather than waited for as partially written).
  // 0 = rejected at the second scan that sees it unchanged.
  absl::Duration settle = absl::Seconds(60);
  NzbParseOptions nzb;                         // the limits the import pipeline applies
};

class WatchFolder {
 public:
  // `queue` must outlive the watcher.
  WatchFolder(JobQueue* queue, WatchFolderOptions options);
  ~WatchFolder();  // Stop()
  void Start();
  void Stop();  // idempotent

  struct ScanResult {
    int queued = 0;    // submitted (duplicates included), renamed .queued
    int rejected = 0;  // renamed .failed with a reason
    int waiting = 0;   // not (yet) a whole NZB: left for a later scan
  };
  // One scan.
  ScanResult ScanOnce();
  // Scans finished by the polling thread.
  int64_t scans() const { return scans_.load(); }

 private:
  struct Seen {
    std::uintmax_t size = 0;
    std::filesystem::file_time_type mtime;
  };
  // Renames `path` to .failed and writes the reason beside it; false when
  // the rename failed (the file stays for the next scan).
  bool Reject(const std::filesystem::path& path, const std::string& reason);
  bool Stopping();

  JobQueue* const queue_;
  const WatchFolderOptions options_;
  // Files that did not parse at the last scan, with what they looked like.
  std::map<std::string, Seen> unparsed_;  // only the scanning thread touches it
  std::atomic<int64_t> scans_{0};
  absl::Mutex mu_;  // protects stopping_
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_WATCH_FOLDER_H_
