#include "tests/services/importer/pg_fixture.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <random>

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace nzbmesh::importer::testing {

std::string WithDatabase(const std::string& url, const std::string& db) {
  const size_t scheme = url.find("://");
  const size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  const size_t slash = url.find('/', start);
  const size_t query = url.find('?', start);
  std::string base = url.substr(0, std::min(slash, query));
  std::string rest = query == std::string::npos ? "" : url.substr(query);
  return absl::StrCat(base, "/", db, rest);
}

absl::StatusOr<std::unique_ptr<TestDatabase>> TestDatabase::Create() {
  const char* env = std::getenv("NZBMESH_PG_URL");
  if (env == nullptr || *env == '\0') {
    return absl::FailedPreconditionError(
        "NZBMESH_PG_URL is not set: run the tests through deploy/local/test.sh, or start a server with "
        "`deploy/local/pg.sh start DIR PORT` and pass --test_env=NZBMESH_PG_URL=postgresql://postgres@127.0.0.1:PORT/"
        "postgres");
  }
  static std::atomic<int> counter{0};
  std::random_device rd;
  auto db = std::unique_ptr<TestDatabase>(new TestDatabase());
  db->admin_url_ = env;
  db->name_ = absl::StrCat("nzbmesh_test_", getpid(), "_", counter.fetch_add(1), "_", rd() % 1000000);
  db->url_ = WithDatabase(env, db->name_);
  try {
    pqxx::connection c(db->admin_url_);
    pqxx::nontransaction n(c);
    n.exec(absl::StrCat("CREATE DATABASE ", db->name_));
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot create test database at NZBMESH_PG_URL: ", e.what()));
  }
  return db;
}

TestDatabase::~TestDatabase() {
  try {
    pqxx::connection c(admin_url_);
    pqxx::nontransaction n(c);
    n.exec(absl::StrCat("DROP DATABASE IF EXISTS ", name_, " WITH (FORCE)"));
  } catch (const std::exception&) {
    // Best effort: a leftover database is harmless (unique name).
  }
}

absl::StatusOr<std::unique_ptr<Store>> TestDatabase::OpenStore(Store::Options options) const {
  options.url = url_;
  return Store::Create(options);
}

void TestDatabase::TerminateConnections() const {
  pqxx::connection c(admin_url_);
  pqxx::nontransaction n(c);
  n.exec_params("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> "
                "pg_backend_pid()",
                name_);
}

}  // namespace nzbmesh::importer::testing
