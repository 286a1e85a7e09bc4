// Speed-test history. ResultStore is the seam; PgResultStore keeps it in
// PostgreSQL (table speedtest_results, created at start-up if missing).
#ifndef NZBMESH_SERVICES_SPEEDTEST_RESULT_STORE_H_
#define NZBMESH_SERVICES_SPEEDTEST_RESULT_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "nzbmesh/speedtest/v1/speedtest.pb.h"

namespace nzbmesh::speedtest {

class ResultStore {
 public:
  virtual ~ResultStore() = default;
  virtual absl::Status Insert(const v1::SpeedTestResult& result) = 0;
  // Newest first; provider "" = all; limit > 0.
  virtual absl::StatusOr<std::vector<v1::SpeedTestResult>> List(const std::string& provider, int limit) = 0;
};

// One connection, serialised by a mutex (writes are one per run, reads are
// rare). A broken connection is re-opened on the next call. libpqxx
// exceptions never leave this class: broken_connection → UNAVAILABLE,
// in_doubt_error → UNKNOWN (not retried), other SQL errors → INTERNAL.
class PgResultStore : public ResultStore {
 public:
  // Connects and creates the table (serialised by an advisory lock, so
  // replicas starting together do not race).
  static absl::StatusOr<std::unique_ptr<PgResultStore>> Create(const std::string& url);
  ~PgResultStore() override;

  absl::Status Insert(const v1::SpeedTestResult& result) override;
  absl::StatusOr<std::vector<v1::SpeedTestResult>> List(const std::string& provider, int limit) override;

 private:
  explicit PgResultStore(std::string url) : url_(std::move(url)) {}
  absl::Status ConnectLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string url_;  // may hold a password: never logged
  absl::Mutex mu_;         // protects conn_
  std::unique_ptr<pqxx::connection> conn_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nzbmesh::speedtest

#endif  // NZBMESH_SERVICES_SPEEDTEST_RESULT_STORE_H_
