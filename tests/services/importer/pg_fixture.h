// A throwaway PostgreSQL database per test. The server comes from
// NZBMESH_PG_URL (deploy/local/test.sh starts one); each TestDatabase creates
// a uniquely named database in it and drops it (WITH FORCE) when destroyed,
// so tests are isolated and may run in parallel. Without NZBMESH_PG_URL the
// test FAILS (never skips): these tests are the proof of M1-M4.
#ifndef NZBMESH_TESTS_SERVICES_IMPORTER_PG_FIXTURE_H_
#define NZBMESH_TESTS_SERVICES_IMPORTER_PG_FIXTURE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "services/importer/store.h"

namespace nzbmesh::importer::testing {

class TestDatabase {
 public:
  // Creates the database. The error explains how to provide NZBMESH_PG_URL.
  static absl::StatusOr<std::unique_ptr<TestDatabase>> Create();
  ~TestDatabase();

  // URL of the new database.
  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }

  // A Store over the database with migrations applied.
  absl::StatusOr<std::unique_ptr<Store>> OpenStore(Store::Options options = {}) const;

  // Terminates every server backend connected to this database (as if the
  // server dropped them), from an admin connection.
  void TerminateConnections() const;

 private:
  TestDatabase() = default;
  std::string admin_url_;
  std::string url_;
  std::string name_;
};

// Replaces the database name in a postgresql:// URL.
std::string WithDatabase(const std::string& url, const std::string& db);

}  // namespace nzbmesh::importer::testing

#endif  // NZBMESH_TESTS_SERVICES_IMPORTER_PG_FIXTURE_H_
