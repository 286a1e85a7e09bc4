#include "services/importer/store.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <utility>

#include <pqxx/pqxx>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"

namespace nzbmesh::importer {
namespace {

// Key of the session-level advisory lock that serialises migrations
// ("nzbmesh" in ASCII, truncated to fit a bigint).
constexpr int64_t kMigrationLockKey = 0x6e7a626d657368;

struct Migration {
  int version;
  const char* description;
  const char* sql;
};

// Append-only: never edit a released migration; add a new one.
const Migration kMigrations[] = {
    {1, "queue: nzbs and jobs", R"sql(
CREATE TABLE nzbs (
  id         bigserial PRIMARY KEY,
  sha256     text NOT NULL UNIQUE,
  bytes      bytea NOT NULL,
  size       bigint NOT NULL,
  filename   text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE jobs (
  id              bigserial PRIMARY KEY,
  nzb_id          bigint NOT NULL UNIQUE REFERENCES nzbs(id) ON DELETE CASCADE,
  state           text NOT NULL CHECK (state IN ('queued','running','completed','failed','cancelled')),
  priority        integer NOT NULL DEFAULT 0,
  attempts        integer NOT NULL DEFAULT 0,
  max_attempts    integer NOT NULL DEFAULT 3 CHECK (max_attempts > 0),
  reason          text NOT NULL DEFAULT '',
  message         text NOT NULL DEFAULT '',
  category        text NOT NULL,
  name            text NOT NULL,
  password        text NOT NULL DEFAULT '',
  owner           text NOT NULL DEFAULT '',
  progress        double precision NOT NULL DEFAULT 0,
  catalog_path    text NOT NULL DEFAULT '',
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  started_at      timestamptz,
  finished_at     timestamptz,
  heartbeat_at    timestamptz,
  expires_at      timestamptz,
  next_attempt_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_queue ON jobs (priority DESC, id) WHERE state = 'queued';
CREATE INDEX jobs_running ON jobs (expires_at) WHERE state = 'running';
CREATE INDEX jobs_state ON jobs (state, id DESC);
)sql"},
    {2, "catalog: entries, layouts, volumes", R"sql(
CREATE TABLE entries (
  id                bigserial PRIMARY KEY,
  parent_id         bigint REFERENCES entries(id) ON DELETE CASCADE,
  path              text NOT NULL UNIQUE,
  name              text NOT NULL,
  is_dir            boolean NOT NULL,
  size              bigint NOT NULL DEFAULT 0,
  mtime             timestamptz NOT NULL DEFAULT now(),
  job_id            bigint REFERENCES jobs(id) ON DELETE SET NULL,
  health            smallint NOT NULL DEFAULT 0,
  health_checked_at timestamptz,
  UNIQUE (parent_id, name)
);
INSERT INTO entries (parent_id, path, name, is_dir) VALUES (NULL, '/', '', true);
CREATE INDEX entries_job ON entries (job_id);
CREATE INDEX entries_health ON entries (health_checked_at NULLS FIRST, id) WHERE NOT is_dir;
-- One row per archive volume of a release; segments as "<id> <size>\n".
CREATE TABLE volumes (
  id            bigserial PRIMARY KEY,
  release_id    bigint NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
  idx           integer NOT NULL,
  name          text NOT NULL,
  size          bigint NOT NULL,
  segment_count integer NOT NULL,
  segments      text NOT NULL,
  UNIQUE (release_id, idx)
);
-- One row per file: segments ("<id> <size>\n") of a plain file, or extents
-- ("<volume id> <volume offset> <file offset> <length>\n") of an archive member.
CREATE TABLE layouts (
  file_id       bigint PRIMARY KEY REFERENCES entries(id) ON DELETE CASCADE,
  segment_count integer NOT NULL,
  segments      text NOT NULL DEFAULT '',
  extents       text NOT NULL DEFAULT ''
);
)sql"},
    {3, "health records", R"sql(
CREATE TABLE health_checks (
  id         bigserial PRIMARY KEY,
  file_id    bigint NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
  checked_at timestamptz NOT NULL DEFAULT now(),
  result     smallint NOT NULL,
  checked    integer NOT NULL,
  missing    integer NOT NULL,
  detail     text NOT NULL DEFAULT ''
);
CREATE INDEX health_checks_file ON health_checks (file_id, checked_at DESC);
)sql"},
    {4, "queue: an NZB may have several jobs (re-import after its release was deleted)", R"sql(
ALTER TABLE jobs DROP CONSTRAINT jobs_nzb_id_key;
CREATE INDEX jobs_nzb ON jobs (nzb_id, id DESC);
)sql"},
};

constexpr char kJobColumns[] =
    "j.id, j.state, j.name, j.category, j.priority, j.attempts, j.max_attempts, j.reason, j.message, "
    "n.sha256, n.filename, j.password, (extract(epoch from j.created_at) * 1000)::bigint, "
    "(extract(epoch from j.updated_at) * 1000)::bigint, j.owner, j.progress, j.catalog_path, "
    "(extract(epoch from j.next_attempt_at) * 1000)::bigint";
constexpr int kJobColumnCount = 18;

constexpr char kEntryColumns[] =
    "e.id, e.path, e.name, e.is_dir, e.size, (extract(epoch from e.mtime) * 1000)::bigint, e.health";

std::optional<JobState> ParseJobState(absl::string_view s) {
  for (JobState st : {JobState::kQueued, JobState::kRunning, JobState::kCompleted, JobState::kFailed,
                      JobState::kCancelled}) {
    if (s == JobStateName(st)) return st;
  }
  return std::nullopt;
}

FailureReason ParseReason(absl::string_view s) {
  for (FailureReason r : {FailureReason::kMissingArticles, FailureReason::kUnsupportedArchive, FailureReason::kBadNzb,
                          FailureReason::kProviderUnavailable, FailureReason::kInternal}) {
    if (s == FailureReasonName(r)) return r;
  }
  return FailureReason::kNone;
}

absl::Time FromMs(const pqxx::field& f) { return f.is_null() ? absl::UnixEpoch() : absl::FromUnixMillis(f.as<int64_t>()); }

JobRecord JobFromRow(const pqxx::row& r, int base = 0) {
  JobRecord j;
  j.id = r[base + 0].as<int64_t>();
  j.state = ParseJobState(r[base + 1].c_str()).value_or(JobState::kQueued);
  j.name = r[base + 2].c_str();
  j.category = r[base + 3].c_str();
  j.priority = r[base + 4].as<int>();
  j.attempts = r[base + 5].as<int>();
  j.max_attempts = r[base + 6].as<int>();
  j.reason = ParseReason(r[base + 7].c_str());
  j.message = r[base + 8].c_str();
  j.nzb_sha256 = r[base + 9].c_str();
  j.filename = r[base + 10].c_str();
  j.password = r[base + 11].c_str();
  j.created = FromMs(r[base + 12]);
  j.updated = FromMs(r[base + 13]);
  j.owner = r[base + 14].c_str();
  j.progress = r[base + 15].as<double>();
  j.catalog_path = r[base + 16].c_str();
  j.next_attempt = FromMs(r[base + 17]);
  return j;
}

CatalogEntry EntryFromRow(const pqxx::row& r) {
  CatalogEntry e;
  e.id = r[0].as<int64_t>();
  e.path = r[1].c_str();
  e.name = r[2].c_str();
  e.directory = r[3].as<bool>();
  e.size = r[4].as<int64_t>();
  e.mtime = FromMs(r[5]);
  const int h = r[6].as<int>();
  e.health = (h >= 0 && h <= 3) ? static_cast<Health>(h) : Health::kUnknown;
  if (!e.directory) e.etag = absl::StrCat(absl::Hex(e.id), "-", absl::Hex(e.size), "-", absl::Hex(r[5].as<int64_t>()));
  return e;
}

// "<id> <size>\n" per segment.
std::string EncodeSegments(const std::vector<SegmentRef>& segments) {
  std::string out;
  size_t n = 0;
  for (const auto& s : segments) n += s.message_id.size() + 12;
  out.reserve(n);
  for (const auto& s : segments) {
    out.append(s.message_id);
    out.push_back(' ');
    absl::StrAppend(&out, s.size);
    out.push_back('\n');
  }
  return out;
}

absl::Status DecodeSegments(absl::string_view blob, int expected, std::vector<LayoutSegment>* out) {
  out->clear();
  out->reserve(expected > 0 ? expected : 0);
  int64_t offset = 0;
  const char* p = blob.data();
  const char* end = p + blob.size();
  while (p < end) {
    const char* nl = static_cast<const char*>(memchr(p, '\n', end - p));
    if (nl == nullptr) nl = end;
    const char* sp = static_cast<const char*>(memchr(p, ' ', nl - p));
    int64_t size = 0;
    if (sp == nullptr || !absl::SimpleAtoi(absl::string_view(sp + 1, nl - sp - 1), &size) || size < 0) {
      return absl::DataLossError("catalog segment list is corrupt; delete and re-import the release");
    }
    LayoutSegment& s = out->emplace_back();
    s.message_id.assign(p, sp - p);
    s.offset = offset;
    s.size = size;
    offset += size;
    p = nl + 1;
  }
  return absl::OkStatus();
}

absl::Status DecodeExtents(absl::string_view blob, std::vector<std::pair<int64_t, LayoutExtent>>* out) {
  for (absl::string_view line : absl::StrSplit(blob, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    int64_t vol = 0;
    LayoutExtent e;
    if (f.size() != 4 || !absl::SimpleAtoi(f[0], &vol) || !absl::SimpleAtoi(f[1], &e.volume_offset) ||
        !absl::SimpleAtoi(f[2], &e.file_offset) || !absl::SimpleAtoi(f[3], &e.length)) {
      return absl::DataLossError("catalog extent list is corrupt; delete and re-import the release");
    }
    out->emplace_back(vol, e);
  }
  return absl::OkStatus();
}

std::string JoinPath(const std::string& dir, absl::string_view name) {
  return dir == "/" ? absl::StrCat("/", name) : absl::StrCat(dir, "/", name);
}

// Ensures directory `path` (whose parent exists with id parent_id) exists;
// returns its id. Concurrent creators are serialised by the unique index.
int64_t EnsureDir(pqxx::work& w, int64_t parent_id, const std::string& path, absl::string_view name) {
  w.exec_params("INSERT INTO entries (parent_id, path, name, is_dir) VALUES ($1, $2, $3, true) "
                "ON CONFLICT (path) DO NOTHING",
                parent_id, path, std::string(name));
  pqxx::row r = w.exec_params1("SELECT id, is_dir FROM entries WHERE path = $1", path);
  if (!r[1].as<bool>()) {
    throw pqxx::unique_violation(absl::StrCat("a file is in the way of directory ", path));
  }
  return r[0].as<int64_t>();
}

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// The error of an update that found the job no longer held by this worker's
// attempt (cancelled, claim expired, already requeued); `detail` says what
// that means for the caller.
absl::Status NotHeldError(int64_t job_id, int attempt, const std::string& owner, absl::string_view detail = "") {
  return absl::FailedPreconditionError(
      absl::StrCat("job ", job_id, " attempt ", attempt, " is no longer held by ", owner, detail));
}

}  // namespace

struct Store::Conn : pqxx::connection {
  explicit Conn(const std::string& url) : pqxx::connection(url) {}
};

const char* JobStateName(JobState s) {
  switch (s) {
    case JobState::kQueued: return "queued";
    case JobState::kRunning: return "running";
    case JobState::kCompleted: return "completed";
    case JobState::kFailed: return "failed";
    case JobState::kCancelled: return "cancelled";
  }
  return "queued";
}

const char* FailureReasonName(FailureReason r) {
  switch (r) {
    case FailureReason::kNone: return "";
    case FailureReason::kMissingArticles: return "missing_articles";
    case FailureReason::kUnsupportedArchive: return "unsupported_archive";
    case FailureReason::kBadNzb: return "bad_nzb";
    case FailureReason::kProviderUnavailable: return "provider_unavailable";
    case FailureReason::kInternal: return "internal";
  }
  return "internal";
}

const char* HealthName(Health h) {
  switch (h) {
    case Health::kUnknown: return "unknown";
    case Health::kHealthy: return "healthy";
    case Health::kDegraded: return "degraded";
    case Health::kBroken: return "broken";
  }
  return "unknown";
}

absl::Status MapPqxxException(const char* op, std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const pqxx::in_doubt_error& ex) {
    return absl::UnknownError(absl::StrCat(op, ": the connection broke during commit; the outcome is unknown: ",
                                           ex.what()));
  } catch (const pqxx::broken_connection& ex) {
    return absl::UnavailableError(absl::StrCat(op, ": database connection lost or refused: ", ex.what()));
  } catch (const pqxx::unique_violation& ex) {
    return absl::AlreadyExistsError(absl::StrCat(op, ": ", ex.what()));
  } catch (const pqxx::foreign_key_violation& ex) {
    return absl::FailedPreconditionError(absl::StrCat(op, ": ", ex.what()));
  } catch (const pqxx::check_violation& ex) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": ", ex.what()));
  } catch (const pqxx::serialization_failure& ex) {
    return absl::AbortedError(absl::StrCat(op, ": ", ex.what()));
  } catch (const pqxx::deadlock_detected& ex) {
    return absl::AbortedError(absl::StrCat(op, ": ", ex.what()));
  } catch (const pqxx::statement_completion_unknown& ex) {
    return absl::UnknownError(absl::StrCat(op, ": ", ex.what()));
  } catch (const pqxx::insufficient_resources& ex) {
    return absl::ResourceExhaustedError(absl::StrCat(op, ": ", ex.what()));
  } catch (const pqxx::sql_error& ex) {
    // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now.
    if (ex.sqlstate().rfind("57P", 0) == 0 || ex.sqlstate().rfind("08", 0) == 0) {
      return absl::UnavailableError(absl::StrCat(op, ": database unavailable: ", ex.what()));
    }
    return absl::InternalError(absl::StrCat(op, ": SQL error ", ex.sqlstate(), ": ", ex.what()));
  } catch (const std::exception& ex) {
    return absl::InternalError(absl::StrCat(op, ": ", ex.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat(op, ": unknown exception"));
  }
}

absl::StatusOr<std::string> NormalizeCatalogPath(absl::string_view path) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat("catalog path must start with '/': \"", path, "\""));
  }
  std::vector<absl::string_view> parts;
  for (absl::string_view p : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (p == "." || p == "..") return absl::InvalidArgumentError(absl::StrCat("catalog path has '.' or '..': ", path));
    parts.push_back(p);
  }
  if (parts.empty()) return std::string("/");
  return absl::StrCat("/", absl::StrJoin(parts, "/"));
}

Store::Store(const Options& options) : options_(options) {
  url_ = options.url;
  if (options.connect_timeout > absl::ZeroDuration() && url_.find("connect_timeout") == std::string::npos) {
    const int64_t secs = std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(options.connect_timeout, absl::Seconds(1))));
    url_ += (url_.find('?') == std::string::npos ? "?" : "&");
    url_ += absl::StrCat("connect_timeout=", secs);
  }
  if (options.registry != nullptr) {
    errors_ = &metrics::BuildCounter()
                   .Name("nzbmesh_importer_db_errors_total")
                   .Help("Database calls that failed, by status code.")
                   .Register(*options.registry);
  }
}

Store::~Store() = default;

absl::StatusOr<std::unique_ptr<Store>> Store::Create(const Options& options) {
  if (options.url.empty()) {
    return absl::InvalidArgumentError("no database URL: set importer.database_url_env (or database_url_file)");
  }
  auto store = std::unique_ptr<Store>(new Store(options));
  // Dial once so a wrong URL or a down server fails start-up clearly.
  absl::Status s = store->Run("connect", [](Conn&) { return absl::OkStatus(); });
  if (!s.ok()) return s;
  if (options.migrate) NZB_RETURN_IF_ERROR(store->Migrate());
  return store;
}

std::unique_ptr<Store::Conn> Store::Dial() {
  auto c = std::make_unique<Conn>(url_);
  // Our pool reconnects explicitly; libpqxx 6's silent reactivation would
  // hide broken connections from the error mapping.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  c->inhibit_reactivation(true);
#pragma GCC diagnostic pop
  return c;
}

absl::StatusOr<std::unique_ptr<Store::Conn>> Store::Acquire() {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !idle_.empty() || open_ < options_.max_connections;
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&ready), options_.acquire_timeout)) {
    return absl::UnavailableError(absl::StrCat("all ", options_.max_connections,
                                               " database connections stayed busy for ",
                                               absl::FormatDuration(options_.acquire_timeout)));
  }
  if (!idle_.empty()) {
    auto c = std::move(idle_.back());
    idle_.pop_back();
    return c;
  }
  ++open_;
  return std::unique_ptr<Conn>();  // caller dials outside the lock
}

void Store::Release(std::unique_ptr<Conn> c) {
  absl::MutexLock lock(&mu_);
  if (c && c->is_open()) {
    idle_.push_back(std::move(c));
  } else {
    --open_;
  }
}

void Store::CountError(const absl::Status& s) {
  if (errors_ != nullptr) errors_->Add({{"code", absl::StatusCodeToString(s.code())}}).Increment();
}

absl::Status Store::Run(const char* op, const std::function<absl::Status(Conn&)>& fn) {
  absl::Status last;
  for (int attempt = 0; attempt <= options_.broken_connection_retries; ++attempt) {
    NZB_ASSIGN_OR_RETURN(std::unique_ptr<Conn> conn, Acquire());
    bool retryable = false;
    try {
      if (!conn) conn = Dial();
      absl::Status s = fn(*conn);
      Release(std::move(conn));
      return s;
    } catch (...) {
      std::exception_ptr e = std::current_exception();
      last = MapPqxxException(op, e);
      try {
        std::rethrow_exception(e);
      } catch (const pqxx::in_doubt_error&) {
        retryable = false;  // never retried blindly
      } catch (const pqxx::broken_connection&) {
        retryable = true;
        if (conn) conn->disconnect();
      } catch (...) {
      }
    }
    Release(std::move(conn));
    CountError(last);
    if (!retryable) break;
  }
  return last;
}

absl::Status Store::ExecuteForTesting(const std::string& sql) {
  return Run("execute", [&](Conn& c) {
    pqxx::work w(c);
    w.exec(sql);
    w.commit();
    return absl::OkStatus();
  });
}

int Store::LatestSchemaVersion() { return kMigrations[sizeof(kMigrations) / sizeof(kMigrations[0]) - 1].version; }

absl::Status Store::Migrate() {
  // A dedicated connection: the session-level advisory lock dies with it, so
  // a failure halfway can never leave the lock held.
  try {
    std::unique_ptr<Conn> c = Dial();
    {
      pqxx::nontransaction n(*c);
      n.exec_params("SELECT pg_advisory_lock($1)", kMigrationLockKey);
      n.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, description text NOT NULL, "
             "applied_at timestamptz NOT NULL DEFAULT now())");
    }
    int current = 0;
    {
      pqxx::nontransaction n(*c);
      current = n.exec("SELECT coalesce(max(version), 0) FROM schema_migrations")[0][0].as<int>();
    }
    for (const Migration& m : kMigrations) {
      if (m.version <= current) continue;
      pqxx::work w(*c);
      w.exec(m.sql);
      w.exec_params("INSERT INTO schema_migrations (version, description) VALUES ($1, $2)", m.version,
                    std::string(m.description));
      w.commit();
      log::Info("applied schema migration", {{"version", m.version}, {"description", m.description}});
    }
    {
      pqxx::nontransaction n(*c);
      n.exec_params("SELECT pg_advisory_unlock($1)", kMigrationLockKey);
    }
    return absl::OkStatus();
  } catch (...) {
    absl::Status s = MapPqxxException("migrate", std::current_exception());
    CountError(s);
    return s;
  }
}

absl::StatusOr<int> Store::SchemaVersion() {
  int v = 0;
  NZB_RETURN_IF_ERROR(Run("schema_version", [&](Conn& c) {
    pqxx::read_transaction t(c);
    v = t.exec("SELECT coalesce(max(version), 0) FROM schema_migrations")[0][0].as<int>();
    return absl::OkStatus();
  }));
  return v;
}

// ---------------------------------------------------------------- queue

absl::StatusOr<SubmitResult> Store::Submit(const SubmitRecord& rec) {
  SubmitResult out;
  NZB_RETURN_IF_ERROR(Run("submit", [&](Conn& c) {
    pqxx::work w(c);
    // ON CONFLICT DO NOTHING waits for a concurrent insert of the same hash
    // to commit, then returns no row.
    pqxx::result ins = w.exec_params(
        "INSERT INTO nzbs (sha256, bytes, size, filename) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (sha256) DO NOTHING RETURNING id",
        rec.sha256_hex, pqxx::binarystring(rec.nzb.data(), rec.nzb.size()), static_cast<int64_t>(rec.nzb.size()),
        rec.filename);
    int64_t nzb_id = 0;
    if (!ins.empty()) {
      nzb_id = ins[0][0].as<int64_t>();  // new NZB: the row is locked by our insert
    } else {
      // A known NZB. Its row lock makes concurrent submitters of the same
      // bytes decide one after another, each seeing the jobs committed
      // before it (READ COMMITTED takes a fresh snapshot per statement): M4.
      nzb_id = w.exec_params1("SELECT id FROM nzbs WHERE sha256 = $1 FOR UPDATE", rec.sha256_hex)[0].as<int64_t>();
      // Deduplicate only against a job that is still pending or whose
      // release is still in the catalog; after DeletePath of the release
      // (or a failed/cancelled job) the same NZB is imported afresh.
      pqxx::result live = w.exec_params(
          "SELECT j.id FROM jobs j WHERE j.nzb_id = $1 AND (j.state IN ('queued', 'running') OR "
          "  (j.state = 'completed' AND EXISTS (SELECT 1 FROM entries e WHERE e.job_id = j.id))) "
          "ORDER BY j.id DESC LIMIT 1",
          nzb_id);
      if (!live.empty()) {
        out.job_id = live[0][0].as<int64_t>();
        out.duplicate = true;
        w.commit();
        return absl::OkStatus();
      }
    }
    pqxx::row r = w.exec_params1(
        "INSERT INTO jobs (nzb_id, state, priority, max_attempts, category, name, password) "
        "VALUES ($1, 'queued', $2, $3, $4, $5, $6) RETURNING id",
        nzb_id, rec.priority, rec.max_attempts, rec.category, rec.name, rec.password);
    out.job_id = r[0].as<int64_t>();
    out.duplicate = false;
    w.commit();
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<JobRecord> Store::GetJob(int64_t job_id) {
  JobRecord job;
  NZB_RETURN_IF_ERROR(Run("get_job", [&](Conn& c) {
    pqxx::read_transaction t(c);
    pqxx::result r = t.exec_params(
        absl::StrCat("SELECT ", kJobColumns, " FROM jobs j JOIN nzbs n ON n.id = j.nzb_id WHERE j.id = $1"), job_id);
    if (r.empty()) return absl::NotFoundError(absl::StrCat("job ", job_id, " does not exist"));
    job = JobFromRow(r[0]);
    return absl::OkStatus();
  }));
  return job;
}

absl::StatusOr<std::vector<JobRecord>> Store::ListJobs(std::optional<JobState> state, int limit) {
  if (limit <= 0) limit = 100;
  std::vector<JobRecord> jobs;
  NZB_RETURN_IF_ERROR(Run("list_jobs", [&](Conn& c) {
    pqxx::read_transaction t(c);
    pqxx::result r =
        state.has_value()
            ? t.exec_params(absl::StrCat("SELECT ", kJobColumns,
                                         " FROM jobs j JOIN nzbs n ON n.id = j.nzb_id WHERE j.state = $1 "
                                         "ORDER BY j.id DESC LIMIT $2"),
                            std::string(JobStateName(*state)), limit)
            : t.exec_params(absl::StrCat("SELECT ", kJobColumns,
                                         " FROM jobs j JOIN nzbs n ON n.id = j.nzb_id ORDER BY j.id DESC LIMIT $1"),
                            limit);
    jobs.clear();
    for (const auto& row : r) jobs.push_back(JobFromRow(row));
    return absl::OkStatus();
  }));
  return jobs;
}

absl::StatusOr<JobRecord> Store::TransitionJob(int64_t job_id, const char* op, const char* set_clause,
                                               const char* from_states, const char* refusal,
                                               const char* notify_channel) {
  JobRecord job;
  NZB_RETURN_IF_ERROR(Run(op, [&](Conn& c) {
    pqxx::work w(c);
    pqxx::result r = w.exec_params(
        absl::StrCat("WITH u AS (UPDATE jobs SET ", set_clause, " WHERE id = $1 AND state IN (", from_states,
                     ") RETURNING *) SELECT ", kJobColumns, " FROM u j JOIN nzbs n ON n.id = j.nzb_id"),
        job_id);
    if (r.empty()) {
      pqxx::result s = w.exec_params("SELECT state FROM jobs WHERE id = $1", job_id);
      if (s.empty()) return absl::NotFoundError(absl::StrCat("job ", job_id, " does not exist"));
      return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " is ", s[0][0].c_str(), "; ", refusal));
    }
    job = JobFromRow(r[0]);
    // Delivered to listeners when (and only if) this transaction commits.
    if (notify_channel != nullptr) w.exec_params("SELECT pg_notify($1, $2)", notify_channel, std::to_string(job_id));
    w.commit();
    return absl::OkStatus();
  }));
  return job;
}

absl::StatusOr<JobRecord> Store::CancelJob(int64_t job_id) {
  return TransitionJob(job_id, "cancel_job",
                       "state = 'cancelled', updated_at = now(), finished_at = now(), message = 'cancelled by request'",
                       "'queued', 'running'", "only queued or running jobs can be cancelled", kJobCancelledChannel);
}

absl::StatusOr<JobRecord> Store::RetryJob(int64_t job_id) {
  return TransitionJob(job_id, "retry_job",
                       "state = 'queued', attempts = 0, reason = '', message = '', owner = '', progress = 0, "
                       "updated_at = now(), finished_at = NULL, next_attempt_at = now()",
                       "'failed', 'cancelled'", "only failed or cancelled jobs can be retried");
}

absl::StatusOr<bool> Store::HasClaimableJob() {
  bool any = false;
  NZB_RETURN_IF_ERROR(Run("has_claimable_job", [&](Conn& c) {
    pqxx::read_transaction t(c);
    any = t.exec("SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'queued' AND next_attempt_at <= now())")[0][0]
              .as<bool>();
    return absl::OkStatus();
  }));
  return any;
}

absl::StatusOr<std::optional<ClaimedJob>> Store::ClaimJob(const std::string& owner, absl::Duration lease) {
  std::optional<ClaimedJob> out;
  NZB_RETURN_IF_ERROR(Run("claim_job", [&](Conn& c) {
    out.reset();
    pqxx::work w(c);
    pqxx::result r = w.exec_params(
        absl::StrCat(
            "WITH c AS (SELECT id FROM jobs WHERE state = 'queued' AND next_attempt_at <= now() "
            "           ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED), "
            "u AS (UPDATE jobs SET state = 'running', owner = $1, attempts = attempts + 1, started_at = now(), "
            "      updated_at = now(), heartbeat_at = now(), expires_at = now() + make_interval(secs => $2), "
            "      progress = 0 FROM c WHERE jobs.id = c.id RETURNING jobs.*) "
            "SELECT ",
            kJobColumns, ", n.bytes FROM u j JOIN nzbs n ON n.id = j.nzb_id"),
        owner, Seconds(lease));
    if (!r.empty()) {
      ClaimedJob cj;
      cj.job = JobFromRow(r[0]);
      cj.nzb = pqxx::binarystring(r[0][kJobColumnCount]).str();
      out = std::move(cj);
    }
    w.commit();
    return absl::OkStatus();
  }));
  return out;
}

absl::Status Store::Heartbeat(int64_t job_id, const std::string& owner, int attempt, absl::Duration lease,
                              double progress) {
  return Run("heartbeat", [&](Conn& c) {
    pqxx::work w(c);
    pqxx::result r = w.exec_params(
        "UPDATE jobs SET heartbeat_at = now(), expires_at = now() + make_interval(secs => $4), progress = $5, "
        "updated_at = now() WHERE id = $1 AND owner = $2 AND attempts = $3 AND state = 'running' RETURNING id",
        job_id, owner, attempt, Seconds(lease), progress);
    w.commit();
    if (r.empty()) {
      return NotHeldError(job_id, attempt, owner, " (cancelled, or its claim expired)");
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<int> Store::RequeueExpired(absl::Duration backoff) {
  int n = 0;
  NZB_RETURN_IF_ERROR(Run("requeue_expired", [&](Conn& c) {
    pqxx::work w(c);
    pqxx::result r = w.exec_params(
        "UPDATE jobs SET "
        "  state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END, "
        "  reason = CASE WHEN attempts >= max_attempts THEN 'internal' ELSE reason END, "
        "  message = 'worker ' || owner || ' stopped heartbeating during attempt ' || attempts, "
        "  finished_at = CASE WHEN attempts >= max_attempts THEN now() ELSE NULL END, "
        "  owner = '', progress = 0, updated_at = now(), "
        "  next_attempt_at = now() + make_interval(secs => $1 * power(2, greatest(attempts - 1, 0))) "
        "WHERE state = 'running' AND expires_at < now() RETURNING id",
        Seconds(backoff));
    w.commit();
    n = static_cast<int>(r.size());
    return absl::OkStatus();
  }));
  return n;
}

absl::StatusOr<JobRecord> Store::FailJob(int64_t job_id, const std::string& owner, int attempt, FailureReason reason,
                                         const std::string& message, bool transient, absl::Duration backoff) {
  JobRecord job;
  NZB_RETURN_IF_ERROR(Run("fail_job", [&](Conn& c) {
    pqxx::work w(c);
    pqxx::result r = w.exec_params(
        absl::StrCat(
            "WITH u AS (UPDATE jobs SET "
            "  state = CASE WHEN $4 AND attempts < max_attempts THEN 'queued' ELSE 'failed' END, "
            "  finished_at = CASE WHEN $4 AND attempts < max_attempts THEN NULL ELSE now() END, "
            "  reason = $5, message = $6, owner = '', progress = 0, updated_at = now(), "
            "  next_attempt_at = now() + make_interval(secs => $7 * power(2, greatest(attempts - 1, 0))) "
            "WHERE id = $1 AND owner = $2 AND attempts = $3 AND state = 'running' RETURNING *) "
            "SELECT ",
            kJobColumns, " FROM u j JOIN nzbs n ON n.id = j.nzb_id"),
        job_id, owner, attempt, transient, std::string(FailureReasonName(reason)), message, Seconds(backoff));
    if (r.empty()) {
      return NotHeldError(job_id, attempt, owner);
    }
    job = JobFromRow(r[0]);
    w.commit();
    return absl::OkStatus();
  }));
  return job;
}

absl::StatusOr<JobRecord> Store::ReleaseJob(int64_t job_id, const std::string& owner, int attempt,
                                            const std::string& message) {
  JobRecord job;
  NZB_RETURN_IF_ERROR(Run("release_job", [&](Conn& c) {
    pqxx::work w(c);
    pqxx::result r = w.exec_params(
        absl::StrCat("WITH u AS (UPDATE jobs SET state = 'queued', attempts = attempts - 1, owner = '', "
                     "  progress = 0, message = $4, updated_at = now(), next_attempt_at = now() "
                     "WHERE id = $1 AND owner = $2 AND attempts = $3 AND state = 'running' RETURNING *) "
                     "SELECT ",
                     kJobColumns, " FROM u j JOIN nzbs n ON n.id = j.nzb_id"),
        job_id, owner, attempt, message);
    if (r.empty()) {
      return NotHeldError(job_id, attempt, owner);
    }
    job = JobFromRow(r[0]);
    w.commit();
    return absl::OkStatus();
  }));
  return job;
}

absl::StatusOr<std::string> Store::CompleteJob(int64_t job_id, const std::string& owner, int attempt,
                                               const ReleasePlan& plan) {
  std::string release_path;
  NZB_RETURN_IF_ERROR(Run("complete_job", [&](Conn& c) {
    pqxx::work w(c);
    // Lock the job row: a concurrent cancel or requeue waits for us or wins.
    pqxx::result held = w.exec_params(
        "SELECT id FROM jobs WHERE id = $1 AND owner = $2 AND attempts = $3 AND state = 'running' FOR UPDATE",
        job_id, owner, attempt);
    if (held.empty()) {
      return NotHeldError(job_id, attempt, owner, "; its results were discarded");
    }
    const int64_t root = w.exec("SELECT id FROM entries WHERE path = '/'")[0][0].as<int64_t>();
    const std::string cat_path = JoinPath("/", plan.category);
    const int64_t cat_id = EnsureDir(w, root, cat_path, plan.category);
    // The release directory: the first free name of "x", "x (2)", "x (3)", ...
    int64_t release_id = 0;
    std::string release_name;
    for (int n = 1; release_id == 0; ++n) {
      if (n > 1000) return absl::AlreadyExistsError(absl::StrCat("too many releases named ", plan.release));
      release_name = n == 1 ? plan.release : absl::StrCat(plan.release, " (", n, ")");
      release_path = JoinPath(cat_path, release_name);
      pqxx::result r = w.exec_params(
          "INSERT INTO entries (parent_id, path, name, is_dir, job_id) VALUES ($1, $2, $3, true, $4) "
          "ON CONFLICT (path) DO NOTHING RETURNING id",
          cat_id, release_path, release_name, job_id);
      if (!r.empty()) release_id = r[0][0].as<int64_t>();
    }
    std::vector<int64_t> volume_ids;
    for (size_t i = 0; i < plan.volumes.size(); ++i) {
      const VolumePlan& v = plan.volumes[i];
      volume_ids.push_back(w.exec_params1("INSERT INTO volumes (release_id, idx, name, size, segment_count, segments) "
                                          "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                                          release_id, static_cast<int>(i), v.name, v.size,
                                          static_cast<int>(v.segments.size()), EncodeSegments(v.segments))[0]
                               .as<int64_t>());
    }
    std::map<std::string, int64_t> dirs = {{release_path, release_id}};
    for (const FilePlan& f : plan.files) {
      // Sub-directories of archive members ("Subs/en.srt").
      std::vector<std::string> parts = absl::StrSplit(f.name, '/', absl::SkipEmpty());
      if (parts.empty()) return absl::InvalidArgumentError("empty file name in release plan");
      std::string dir = release_path;
      int64_t dir_id = release_id;
      for (size_t i = 0; i + 1 < parts.size(); ++i) {
        std::string sub = JoinPath(dir, parts[i]);
        auto it = dirs.find(sub);
        if (it == dirs.end()) it = dirs.emplace(sub, EnsureDir(w, dir_id, sub, parts[i])).first;
        dir = sub;
        dir_id = it->second;
      }
      const std::string path = JoinPath(dir, parts.back());
      const int64_t file_id =
          w.exec_params1("INSERT INTO entries (parent_id, path, name, is_dir, size, mtime, job_id) "
                         "VALUES ($1, $2, $3, false, $4, to_timestamp($5), $6) RETURNING id",
                         dir_id, path, parts.back(), f.size, absl::ToUnixSeconds(f.mtime), job_id)[0]
              .as<int64_t>();
      std::string extents;
      for (const ExtentPlan& e : f.extents) {
        if (e.volume < 0 || e.volume >= static_cast<int>(volume_ids.size())) {
          return absl::InvalidArgumentError(absl::StrCat("extent of ", f.name, " names volume ", e.volume));
        }
        absl::StrAppend(&extents, volume_ids[e.volume], " ", e.volume_offset, " ", e.file_offset, " ", e.length, "\n");
      }
      w.exec_params("INSERT INTO layouts (file_id, segment_count, segments, extents) VALUES ($1, $2, $3, $4)",
                    file_id, static_cast<int>(f.segments.size()), EncodeSegments(f.segments), extents);
    }
    w.exec_params(
        "UPDATE jobs SET state = 'completed', catalog_path = $2, progress = 1, reason = '', message = '', "
        "updated_at = now(), finished_at = now() WHERE id = $1",
        job_id, release_path);
    w.commit();
    return absl::OkStatus();
  }));
  return release_path;
}

absl::StatusOr<std::vector<std::pair<JobState, int64_t>>> Store::CountJobsByState() {
  std::vector<std::pair<JobState, int64_t>> out;
  NZB_RETURN_IF_ERROR(Run("count_jobs", [&](Conn& c) {
    pqxx::read_transaction t(c);
    out.clear();
    for (const auto& row : t.exec("SELECT state, count(*) FROM jobs GROUP BY state")) {
      auto st = ParseJobState(row[0].c_str());
      if (st) out.emplace_back(*st, row[1].as<int64_t>());
    }
    return absl::OkStatus();
  }));
  return out;
}

// ---------------------------------------------------------------- catalog

absl::StatusOr<CatalogEntry> Store::Stat(const std::string& raw) {
  NZB_ASSIGN_OR_RETURN(std::string path, NormalizeCatalogPath(raw));
  CatalogEntry e;
  NZB_RETURN_IF_ERROR(Run("stat", [&](Conn& c) {
    pqxx::read_transaction t(c);
    pqxx::result r = t.exec_params(absl::StrCat("SELECT ", kEntryColumns, " FROM entries e WHERE e.path = $1"), path);
    if (r.empty()) return absl::NotFoundError(absl::StrCat("no such path in the catalog: ", path));
    e = EntryFromRow(r[0]);
    return absl::OkStatus();
  }));
  return e;
}

absl::StatusOr<std::vector<CatalogEntry>> Store::ListDirectory(const std::string& raw) {
  NZB_ASSIGN_OR_RETURN(std::string path, NormalizeCatalogPath(raw));
  std::vector<CatalogEntry> out;
  NZB_RETURN_IF_ERROR(Run("list_directory", [&](Conn& c) {
    pqxx::read_transaction t(c);
    pqxx::result d = t.exec_params("SELECT id, is_dir FROM entries WHERE path = $1", path);
    if (d.empty()) return absl::NotFoundError(absl::StrCat("no such directory in the catalog: ", path));
    if (!d[0][1].as<bool>()) return absl::FailedPreconditionError(absl::StrCat("not a directory: ", path));
    out.clear();
    for (const auto& row :
         t.exec_params(absl::StrCat("SELECT ", kEntryColumns,
                                    " FROM entries e WHERE e.parent_id = $1 ORDER BY e.is_dir DESC, e.name"),
                       d[0][0].as<int64_t>())) {
      out.push_back(EntryFromRow(row));
    }
    return absl::OkStatus();
  }));
  return out;
}

namespace {

absl::Status ReadLayout(pqxx::read_transaction& t, const pqxx::result& r, const std::string& what,
                        FileLayoutRecord* out) {
  if (r.empty()) {
    return absl::NotFoundError(absl::StrCat("no such file in the catalog: ", what));
  }
  const pqxx::row& row = r[0];
  out->entry = EntryFromRow(row);
  if (out->entry.directory) return absl::FailedPreconditionError(absl::StrCat("is a directory: ", what));
  if (row[7].is_null()) return absl::DataLossError(absl::StrCat("file has no layout: ", what));
  const int count = row[7].as<int>();
  NZB_RETURN_IF_ERROR(DecodeSegments(absl::string_view(row[8].c_str(), row[8].size()), count, &out->segments));
  absl::string_view extents(row[9].c_str(), row[9].size());
  if (!extents.empty()) {
    std::vector<std::pair<int64_t, LayoutExtent>> ext;
    NZB_RETURN_IF_ERROR(DecodeExtents(extents, &ext));
    std::map<int64_t, int> index;  // volume id → index in out->volumes
    for (auto& [vol, e] : ext) index.emplace(vol, 0);
    std::string ids = "{";
    for (auto& [vol, i] : index) absl::StrAppend(&ids, ids.size() > 1 ? "," : "", vol);
    ids += "}";
    pqxx::result vr = t.exec_params(
        "SELECT id, name, size, segment_count, segments FROM volumes WHERE id = ANY($1::bigint[]) ORDER BY idx", ids);
    for (const auto& v : vr) {
      index[v[0].as<int64_t>()] = static_cast<int>(out->volumes.size());
      LayoutVolume& lv = out->volumes.emplace_back();
      lv.name = v[1].c_str();
      lv.size = v[2].as<int64_t>();
      NZB_RETURN_IF_ERROR(DecodeSegments(absl::string_view(v[4].c_str(), v[4].size()), v[3].as<int>(), &lv.segments));
    }
    if (vr.size() != index.size()) return absl::DataLossError(absl::StrCat("archive volumes missing for ", what));
    for (auto& [vol, e] : ext) {
      e.volume = index[vol];
      out->extents.push_back(e);
    }
  }
  return absl::OkStatus();
}

constexpr char kLayoutSelect[] =
    "SELECT e.id, e.path, e.name, e.is_dir, e.size, (extract(epoch from e.mtime) * 1000)::bigint, e.health, "
    "l.segment_count, l.segments, l.extents FROM entries e LEFT JOIN layouts l ON l.file_id = e.id ";

}  // namespace

absl::StatusOr<FileLayoutRecord> Store::GetFileLayout(const std::string& raw) {
  NZB_ASSIGN_OR_RETURN(std::string path, NormalizeCatalogPath(raw));
  FileLayoutRecord out;
  NZB_RETURN_IF_ERROR(Run("get_file_layout", [&](Conn& c) {
    out = FileLayoutRecord();
    pqxx::read_transaction t(c);
    pqxx::result r = t.exec_params(absl::StrCat(kLayoutSelect, "WHERE e.path = $1"), path);
    return ReadLayout(t, r, path, &out);
  }));
  return out;
}

absl::StatusOr<FileLayoutRecord> Store::GetFileLayoutById(int64_t file_id) {
  FileLayoutRecord out;
  NZB_RETURN_IF_ERROR(Run("get_file_layout", [&](Conn& c) {
    out = FileLayoutRecord();
    pqxx::read_transaction t(c);
    pqxx::result r = t.exec_params(absl::StrCat(kLayoutSelect, "WHERE e.id = $1"), file_id);
    return ReadLayout(t, r, absl::StrCat("file id ", file_id), &out);
  }));
  return out;
}

absl::StatusOr<int64_t> Store::DeletePath(const std::string& raw) {
  NZB_ASSIGN_OR_RETURN(std::string path, NormalizeCatalogPath(raw));
  if (path == "/") return absl::InvalidArgumentError("refusing to delete the whole catalog ('/')");
  int64_t files = 0;
  NZB_RETURN_IF_ERROR(Run("delete_path", [&](Conn& c) {
    pqxx::work w(c);
    pqxx::result r = w.exec_params(
        "WITH RECURSIVE t AS (SELECT id, is_dir FROM entries WHERE path = $1 "
        "  UNION ALL SELECT e.id, e.is_dir FROM entries e JOIN t ON e.parent_id = t.id) "
        "SELECT count(*), count(*) FILTER (WHERE NOT is_dir) FROM t",
        path);
    if (r[0][0].as<int64_t>() == 0) return absl::NotFoundError(absl::StrCat("no such path in the catalog: ", path));
    files = r[0][1].as<int64_t>();
    w.exec_params("DELETE FROM entries WHERE path = $1", path);  // cascades to children, layouts, volumes
    w.commit();
    return absl::OkStatus();
  }));
  return files;
}

// ---------------------------------------------------------------- health

absl::StatusOr<std::vector<HealthCandidate>> Store::FilesForHealthCheck(int limit, absl::Time checked_before) {
  std::vector<HealthCandidate> out;
  NZB_RETURN_IF_ERROR(Run("files_for_health_check", [&](Conn& c) {
    pqxx::read_transaction t(c);
    out.clear();
    for (const auto& row : t.exec_params(
             "SELECT id, path FROM entries WHERE NOT is_dir AND (health_checked_at IS NULL OR "
             "health_checked_at < to_timestamp($1::double precision / 1e6)) "
             "ORDER BY health_checked_at NULLS FIRST, id LIMIT $2",
             absl::ToUnixMicros(checked_before), limit)) {
      out.push_back({row[0].as<int64_t>(), row[1].c_str()});
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::Status Store::RecordHealth(int64_t file_id, Health health, int checked, int missing, const std::string& detail) {
  return Run("record_health", [&](Conn& c) {
    pqxx::work w(c);
    pqxx::result r = w.exec_params(
        "UPDATE entries SET health = $2, health_checked_at = now() WHERE id = $1 AND NOT is_dir RETURNING id", file_id,
        static_cast<int>(health));
    if (r.empty()) return absl::NotFoundError(absl::StrCat("file id ", file_id, " is gone from the catalog"));
    w.exec_params("INSERT INTO health_checks (file_id, result, checked, missing, detail) VALUES ($1, $2, $3, $4, $5)",
                  file_id, static_cast<int>(health), checked, missing, detail);
    w.commit();
    return absl::OkStatus();
  });
}

}  // namespace nzbmesh::importer
