// A throw-away PostgreSQL database per test, on the server named by
// NZBMESH_PG_URL (passed through by .bazelrc). Dropped (WITH FORCE) when the
// object dies. Tests FAIL, not skip, when NZBMESH_PG_URL is unset.
#ifndef NZBMESH_TESTS_SERVICES_SPEEDTEST_TEST_DATABASE_H_
#define NZBMESH_TESTS_SERVICES_SPEEDTEST_TEST_DATABASE_H_

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>

#include <pqxx/pqxx>

#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace nzbmesh::testing {

class TestDatabase {
 public:
  static constexpr char kHowTo[] =
      "NZBMESH_PG_URL is not set. Start a private server with "
      "`deploy/local/pg.sh start /tmp/nzbmesh-pg PORT` and run the tests with "
      "--test_env=NZBMESH_PG_URL=postgresql://postgres@127.0.0.1:PORT/postgres";

  static absl::StatusOr<std::unique_ptr<TestDatabase>> Create(const std::string& prefix) {
    const char* admin = std::getenv("NZBMESH_PG_URL");
    if (admin == nullptr || *admin == '\0') return absl::FailedPreconditionError(kHowTo);
    static std::atomic<int> counter{0};
    absl::BitGen gen;
    const std::string name = absl::StrCat(prefix, "_", getpid(), "_", counter++, "_", absl::Uniform<uint32_t>(gen));
    try {
      pqxx::connection c(admin);
      pqxx::nontransaction w(c);
      w.exec(absl::StrCat("CREATE DATABASE ", w.quote_name(name)));
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat("cannot create test database on NZBMESH_PG_URL: ", e.what()));
    }
    return std::unique_ptr<TestDatabase>(new TestDatabase(admin, name));
  }

  ~TestDatabase() {
    try {
      pqxx::connection c(admin_);
      pqxx::nontransaction w(c);
      w.exec(absl::StrCat("DROP DATABASE IF EXISTS ", w.quote_name(name_), " WITH (FORCE)"));
    } catch (const std::exception&) {
      // Best effort: a leftover database only costs disk.
    }
  }

  // The admin URL with its database replaced by this one.
  std::string url() const {
    std::string base = admin_, query;
    if (size_t q = base.find('?'); q != std::string::npos) {
      query = base.substr(q);
      base.resize(q);
    }
    const size_t scheme = base.find("://");
    const size_t slash = base.find('/', scheme == std::string::npos ? 0 : scheme + 3);
    if (slash != std::string::npos) base.resize(slash);
    return absl::StrCat(base, "/", name_, query);
  }

 private:
  TestDatabase(std::string admin, std::string name) : admin_(std::move(admin)), name_(std::move(name)) {}
  const std::string admin_, name_;
};

}  // namespace nzbmesh::testing

#endif  // NZBMESH_TESTS_SERVICES_SPEEDTEST_TEST_DATABASE_H_
