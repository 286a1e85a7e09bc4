// WatchFolder: polls a directory for *.nzb files and queues them. A file in
// a sub-directory gets that sub-directory's name as its category. Queued
// files are renamed to "<name>.queued" (".failed" when they could not be
// read or were refused), so each is submitted once.
//
// Threading: one polling thread.
#ifndef NZBMESH_SERVICES_IMPORTER_WATCH_FOLDER_H_
#define NZBMESH_SERVICES_IMPORTER_WATCH_FOLDER_H_

#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/importer/job_queue.h"

namespace nzbmesh::importer {

class WatchFolder {
 public:
  // `queue` must outlive the watcher.
  WatchFolder(JobQueue* queue, std::string dir, absl::Duration interval);
  ~WatchFolder();  // Stop()
  void Start();
  void Stop();
  // One scan; returns the number of NZBs queued (duplicates included).
  int ScanOnce();

 private:
  JobQueue* const queue_;
  const std::string dir_;
  const absl::Duration interval_;
  absl::Mutex mu_;  // protects stopping_
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_WATCH_FOLDER_H_
