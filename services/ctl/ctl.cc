#include "services/ctl/ctl.h"

#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/grpc/credentials.h"
#include "common/status/grpc_status.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "nzbmesh/broker/v1/broker.grpc.pb.h"
#include "nzbmesh/importer/v1/catalog.grpc.pb.h"
#include "nzbmesh/importer/v1/importer.grpc.pb.h"
#include "nzbmesh/speedtest/v1/speedtest.grpc.pb.h"
#include "services/ctl/exit_codes.h"
#include "services/ctl/http_client.h"
#include "services/ctl/output.h"

namespace nzbmesh::ctl {
namespace {

namespace bv1 = ::nzbmesh::broker::v1;
namespace iv1 = ::nzbmesh::importer::v1;
namespace sv1 = ::nzbmesh::speedtest::v1;
namespace hv1 = ::grpc::health::v1;

// ---------------------------------------------------------------- options

struct FlagSpec {
  std::string name;   // without "--"
  std::string value;  // "" = boolean flag; else the value's placeholder
  std::string help;
};

const std::vector<FlagSpec>& GlobalFlags() {
  static const auto* flags = new std::vector<FlagSpec>{
      {"output", "table|json", "output format (default table); -o for short"},
      {"broker", "HOST:PORT", "broker address (default $NZBMESH_BROKER or 127.0.0.1:50051)"},
      {"importer", "HOST:PORT", "importer address (default $NZBMESH_IMPORTER or 127.0.0.1:50052)"},
      {"speedtest", "HOST:PORT", "speed-test service address (default $NZBMESH_SPEEDTEST or 127.0.0.1:50053)"},
      {"frontend", "URL", "frontend admin URL, repeatable or comma-separated (default $NZBMESH_FRONTENDS or "
                          "http://127.0.0.1:8080)"},
      {"api-key-env", "NAME", "environment variable holding the frontend API key (default NZBMESH_API_KEY)"},
      {"timeout", "DURATION", "deadline of each call, e.g. 5s (default 10s)"},
      {"tls", "", "use TLS for gRPC (implied by --tls-ca/--tls-cert)"},
      {"tls-ca", "FILE", "CA certificate (PEM) that signed the services' certificates"},
      {"tls-cert", "FILE", "client certificate (PEM) for mutual TLS"},
      {"tls-key", "FILE", "client key (PEM) for mutual TLS"},
      {"tls-server-name", "NAME", "expected server name in the certificate (testing)"},
      {"help", "", "show help (also: nzbmeshctl help COMMAND); -h for short"},
  };
  return *flags;
}

struct Args {
  std::vector<std::string> positionals;              // after the command name
  std::map<std::string, std::vector<std::string>> flags;  // name → values ("" for booleans)

  bool Has(const std::string& f) const { return flags.count(f) > 0; }
  std::string Get(const std::string& f, const std::string& def = "") const {
    auto it = flags.find(f);
    return it == flags.end() || it->second.empty() ? def : it->second.back();
  }
  std::vector<std::string> All(const std::string& f) const {
    auto it = flags.find(f);
    return it == flags.end() ? std::vector<std::string>{} : it->second;
  }
};

std::string EnvOr(const char* name, const std::string& def) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : def;
}

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------- context

class Ctx {
 public:
  Ctx(Args args, std::ostream& out, std::ostream& err) : args_(std::move(args)), out_(out), err_(err) {
    const std::string o = args_.Get("output", "table");
    if (o != "table" && o != "json") throw UsageError(absl::StrCat("--output must be table or json, got \"", o, "\""));
    json_ = o == "json";
    const std::string t = args_.Get("timeout", "10s");
    if (!absl::ParseDuration(t, &timeout_) || timeout_ <= absl::ZeroDuration()) {
      double secs = 0;
      if (!absl::SimpleAtod(t, &secs) || secs <= 0) {
        throw UsageError(absl::StrCat("--timeout: expected a duration such as 5s or 500ms, got \"", t, "\""));
      }
      timeout_ = absl::Seconds(secs);
    }
    addr_["broker"] = args_.Get("broker", EnvOr("NZBMESH_BROKER", "127.0.0.1:50051"));
    addr_["importer"] = args_.Get("importer", EnvOr("NZBMESH_IMPORTER", "127.0.0.1:50052"));
    addr_["speedtest"] = args_.Get("speedtest", EnvOr("NZBMESH_SPEEDTEST", "127.0.0.1:50053"));
    tls_.ca_file = args_.Get("tls-ca");
    tls_.cert_file = args_.Get("tls-cert");
    tls_.key_file = args_.Get("tls-key");
    tls_.server_name_override = args_.Get("tls-server-name");
    tls_.enabled = args_.Has("tls") || !tls_.ca_file.empty() || !tls_.cert_file.empty();
    if (tls_.cert_file.empty() != tls_.key_file.empty()) throw UsageError("--tls-cert and --tls-key go together");
  }

  const Args& args() const { return args_; }
  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }
  bool json() const { return json_; }
  absl::Duration timeout() const { return timeout_; }
  const std::string& Address(const std::string& service) { return addr_[service]; }

  std::shared_ptr<grpc::Channel> Channel(const std::string& service) {
    auto& ch = channels_[service];
    if (!ch) {
      auto c = MakeChannel(Address(service), tls_);
      if (!c.ok()) throw UsageError(absl::StrCat("cannot set up TLS: ", c.status().message()));
      ch = *c;
    }
    return ch;
  }
  void Deadline(grpc::ClientContext* ctx, absl::Duration extra = absl::ZeroDuration()) const {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout_ + extra));
  }

  // Prints what failed, where, and what to do; returns the exit code.
  int Fail(const std::string& service, const std::string& what, const grpc::Status& s) {
    absl::Status a = FromGrpcStatus(s);
    const std::string& addr = Address(service);
    if (a.code() == absl::StatusCode::kUnavailable) {
      err_ << "nzbmeshctl: cannot reach the " << service << " at " << addr << " (" << what << ": " << a.message()
           << "). Is it running? Point nzbmeshctl at it with --" << service << " or $NZBMESH_"
           << absl::AsciiStrToUpper(service) << ".\n";
    } else if (a.code() == absl::StatusCode::kDeadlineExceeded) {
      err_ << "nzbmeshctl: the " << service << " at " << addr << " did not answer " << what << " within "
           << absl::FormatDuration(timeout_) << " (raise --timeout if it is busy).\n";
    } else {
      err_ << "nzbmeshctl: " << what << " failed at the " << service << " (" << addr
           << "): " << absl::StatusCodeToString(a.code()) << ": " << a.message() << "\n";
    }
    return ExitCodeFor(a);
  }

 private:
  Args args_;
  std::ostream& out_;
  std::ostream& err_;
  bool json_ = false;
  absl::Duration timeout_;
  std::map<std::string, std::string> addr_;
  ClientTlsOptions tls_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
};

// ---------------------------------------------------------------- helpers

int64_t ParseId(const std::string& s, const char* what) {
  int64_t id = 0;
  if (!absl::SimpleAtoi(s, &id) || id <= 0) throw UsageError(absl::StrCat(what, ": expected a positive number, got \"", s, "\""));
  return id;
}

std::string StateName(iv1::JobState s) {
  std::string n = iv1::JobState_Name(s);
  return n == "JOB_STATE_UNSPECIFIED" ? "-" : n;
}

std::string ReasonName(iv1::FailureReason r) {
  return r == iv1::FAILURE_REASON_UNSPECIFIED ? "" : iv1::FailureReason_Name(r);
}

std::string HealthName(iv1::Health h) { return h == iv1::HEALTH_UNSPECIFIED ? "-" : iv1::Health_Name(h); }

std::string Percent(double p) { return absl::StrFormat("%.0f%%", p * 100); }

void PrintJob(Ctx& c, const iv1::Job& j) {
  if (c.json()) {
    c.out() << ToJson(j);
    return;
  }
  Details d;
  d.Add("ID", absl::StrCat(j.job_id()));
  d.Add("State", StateName(j.state()));
  d.Add("Name", j.name());
  d.Add("Category", j.category());
  d.Add("Priority", absl::StrCat(j.priority()));
  d.Add("Attempts", absl::StrCat(j.attempts()));
  d.Add("Progress", Percent(j.progress()));
  if (j.failure_reason() != iv1::FAILURE_REASON_UNSPECIFIED) d.Add("Failure", ReasonName(j.failure_reason()));
  if (!j.message().empty()) d.Add("Message", j.message());
  if (!j.catalog_path().empty()) d.Add("Path", j.catalog_path());
  if (!j.owner().empty()) d.Add("Worker", j.owner());
  d.Add("Created", HumanTime(j.created_unix_ms()));
  d.Add("Updated", HumanTime(j.updated_unix_ms()));
  d.Add("NZB SHA-256", j.nzb_sha256());
  d.Print(c.out());
}

bool Terminal(iv1::JobState s) {
  return s == iv1::COMPLETED || s == iv1::FAILED || s == iv1::CANCELLED;
}

// ---------------------------------------------------------------- commands

int CmdImport(Ctx& c) {
  const std::string path = c.args().positionals[0];
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    c.err() << "nzbmeshctl: cannot read " << path << "\n";
    return kExitNotFound;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  iv1::SubmitNzbRequest req;
  req.set_nzb(ss.str());
  const size_t slash = path.rfind('/');
  req.set_filename(slash == std::string::npos ? path : path.substr(slash + 1));
  req.set_category(c.args().Get("category"));
  req.set_name(c.args().Get("name"));
  if (c.args().Has("priority")) req.set_priority(static_cast<int32_t>(ParseId(c.args().Get("priority"), "--priority")));
  if (const std::string env = c.args().Get("password-env"); !env.empty()) req.set_password(EnvOr(env.c_str(), ""));
  auto stub = iv1::Importer::NewStub(c.Channel("importer"));
  iv1::SubmitNzbResponse resp;
  {
    grpc::ClientContext ctx;
    c.Deadline(&ctx);
    grpc::Status s = stub->SubmitNzb(&ctx, req, &resp);
    if (!s.ok()) return c.Fail("importer", "SubmitNzb", s);
  }
  if (!c.args().Has("wait")) {
    if (c.json()) {
      c.out() << ToJson(resp);
    } else {
      c.out() << "job " << resp.job_id() << (resp.duplicate() ? " (already imported: existing job)" : " queued")
              << "\n";
    }
    return kExitOk;
  }
  absl::Duration poll = absl::Seconds(1);
  if (c.args().Has("poll") && !absl::ParseDuration(c.args().Get("poll"), &poll)) {
    throw UsageError("--poll: expected a duration such as 500ms");
  }
  iv1::Job job;
  std::string last_line;
  while (true) {
    grpc::ClientContext ctx;
    c.Deadline(&ctx);
    iv1::GetJobRequest g;
    g.set_job_id(resp.job_id());
    grpc::Status s = stub->GetJob(&ctx, g, &job);
    if (!s.ok()) return c.Fail("importer", absl::StrCat("GetJob ", resp.job_id()), s);
    // Progress goes to stderr so stdout stays the final result (scripts).
    std::string line = absl::StrCat("job ", job.job_id(), ": ", StateName(job.state()),
                                    job.state() == iv1::RUNNING ? absl::StrCat(" ", Percent(job.progress())) : "");
    if (line != last_line) {
      c.err() << line << "\n";
      last_line = line;
    }
    if (Terminal(job.state())) break;
    absl::SleepFor(poll);
  }
  PrintJob(c, job);
  return job.state() == iv1::COMPLETED ? kExitOk : kExitJobFailed;
}

int CmdJobs(Ctx& c) {
  iv1::ListJobsRequest req;
  if (c.args().Has("state")) {
    iv1::JobState st;
    if (!iv1::JobState_Parse(absl::AsciiStrToUpper(c.args().Get("state")), &st) || st == iv1::JOB_STATE_UNSPECIFIED) {
      throw UsageError("--state: one of queued, running, completed, failed, cancelled");
    }
    req.set_state(st);
  }
  if (c.args().Has("limit")) req.set_limit(static_cast<int32_t>(ParseId(c.args().Get("limit"), "--limit")));
  auto stub = iv1::Importer::NewStub(c.Channel("importer"));
  grpc::ClientContext ctx;
  c.Deadline(&ctx);
  iv1::ListJobsResponse resp;
  grpc::Status s = stub->ListJobs(&ctx, req, &resp);
  if (!s.ok()) return c.Fail("importer", "ListJobs", s);
  if (c.json()) {
    c.out() << ToJson(resp);
    return kExitOk;
  }
  Table t({"ID", "STATE", "PROGRESS", "NAME", "CATEGORY", "ATTEMPTS", "UPDATED", "REASON"});
  for (const auto& j : resp.jobs()) {
    t.AddRow({absl::StrCat(j.job_id()), StateName(j.state()), Percent(j.progress()), j.name(), j.category(),
              absl::StrCat(j.attempts()), HumanTime(j.updated_unix_ms()), ReasonName(j.failure_reason())});
  }
  t.Print(c.out());
  return kExitOk;
}

int CmdJob(Ctx& c) {
  auto stub = iv1::Importer::NewStub(c.Channel("importer"));
  grpc::ClientContext ctx;
  c.Deadline(&ctx);
  iv1::GetJobRequest req;
  req.set_job_id(ParseId(c.args().positionals[0], "job ID"));
  iv1::Job job;
  grpc::Status s = stub->GetJob(&ctx, req, &job);
  if (!s.ok()) return c.Fail("importer", absl::StrCat("GetJob ", req.job_id()), s);
  PrintJob(c, job);
  return kExitOk;
}

int CmdCancelOrRetry(Ctx& c, bool cancel) {
  auto stub = iv1::Importer::NewStub(c.Channel("importer"));
  grpc::ClientContext ctx;
  c.Deadline(&ctx);
  const int64_t id = ParseId(c.args().positionals[0], "job ID");
  iv1::Job job;
  grpc::Status s;
  if (cancel) {
    iv1::CancelJobRequest req;
    req.set_job_id(id);
    s = stub->CancelJob(&ctx, req, &job);
  } else {
    iv1::RetryJobRequest req;
    req.set_job_id(id);
    s = stub->RetryJob(&ctx, req, &job);
  }
  if (!s.ok()) return c.Fail("importer", absl::StrCat(cancel ? "CancelJob " : "RetryJob ", id), s);
  PrintJob(c, job);
  return kExitOk;
}

int CmdLs(Ctx& c) {
  auto stub = iv1::Catalog::NewStub(c.Channel("importer"));
  grpc::ClientContext ctx;
  c.Deadline(&ctx);
  iv1::ListDirectoryRequest req;
  req.set_path(c.args().positionals.empty() ? "/" : c.args().positionals[0]);
  iv1::ListDirectoryResponse resp;
  grpc::Status s = stub->ListDirectory(&ctx, req, &resp);
  if (!s.ok()) return c.Fail("importer", absl::StrCat("ListDirectory ", req.path()), s);
  if (c.json()) {
    c.out() << ToJson(resp);
    return kExitOk;
  }
  Table t({"NAME", "SIZE", "MODIFIED", "HEALTH"});
  for (const auto& e : resp.entries()) {
    t.AddRow({e.directory() ? e.name() + "/" : e.name(), e.directory() ? "-" : HumanBytes(e.size()),
              HumanTime(e.mtime_unix() * 1000), e.directory() ? "" : HealthName(e.health())});
  }
  t.Print(c.out());
  return kExitOk;
}

int CmdStat(Ctx& c) {
  auto stub = iv1::Catalog::NewStub(c.Channel("importer"));
  grpc::ClientContext ctx;
  c.Deadline(&ctx);
  iv1::StatRequest req;
  req.set_path(c.args().positionals[0]);
  iv1::Entry e;
  grpc::Status s = stub->Stat(&ctx, req, &e);
  if (!s.ok()) return c.Fail("importer", absl::StrCat("Stat ", req.path()), s);
  if (c.json()) {
    c.out() << ToJson(e);
    return kExitOk;
  }
  Details d;
  d.Add("Path", e.path());
  d.Add("Type", e.directory() ? "directory" : "file");
  if (!e.directory()) d.Add("Size", absl::StrCat(HumanBytes(e.size()), " (", e.size(), " bytes)"));
  d.Add("Modified", HumanTime(e.mtime_unix() * 1000));
  if (!e.directory()) d.Add("Health", HealthName(e.health()));
  if (!e.etag().empty()) d.Add("ETag", e.etag());
  d.Print(c.out());
  return kExitOk;
}

int CmdRm(Ctx& c) {
  auto stub = iv1::Catalog::NewStub(c.Channel("importer"));
  grpc::ClientContext ctx;
  c.Deadline(&ctx);
  iv1::DeletePathRequest req;
  req.set_path(c.args().positionals[0]);
  if (req.path().empty() || req.path() == "/") throw UsageError("rm: refusing to delete the catalog root");
  iv1::DeletePathResponse resp;
  grpc::Status s = stub->DeletePath(&ctx, req, &resp);
  if (!s.ok()) return c.Fail("importer", absl::StrCat("DeletePath ", req.path()), s);
  if (c.json()) {
    c.out() << ToJson(resp);
  } else {
    c.out() << "deleted " << req.path() << " (" << resp.files_deleted() << " files)\n";
  }
  return kExitOk;
}

int CmdPool(Ctx& c) {
  auto stub = bv1::Broker::NewStub(c.Channel("broker"));
  grpc::ClientContext ctx;
  c.Deadline(&ctx);
  bv1::PoolStatus st;
  grpc::Status s = stub->GetPoolStatus(&ctx, bv1::GetPoolStatusRequest(), &st);
  if (!s.ok()) return c.Fail("broker", "GetPoolStatus", s);
  if (c.json()) {
    c.out() << ToJson(st);
    return kExitOk;
  }
  Table t({"PROVIDER", "ROLE", "CONNS", "BUSY", "IDLE", "DIALING", "CLOSING", "USABLE", "SLOTS", "BREAKER", "SPEED",
           "DIALS"});
  for (const auto& p : st.providers()) {
    t.AddRow({p.name(), p.backup() ? "backup" : "primary",
              absl::StrCat(p.connections_open(), "/", p.max_connections()), absl::StrCat(p.connections_busy()),
              absl::StrCat(p.connections_idle()), absl::StrCat(p.connections_dialing()),
              absl::StrCat(p.connections_closing()), absl::StrCat(p.usable_connections()),
              absl::StrCat(p.slots_in_use(), "/", p.max_connections() * p.pipeline_depth()), p.breaker_state(),
              HumanRate(p.speed_bytes_per_second() / 1e6), absl::StrCat(p.dials_total())});
  }
  t.Print(c.out());
  c.out() << "\n";
  Table classes({"CLASS", "IN FLIGHT", "QUEUED"});
  for (const auto& cl : st.classes()) {
    classes.AddRow({bv1::TrafficClass_Name(cl.traffic_class()), absl::StrCat(cl.in_flight()),
                    absl::StrCat(cl.queued())});
  }
  classes.Print(c.out());
  c.out() << "\ncapacity " << st.capacity_slots() << " slots, " << st.reserved_for_stream()
          << " reserved for playback; " << st.open_sessions() << " stream sessions; import leases "
          << st.import_leases_held() << " held, " << st.import_leases_waiting() << " waiting\n";
  return kExitOk;
}

void PrintSpeedResults(Ctx& c, const std::vector<sv1::SpeedTestResult>& results) {
  Table t({"PROVIDER", "SPEED", "TTFB P50", "TTFB P95", "BYTES", "ARTICLES", "ERRORS", "MISSING", "CONNS", "STARTED",
           "DURATION", "CACHED"});
  for (const auto& r : results) {
    t.AddRow({r.provider(), HumanRate(r.megabytes_per_second()), HumanSeconds(r.ttfb_median_seconds()),
              HumanSeconds(r.ttfb_p95_seconds()), HumanBytes(r.bytes()), absl::StrCat(r.articles()),
              absl::StrCat(r.errors()), absl::StrCat(r.missing()), absl::StrCat(r.connections_used()),
              HumanTime(r.started_unix_ms()), HumanSeconds(r.duration_seconds()), r.cached() ? "yes" : "no"});
  }
  t.Print(c.out());
}

int CmdSpeedtest(Ctx& c) {
  auto stub = sv1::SpeedTest::NewStub(c.Channel("speedtest"));
  if (c.args().Has("history")) {
    sv1::ListResultsRequest req;
    if (!c.args().positionals.empty()) req.set_provider(c.args().positionals[0]);
    if (c.args().Has("limit")) req.set_limit(static_cast<int32_t>(ParseId(c.args().Get("limit"), "--limit")));
    grpc::ClientContext ctx;
    c.Deadline(&ctx);
    sv1::ListResultsResponse resp;
    grpc::Status s = stub->ListResults(&ctx, req, &resp);
    if (!s.ok()) return c.Fail("speedtest", "ListResults", s);
    if (c.json()) {
      c.out() << ToJson(resp);
    } else {
      PrintSpeedResults(c, {resp.results().begin(), resp.results().end()});
    }
    return kExitOk;
  }
  if (c.args().positionals.empty()) throw UsageError("speedtest: PROVIDER is required (or --history)");
  sv1::RunSpeedTestRequest req;
  req.set_provider(c.args().positionals[0]);
  double secs = 0;
  if (c.args().Has("duration")) {
    absl::Duration d;
    if (!absl::ParseDuration(c.args().Get("duration"), &d) || d <= absl::ZeroDuration()) {
      throw UsageError("--duration: expected a duration such as 10s");
    }
    secs = absl::ToDoubleSeconds(d);
  }
  req.set_duration_seconds(secs);
  if (c.args().Has("bytes")) req.set_bytes(ParseId(c.args().Get("bytes"), "--bytes"));
  if (c.args().Has("connections")) {
    req.set_connections(static_cast<int32_t>(ParseId(c.args().Get("connections"), "--connections")));
  }
  req.set_force(c.args().Has("force"));
  grpc::ClientContext ctx;
  // The run itself may take up to its duration (10 s by default) on top of the call timeout.
  c.Deadline(&ctx, absl::Seconds(secs > 0 ? secs : 10));
  auto reader = stub->RunSpeedTest(&ctx, req);
  sv1::SpeedTestProgress p;
  sv1::SpeedTestResult result;
  bool final = false;
  const bool watch = c.args().Has("watch");
  while (reader->Read(&p)) {
    if (p.final()) {
      final = true;
      result = p.result();
    } else if (watch) {
      if (c.json()) {
        c.out() << ToJson(p);
      } else {
        c.err() << absl::StrFormat("%5.1fs  %10s  %s\n", p.elapsed_seconds(), HumanBytes(p.bytes()),
                                   HumanRate(p.megabytes_per_second()));
      }
    }
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return c.Fail("speedtest", absl::StrCat("RunSpeedTest ", req.provider()), s);
  if (!final) {
    c.err() << "nzbmeshctl: the speed-test service ended the run without a result\n";
    return kExitError;
  }
  if (c.json()) {
    c.out() << ToJson(result);
  } else {
    PrintSpeedResults(c, {result});
  }
  return kExitOk;
}

int CmdHealth(Ctx& c) {
  std::vector<std::string> services = c.args().positionals;
  if (services.empty()) services = {"broker", "importer", "speedtest"};
  int code = kExitOk;
  Table t({"SERVICE", "ADDRESS", "STATUS", "DETAIL"});
  std::string json = "{\n";
  for (size_t i = 0; i < services.size(); ++i) {
    const std::string& svc = services[i];
    if (svc != "broker" && svc != "importer" && svc != "speedtest") {
      throw UsageError(absl::StrCat("health: unknown service \"", svc, "\" (broker, importer, speedtest)"));
    }
    auto stub = hv1::Health::NewStub(c.Channel(svc));
    grpc::ClientContext ctx;
    c.Deadline(&ctx);
    hv1::HealthCheckResponse resp;
    grpc::Status s = stub->Check(&ctx, hv1::HealthCheckRequest(), &resp);
    std::string status, detail;
    if (!s.ok()) {
      status = s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ? "TIMEOUT" : "UNREACHABLE";
      detail = s.error_message();
      code = kExitUnavailable;
    } else {
      status = hv1::HealthCheckResponse::ServingStatus_Name(resp.status());
      if (resp.status() != hv1::HealthCheckResponse::SERVING) code = kExitUnavailable;
    }
    t.AddRow({svc, c.Address(svc), status, detail});
    absl::StrAppend(&json, "  ", JsonString(svc), ": {\"address\": ", JsonString(c.Address(svc)),
                    ", \"status\": ", JsonString(status), ", \"detail\": ", JsonString(detail), "}",
                    i + 1 < services.size() ? ",\n" : "\n");
  }
  json += "}\n";
  if (c.json()) {
    c.out() << json;
  } else {
    t.Print(c.out());
  }
  return code;
}

// --- streams (frontend HTTP admin API) ---

std::vector<std::string> Frontends(Ctx& c) {
  std::vector<std::string> urls;
  for (const auto& v : c.args().All("frontend")) {
    for (absl::string_view u : absl::StrSplit(v, ',', absl::SkipEmpty())) urls.emplace_back(u);
  }
  if (urls.empty()) {
    for (absl::string_view u : absl::StrSplit(EnvOr("NZBMESH_FRONTENDS", "http://127.0.0.1:8080"), ',',
                                              absl::SkipEmpty())) {
      urls.emplace_back(u);
    }
  }
  for (auto& u : urls) {
    while (!u.empty() && u.back() == '/') u.pop_back();
  }
  return urls;
}

std::map<std::string, std::string> ApiKeyHeader(Ctx& c) {
  const std::string env = c.args().Get("api-key-env", "NZBMESH_API_KEY");
  const std::string key = EnvOr(env.c_str(), "");
  if (key.empty()) return {};
  return {{"X-Api-Key", key}};
}

int HttpFail(Ctx& c, const std::string& url, const absl::Status& s) {
  c.err() << "nzbmeshctl: cannot reach the frontend at " << url << " (" << s.message()
          << "). Is it running? Name frontends with --frontend URL or $NZBMESH_FRONTENDS.\n";
  return ExitCodeFor(s);
}

int HttpStatusFail(Ctx& c, const std::string& url, const HttpResponse& r) {
  std::string body = r.body.substr(0, 300);
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
  c.err() << "nzbmeshctl: the frontend at " << url << " answered HTTP " << r.status << ": " << body << "\n";
  if (r.status == 401 || r.status == 403) {
    c.err() << "  (set the API key in $NZBMESH_API_KEY or the variable named by --api-key-env)\n";
    return kExitDenied;
  }
  if (r.status == 404) return kExitNotFound;
  if (r.status == 503) return kExitUnavailable;
  return kExitError;
}

std::string StructString(const google::protobuf::Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  if (it == s.fields().end()) return "";
  const auto& v = it->second;
  if (v.has_string_value()) return v.string_value();
  if (v.has_number_value()) return absl::StrCat(static_cast<int64_t>(v.number_value()));
  if (v.has_bool_value()) return v.bool_value() ? "true" : "false";
  return "";
}
double StructNumber(const google::protobuf::Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? 0 : it->second.number_value();
}

int CmdStreams(Ctx& c) {
  const auto& pos = c.args().positionals;
  if (!pos.empty() && pos[0] == "kill") {
    if (pos.size() != 2) throw UsageError("usage: nzbmeshctl streams kill ID");
    // The id is unique per frontend; ask each named frontend until one knows it.
    for (const auto& base : Frontends(c)) {
      const std::string url = absl::StrCat(base, "/api/streams/", pos[1]);
      auto r = HttpRequest("DELETE", url, ApiKeyHeader(c), c.timeout());
      if (!r.ok()) return HttpFail(c, base, r.status());
      if (r->status == 404) continue;
      if (r->status / 100 != 2) return HttpStatusFail(c, base, *r);
      if (c.json()) {
        c.out() << "{\"killed\": " << JsonString(pos[1]) << ", \"frontend\": " << JsonString(base) << "}\n";
      } else {
        c.out() << "stream " << pos[1] << " stopped on " << base << "\n";
      }
      return kExitOk;
    }
    c.err() << "nzbmeshctl: no frontend knows stream " << pos[1] << " (asked: " << absl::StrJoin(Frontends(c), ", ")
            << ")\n";
    return kExitNotFound;
  }
  if (!pos.empty()) throw UsageError(absl::StrCat("streams: unexpected argument \"", pos[0], "\""));
  Table t({"FRONTEND", "ID", "PATH", "CLIENT", "STARTED", "SENT", "RATE"});
  std::string json = "[";
  bool first = true;
  for (const auto& base : Frontends(c)) {
    const std::string url = absl::StrCat(base, "/api/streams");
    auto r = HttpRequest("GET", url, ApiKeyHeader(c), c.timeout());
    if (!r.ok()) return HttpFail(c, base, r.status());
    if (r->status != 200) return HttpStatusFail(c, base, *r);
    google::protobuf::Struct doc;
    if (!google::protobuf::util::JsonStringToMessage(r->body, &doc).ok()) {
      c.err() << "nzbmeshctl: the frontend at " << base << " answered /api/streams with something that is not JSON\n";
      return kExitError;
    }
    auto it = doc.fields().find("streams");
    if (it == doc.fields().end()) continue;
    for (const auto& v : it->second.list_value().values()) {
      const auto& s = v.struct_value();
      t.AddRow({base, StructString(s, "id"), StructString(s, "path"), StructString(s, "client"),
                HumanTime(static_cast<int64_t>(StructNumber(s, "started_unix_ms"))),
                HumanBytes(static_cast<int64_t>(StructNumber(s, "bytes_sent"))),
                HumanRate(StructNumber(s, "bytes_per_second") / 1e6)});
      std::string obj;
      google::protobuf::util::MessageToJsonString(s, &obj);
      // Tag each stream with the frontend that serves it.
      obj.insert(1, absl::StrCat("\"frontend\":", JsonString(base), obj.size() > 2 ? "," : ""));
      absl::StrAppend(&json, first ? "\n  " : ",\n  ", obj);
      first = false;
    }
  }
  if (c.json()) {
    c.out() << json << (first ? "]\n" : "\n]\n");
  } else {
    t.Print(c.out());
  }
  return kExitOk;
}

// ---------------------------------------------------------------- table

struct Command {
  std::string name;
  std::string usage;    // arguments after the name
  std::string summary;  // one line
  std::string help;     // more, may be ""
  size_t min_args, max_args;
  std::vector<FlagSpec> flags;
  std::function<int(Ctx&)> run;
};

const std::vector<Command>& Commands() {
  static const auto* commands = new std::vector<Command>{
      {"import", "FILE.nzb", "submit an NZB to the importer",
       "Prints the job id. With --wait, follows the job (progress on stderr) and prints it when it ends;\n"
       "exit code 5 when it ends FAILED or CANCELLED.",
       1, 1,
       {{"category", "C", "catalog category (first path component); default \"default\""},
        {"name", "NAME", "release name (default: from the file name)"},
        {"priority", "N", "higher runs first"},
        {"password-env", "NAME", "environment variable holding the archive password"},
        {"wait", "", "wait for the job to finish, showing progress"},
        {"poll", "DURATION", "--wait polling interval (default 1s)"}},
       CmdImport},
      {"jobs", "", "list import jobs, newest first", "", 0, 0,
       {{"state", "S", "only jobs in state S: queued, running, completed, failed, cancelled"},
        {"limit", "N", "at most N jobs (default 100)"}},
       CmdJobs},
      {"job", "ID", "show one import job", "", 1, 1, {}, CmdJob},
      {"cancel", "ID", "cancel a queued or running job", "Cancelling a finished job fails with exit code 7.", 1, 1, {},
       [](Ctx& c) { return CmdCancelOrRetry(c, true); }},
      {"retry", "ID", "requeue a failed or cancelled job", "", 1, 1, {},
       [](Ctx& c) { return CmdCancelOrRetry(c, false); }},
      {"streams", "[kill ID]", "list what is playing on the frontends, or stop one stream",
       "Frontends have no gRPC API yet: this uses each frontend's HTTP admin endpoint,\n"
       "GET /api/streams and DELETE /api/streams/ID, with the API key from $NZBMESH_API_KEY\n"
       "(header X-Api-Key). Name frontends with --frontend (repeatable) or $NZBMESH_FRONTENDS.",
       0, 2, {}, CmdStreams},
      {"ls", "[PATH]", "list a catalog directory (default /)", "", 0, 1, {}, CmdLs},
      {"stat", "PATH", "show one catalog entry", "", 1, 1, {}, CmdStat},
      {"rm", "PATH", "delete a file, release or category from the catalog (recursive)", "", 1, 1, {}, CmdRm},
      {"pool", "", "show the broker's live provider pool: connections, slots, classes, queues, breakers", "", 0, 0,
       {}, CmdPool},
      {"speedtest", "PROVIDER", "speed-test a provider through the broker (or show history)",
       "Concurrent tests of one provider share a run and results are cached for the service's\n"
       "result_ttl (the CACHED column says so); --force asks for a fresh run.",
       0, 1,
       {{"duration", "DURATION", "how long to run (default: the service's, 10s)"},
        {"bytes", "N", "stop after N bytes"},
        {"connections", "N", "concurrent fetches (default: the provider's maximum)"},
        {"force", "", "bypass the result cache"},
        {"watch", "", "show progress while the test runs (on stderr in table mode)"},
        {"history", "", "list past results (of PROVIDER, or all) instead of running"},
        {"limit", "N", "--history: at most N results (default 50)"}},
       CmdSpeedtest},
      {"health", "[SERVICE...]", "check the gRPC health of broker, importer and speedtest",
       "Exit code 4 when any service checked is unreachable or not serving.", 0, 3, {}, CmdHealth},
  };
  return *commands;
}

const Command* FindCommand(const std::string& name) {
  for (const auto& c : Commands()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

void PrintFlags(std::ostream& out, const std::vector<FlagSpec>& flags) {
  size_t w = 0;
  for (const auto& f : flags) w = std::max(w, f.name.size() + (f.value.empty() ? 0 : f.value.size() + 1));
  for (const auto& f : flags) {
    std::string lhs = f.value.empty() ? f.name : absl::StrCat(f.name, " ", f.value);
    out << "  --" << lhs << std::string(w - lhs.size() + 2, ' ') << f.help << "\n";
  }
}

void PrintMainHelp(std::ostream& out) {
  out << "nzbmeshctl: control nzbmesh over its gRPC APIs.\n\n"
         "Usage: nzbmeshctl [global flags] COMMAND [args] [flags]\n\nCommands:\n";
  size_t w = 0;
  for (const auto& c : Commands()) w = std::max(w, c.name.size() + 1 + c.usage.size());
  for (const auto& c : Commands()) {
    std::string lhs = c.usage.empty() ? c.name : absl::StrCat(c.name, " ", c.usage);
    out << "  " << lhs << std::string(w - lhs.size() + 2, ' ') << c.summary << "\n";
  }
  out << "\nGlobal flags:\n";
  PrintFlags(out, GlobalFlags());
  out << "\n" << kExitCodeHelp << "\nRun `nzbmeshctl COMMAND --help` for a command's flags.\n";
}

void PrintCommandHelp(std::ostream& out, const Command& c) {
  out << "Usage: nzbmeshctl " << c.name << (c.usage.empty() ? "" : " " + c.usage) << " [flags]\n\n"
      << c.summary << ".\n";
  if (!c.help.empty()) out << "\n" << c.help << "\n";
  if (!c.flags.empty()) {
    out << "\nFlags:\n";
    PrintFlags(out, c.flags);
  }
  out << "\nGlobal flags: see `nzbmeshctl --help`.\n";
}

const FlagSpec* FindFlag(const std::string& name, const Command* cmd) {
  for (const auto& f : GlobalFlags()) {
    if (f.name == name) return &f;
  }
  if (cmd != nullptr) {
    for (const auto& f : cmd->flags) {
      if (f.name == name) return &f;
    }
  }
  return nullptr;
}

}  // namespace

int RunCtl(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  Args args;
  const Command* cmd = nullptr;
  std::string cmd_name;
  bool help_command = false;
  try {
    for (size_t i = 0; i < argv.size(); ++i) {
      std::string a = argv[i];
      if (a == "-h") a = "--help";
      if (a == "-o") a = "--output";
      if (absl::StartsWith(a, "-o") && !absl::StartsWith(a, "--")) a = "--output=" + a.substr(2);
      if (a == "--") {
        for (++i; i < argv.size(); ++i) args.positionals.push_back(argv[i]);
        break;
      }
      if (absl::StartsWith(a, "--")) {
        std::string name = a.substr(2), value;
        const size_t eq = name.find('=');
        const bool inline_value = eq != std::string::npos;
        if (inline_value) {
          value = name.substr(eq + 1);
          name.resize(eq);
        }
        const FlagSpec* f = FindFlag(name, cmd);
        if (f == nullptr) {
          throw UsageError(cmd == nullptr ? absl::StrCat("unknown flag --", name)
                                          : absl::StrCat("unknown flag --", name, " for ", cmd->name));
        }
        if (!f->value.empty() && !inline_value) {
          if (i + 1 >= argv.size()) throw UsageError(absl::StrCat("--", name, " needs a value (", f->value, ")"));
          value = argv[++i];
        } else if (f->value.empty() && inline_value) {
          throw UsageError(absl::StrCat("--", name, " takes no value"));
        }
        args.flags[name].push_back(value);
        continue;
      }
      if (cmd == nullptr && !help_command) {
        if (a == "help") {
          help_command = true;
          continue;
        }
        cmd = FindCommand(a);
        if (cmd == nullptr) throw UsageError(absl::StrCat("unknown command \"", a, "\""));
        cmd_name = a;
        continue;
      }
      if (help_command && cmd == nullptr) {
        cmd = FindCommand(a);
        if (cmd == nullptr) throw UsageError(absl::StrCat("unknown command \"", a, "\""));
        continue;
      }
      args.positionals.push_back(a);
    }
    if (help_command || args.Has("help")) {
      if (cmd != nullptr) {
        PrintCommandHelp(out, *cmd);
      } else {
        PrintMainHelp(out);
      }
      return kExitOk;
    }
    if (cmd == nullptr) {
      PrintMainHelp(err);
      return kExitUsage;
    }
    if (args.positionals.size() < cmd->min_args || args.positionals.size() > cmd->max_args) {
      throw UsageError(absl::StrCat("usage: nzbmeshctl ", cmd->name, cmd->usage.empty() ? "" : " " + cmd->usage,
                                    " (see nzbmeshctl ", cmd->name, " --help)"));
    }
    Ctx ctx(std::move(args), out, err);
    return cmd->run(ctx);
  } catch (const UsageError& e) {
    err << "nzbmeshctl: " << e.what() << "\n";
    if (cmd == nullptr) err << "Run `nzbmeshctl --help` for the commands.\n";
    return kExitUsage;
  }
}

}  // namespace nzbmesh::ctl
