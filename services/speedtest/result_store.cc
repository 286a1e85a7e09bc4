#include "services/speedtest/result_store.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"

namespace nzbmesh::speedtest {
namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS speedtest_results (
  id BIGSERIAL PRIMARY KEY,
  provider TEXT NOT NULL,
  started_unix_ms BIGINT NOT NULL,
  duration_seconds DOUBLE PRECISION NOT NULL,
  megabytes_per_second DOUBLE PRECISION NOT NULL,
  ttfb_median_seconds DOUBLE PRECISION NOT NULL,
  ttfb_p95_seconds DOUBLE PRECISION NOT NULL,
  bytes BIGINT NOT NULL,
  articles BIGINT NOT NULL,
  errors BIGINT NOT NULL,
  missing BIGINT NOT NULL,
  connections_used INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS speedtest_results_provider_started
  ON speedtest_results (provider, started_unix_ms DESC);
)sql";

// Arbitrary constant: the advisory lock that serialises schema creation.
constexpr int64_t kSchemaLock = 0x5350454544;  // "SPEED"

template <typename F>
absl::Status Guard(const char* what, F&& f) {
  try {
    f();
    return absl::OkStatus();
  } catch (const pqxx::broken_connection& e) {
    return absl::UnavailableError(absl::StrCat("speed-test history: ", what, ": database unreachable: ", e.what()));
  } catch (const pqxx::in_doubt_error& e) {
    return absl::UnknownError(absl::StrCat("speed-test history: ", what, ": commit outcome unknown: ", e.what()));
  } catch (const pqxx::unique_violation& e) {
    return absl::AlreadyExistsError(absl::StrCat("speed-test history: ", what, ": ", e.what()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("speed-test history: ", what, ": ", e.what()));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<PgResultStore>> PgResultStore::Create(const std::string& url) {
  if (url.empty()) return absl::InvalidArgumentError("speed-test history: empty database URL");
  std::unique_ptr<PgResultStore> store(new PgResultStore(url));
  absl::MutexLock lock(&store->mu_);
  absl::Status s = store->ConnectLocked();
  if (!s.ok()) return s;
  pqxx::connection& conn = *store->conn_;
  s = Guard("creating the schema", [&] {
    pqxx::work w(conn);
    w.exec_params("SELECT pg_advisory_xact_lock($1)", kSchemaLock);
    w.exec(kSchema);
    w.commit();
  });
  if (!s.ok()) return s;
  return store;
}

PgResultStore::~PgResultStore() = default;

absl::Status PgResultStore::ConnectLocked() {
  if (conn_ && conn_->is_open()) return absl::OkStatus();
  conn_.reset();
  std::unique_ptr<pqxx::connection> fresh;
  absl::Status s = Guard("connecting", [&] { fresh = std::make_unique<pqxx::connection>(url_); });
  if (s.ok()) conn_ = std::move(fresh);
  return s;
}

absl::Status PgResultStore::Insert(const v1::SpeedTestResult& r) {
  absl::MutexLock lock(&mu_);
  absl::Status s = ConnectLocked();
  if (!s.ok()) return s;
  pqxx::connection& conn = *conn_;
  s = Guard("recording a result", [&] {
    pqxx::work w(conn);
    w.exec_params(
        "INSERT INTO speedtest_results (provider, started_unix_ms, duration_seconds, megabytes_per_second, "
        "ttfb_median_seconds, ttfb_p95_seconds, bytes, articles, errors, missing, connections_used) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        r.provider(), r.started_unix_ms(), r.duration_seconds(), r.megabytes_per_second(), r.ttfb_median_seconds(),
        r.ttfb_p95_seconds(), r.bytes(), r.articles(), r.errors(), r.missing(), r.connections_used());
    w.commit();
  });
  if (absl::IsUnavailable(s)) conn_.reset();
  return s;
}

absl::StatusOr<std::vector<v1::SpeedTestResult>> PgResultStore::List(const std::string& provider, int limit) {
  absl::MutexLock lock(&mu_);
  absl::Status s = ConnectLocked();
  if (!s.ok()) return s;
  std::vector<v1::SpeedTestResult> out;
  pqxx::connection& conn = *conn_;
  s = Guard("listing results", [&] {
    pqxx::read_transaction t(conn);
    pqxx::result rows = t.exec_params(
        "SELECT provider, started_unix_ms, duration_seconds, megabytes_per_second, ttfb_median_seconds, "
        "ttfb_p95_seconds, bytes, articles, errors, missing, connections_used FROM speedtest_results "
        "WHERE ($1 = '' OR provider = $1) ORDER BY started_unix_ms DESC, id DESC LIMIT $2",
        provider, limit);
    for (const auto& row : rows) {
      v1::SpeedTestResult r;
      r.set_provider(row[0].as<std::string>());
      r.set_started_unix_ms(row[1].as<int64_t>());
      r.set_duration_seconds(row[2].as<double>());
      r.set_megabytes_per_second(row[3].as<double>());
      r.set_ttfb_median_seconds(row[4].as<double>());
      r.set_ttfb_p95_seconds(row[5].as<double>());
      r.set_bytes(row[6].as<int64_t>());
      r.set_articles(row[7].as<int64_t>());
      r.set_errors(row[8].as<int64_t>());
      r.set_missing(row[9].as<int64_t>());
      r.set_connections_used(row[10].as<int32_t>());
      out.push_back(std::move(r));
    }
  });
  if (absl::IsUnavailable(s)) conn_.reset();
  if (!s.ok()) return s;
  return out;
}

}  // namespace nzbmesh::speedtest
