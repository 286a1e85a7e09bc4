// nzbmeshctl end to end: the real binary against a real broker (fake news
// server behind it), a real speed-test service, a small in-test Importer +
// Catalog gRPC server, and a small in-test frontend admin HTTP endpoint.
// Checks output and exit codes (services/ctl/exit_codes.h).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/metrics/metrics.h"
#include "common/service/service_main.h"
#include "nzbmesh/broker/v1/broker.grpc.pb.h"
#include "nzbmesh/importer/v1/catalog.grpc.pb.h"
#include "nzbmesh/importer/v1/importer.grpc.pb.h"
#include "services/broker/broker_service.h"
#include "services/broker/pool.h"
#include "services/speedtest/speed_tester.h"
#include "services/speedtest/speedtest_service.h"
#include "tests/fakes/nntp_server/nntp_server.h"

extern char** environ;

namespace nzbmesh::ctl {
namespace {

using ::nzbmesh::testing::FakeNntpServer;
namespace iv1 = ::nzbmesh::importer::v1;
namespace bv1 = ::nzbmesh::broker::v1;

struct Result {
  int code = -1;
  std::string out, err;
};

// Runs the real binary with `args` and extra environment; captures both streams.
Result RunCtl(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
  const std::string bin = "services/ctl/nzbmeshctl";
  std::vector<std::string> argv_s = {bin};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "NZBMESH_")) env_s.push_back(*e);  // hermetic: no inherited addresses
  }
  env_s.insert(env_s.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  int out_pipe[2], err_pipe[2];
  EXPECT_EQ(pipe(out_pipe), 0);
  EXPECT_EQ(pipe(err_pipe), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  posix_spawn_file_actions_addclose(&fa, out_pipe[0]);
  posix_spawn_file_actions_addclose(&fa, err_pipe[0]);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(out_pipe[1]);
  close(err_pipe[1]);
  Result r;
  EXPECT_EQ(rc, 0) << "cannot start " << bin;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds, 2, 60000) <= 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        sinks[i]->append(buf, n);
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// ---- In-test Importer + Catalog: jobs advance one state per GetJob.
class FakeImporter final : public iv1::Importer::Service {
 public:
  grpc::Status SubmitNzb(grpc::ServerContext*, const iv1::SubmitNzbRequest* req, iv1::SubmitNzbResponse* resp) override {
    absl::MutexLock lock(&mu_);
    if (!absl::StrContains(req->nzb(), "<nzb")) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "not an NZB");
    iv1::Job j;
    j.set_job_id(next_++);
    j.set_state(iv1::QUEUED);
    j.set_name(req->name().empty() ? req->filename() : req->name());
    j.set_category(req->category().empty() ? "default" : req->category());
    jobs_[j.job_id()] = j;
    resp->set_job_id(j.job_id());
    return grpc::Status::OK;
  }
  grpc::Status GetJob(grpc::ServerContext*, const iv1::GetJobRequest* req, iv1::Job* resp) override {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(req->job_id());
    if (it == jobs_.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("job ", req->job_id(), " not found"));
    iv1::Job& j = it->second;
    *resp = j;
    // Advance for the next poll: QUEUED → RUNNING 50 % → COMPLETED (or FAILED for "bad.nzb").
    if (j.state() == iv1::QUEUED) {
      j.set_state(iv1::RUNNING);
      j.set_progress(0.5);
    } else if (j.state() == iv1::RUNNING) {
      if (absl::StartsWith(j.name(), "bad")) {
        j.set_state(iv1::FAILED);
        j.set_failure_reason(iv1::MISSING_ARTICLES);
        j.set_message("12 of 40 articles missing");
      } else {
        j.set_state(iv1::COMPLETED);
        j.set_progress(1);
        j.set_catalog_path(absl::StrCat("/", j.category(), "/", j.name()));
      }
    }
    return grpc::Status::OK;
  }
  grpc::Status ListJobs(grpc::ServerContext*, const iv1::ListJobsRequest* req, iv1::ListJobsResponse* resp) override {
    absl::MutexLock lock(&mu_);
    for (auto it = jobs_.rbegin(); it != jobs_.rend(); ++it) {
      if (req->state() == iv1::JOB_STATE_UNSPECIFIED || req->state() == it->second.state()) *resp->add_jobs() = it->second;
    }
    return grpc::Status::OK;
  }
  grpc::Status CancelJob(grpc::ServerContext*, const iv1::CancelJobRequest* req, iv1::Job* resp) override {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(req->job_id());
    if (it == jobs_.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such job");
    if (it->second.state() == iv1::COMPLETED || it->second.state() == iv1::FAILED) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "job already finished");
    }
    it->second.set_state(iv1::CANCELLED);
    *resp = it->second;
    return grpc::Status::OK;
  }
  grpc::Status RetryJob(grpc::ServerContext*, const iv1::RetryJobRequest* req, iv1::Job* resp) override {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(req->job_id());
    if (it == jobs_.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such job");
    it->second.set_state(iv1::QUEUED);
    it->second.set_attempts(it->second.attempts() + 1);
    *resp = it->second;
    return grpc::Status::OK;
  }

 private:
  absl::Mutex mu_;
  int64_t next_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, iv1::Job> jobs_ ABSL_GUARDED_BY(mu_);
};

class FakeCatalog final : public iv1::Catalog::Service {
 public:
  grpc::Status ListDirectory(grpc::ServerContext*, const iv1::ListDirectoryRequest* req,
                             iv1::ListDirectoryResponse* resp) override {
    if (req->path() != "/movies") return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such directory");
    auto* d = resp->add_entries();
    d->set_name("Big.Buck.Bunny");
    d->set_directory(true);
    auto* f = resp->add_entries();
    f->set_name("trailer.mkv");
    f->set_size(3 * 1024 * 1024);
    f->set_health(iv1::HEALTHY);
    return grpc::Status::OK;
  }
  grpc::Status Stat(grpc::ServerContext*, const iv1::StatRequest* req, iv1::Entry* e) override {
    if (req->path() != "/movies/trailer.mkv") return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such path");
    e->set_path(req->path());
    e->set_name("trailer.mkv");
    e->set_size(3 * 1024 * 1024);
    e->set_health(iv1::DEGRADED);
    return grpc::Status::OK;
  }
  grpc::Status DeletePath(grpc::ServerContext*, const iv1::DeletePathRequest* req,
                          iv1::DeletePathResponse* resp) override {
    if (req->path() != "/movies/Big.Buck.Bunny") return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such path");
    resp->set_files_deleted(3);
    return grpc::Status::OK;
  }
};

// A TCP socket bound to a free loopback port (set in *port), not listening.
int BindLoopback(int* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

// ---- In-test frontend admin endpoint: GET /api/streams, DELETE /api/streams/s1.
class FakeFrontend {
 public:
  FakeFrontend() {
    fd_ = BindLoopback(&port_);
    listen(fd_, 16);
    thread_ = std::thread([this] { Loop(); });
  }
  ~FakeFrontend() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_); }

 private:
  void Loop() {
    while (true) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string req;
      char buf[4096];
      while (req.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = read(c, buf, sizeof(buf));
        if (n <= 0) break;
        req.append(buf, n);
      }
      std::string status = "200 OK", body;
      if (!absl::StrContains(req, "X-Api-Key: sekrit\r\n")) {
        status = "401 Unauthorized";
        body = "API key required";
      } else if (absl::StartsWith(req, "GET /api/streams ")) {
        body = R"({"streams":[{"id":"s1","path":"/dav/movies/x.mkv","client":"10.0.0.5","started_unix_ms":1700000000000,"bytes_sent":1048576,"bytes_per_second":2500000}]})";
      } else if (absl::StartsWith(req, "DELETE /api/streams/s1 ")) {
        status = "204 No Content";
      } else {
        status = "404 Not Found";
        body = "no such stream";
      }
      std::string resp = absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Length: ", body.size(),
                                      "\r\nConnection: close\r\n\r\n", body);
      (void)!write(c, resp.data(), resp.size());
      close(c);
    }
  }
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

// A loopback address where nothing listens, for as long as the object lives:
// the port stays bound (so no other process can take it, as a port released
// after bind-to-0 can be) but never listens, so a connect is refused.
class DeadAddress {
 public:
  DeadAddress() { fd_ = BindLoopback(&port_); }
  ~DeadAddress() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class NzbmeshctlTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto s = FakeNntpServer::Start({});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = s->release();
    for (int i = 0; i < 4; ++i) {
      server_->PostYencArticle(absl::StrCat("ctl-", i, "@t"), std::string(100000, 'x'), absl::StrCat("c", i, ".bin"));
    }
    broker::PoolOptions po;
    broker::ProviderOptions p;
    p.name = "main";
    p.connection.host = "127.0.0.1";
    p.connection.port = server_->port();
    p.max_connections = 3;
    p.pipeline_depth = 2;
    po.providers = {p};
    registry_ = new metrics::Registry();
    pool_ = broker::Pool::Create(po, registry_)->release();
    broker_service_ = new broker::BrokerService(pool_);
    ServiceOptions so;
    so.metrics_listen = "";
    so.name = "broker";
    broker_ = ServiceMain::Start(so, {broker_service_}, registry_)->release();

    importer_ = new FakeImporter();
    catalog_ = new FakeCatalog();
    so.name = "importer";
    importer_sm_ = ServiceMain::Start(so, {importer_, catalog_}, registry_)->release();

    broker_stub_ = bv1::Broker::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", broker_->grpc_port()),
                                                            grpc::InsecureChannelCredentials()))
                       .release();
    speedtest::SpeedTesterOptions to;
    to.message_ids["main"] = {"ctl-0@t", "ctl-1@t", "ctl-2@t", "ctl-3@t"};
    to.max_runs_per_caller = 0;
    tester_ = new speedtest::SpeedTester(to, broker_stub_, nullptr, registry_);
    speedtest_service_ = new speedtest::SpeedTestService(tester_);
    so.name = "speedtest";
    speedtest_ = ServiceMain::Start(so, {speedtest_service_}, registry_)->release();
  }
  // The servers live for the whole test binary (process exit reclaims them).

  std::vector<std::string> Addr() {
    return {"--broker", absl::StrCat("127.0.0.1:", broker_->grpc_port()), "--importer",
            absl::StrCat("127.0.0.1:", importer_sm_->grpc_port()), "--speedtest",
            absl::StrCat("127.0.0.1:", speedtest_->grpc_port())};
  }
  Result Ctl(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
    std::vector<std::string> all = Addr();
    all.insert(all.end(), args.begin(), args.end());
    return RunCtl(all, env);
  }

  static FakeNntpServer* server_;
  static metrics::Registry* registry_;
  static broker::Pool* pool_;
  static broker::BrokerService* broker_service_;
  static ServiceMain* broker_;
  static FakeImporter* importer_;
  static FakeCatalog* catalog_;
  static ServiceMain* importer_sm_;
  static bv1::Broker::Stub* broker_stub_;
  static speedtest::SpeedTester* tester_;
  static speedtest::SpeedTestService* speedtest_service_;
  static ServiceMain* speedtest_;
};

FakeNntpServer* NzbmeshctlTest::server_;
metrics::Registry* NzbmeshctlTest::registry_;
broker::Pool* NzbmeshctlTest::pool_;
broker::BrokerService* NzbmeshctlTest::broker_service_;
ServiceMain* NzbmeshctlTest::broker_;
FakeImporter* NzbmeshctlTest::importer_;
FakeCatalog* NzbmeshctlTest::catalog_;
ServiceMain* NzbmeshctlTest::importer_sm_;
bv1::Broker::Stub* NzbmeshctlTest::broker_stub_;
speedtest::SpeedTester* NzbmeshctlTest::tester_;
speedtest::SpeedTestService* NzbmeshctlTest::speedtest_service_;
ServiceMain* NzbmeshctlTest::speedtest_;

TEST_F(NzbmeshctlTest, HelpForEveryCommand) {
  Result top = RunCtl({"--help"});
  EXPECT_EQ(top.code, 0);
  EXPECT_TRUE(absl::StrContains(top.out, "Exit codes:")) << top.out;
  for (const char* cmd : {"import", "jobs", "job", "cancel", "retry", "streams", "ls", "stat", "rm", "pool",
                          "speedtest", "health"}) {
    Result r = RunCtl({cmd, "--help"});
    EXPECT_EQ(r.code, 0) << cmd << ": " << r.err;
    EXPECT_TRUE(absl::StrContains(r.out, absl::StrCat("Usage: nzbmeshctl ", cmd))) << r.out;
    Result h = RunCtl({"help", cmd});
    EXPECT_EQ(h.out, r.out);
  }
  EXPECT_TRUE(absl::StrContains(RunCtl({"streams", "--help"}).out, "GET /api/streams"));
}

TEST_F(NzbmeshctlTest, UsageErrorsExitTwo) {
  Result none = RunCtl({});
  EXPECT_EQ(none.code, 2);
  Result unknown = RunCtl({"frobnicate"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_TRUE(absl::StrContains(unknown.err, "unknown command \"frobnicate\"")) << unknown.err;
  Result flag = RunCtl({"pool", "--wait"});
  EXPECT_EQ(flag.code, 2);
  EXPECT_TRUE(absl::StrContains(flag.err, "unknown flag --wait for pool")) << flag.err;
  EXPECT_EQ(RunCtl({"job"}).code, 2);
  EXPECT_EQ(RunCtl({"job", "abc"}).code, 2);
  Result out = RunCtl({"-o", "yaml", "pool"});
  EXPECT_EQ(out.code, 2);
  EXPECT_TRUE(absl::StrContains(out.err, "--output must be table or json")) << out.err;
  EXPECT_EQ(RunCtl({"--timeout", "soon", "pool"}).code, 2);
}

TEST_F(NzbmeshctlTest, PoolShowsTheProviderTableAndJson) {
  Result r = Ctl({"pool"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(absl::StartsWith(r.out, "PROVIDER  ROLE")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "\nmain      primary")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "SPEEDTEST")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "capacity 6 slots")) << r.out;
  Result j = Ctl({"pool", "--output=json"});
  ASSERT_EQ(j.code, 0) << j.err;
  EXPECT_TRUE(absl::StrContains(j.out, "\"name\": \"main\"")) << j.out;
  EXPECT_TRUE(absl::StrContains(j.out, "\"max_connections\": 3")) << j.out;
}

TEST_F(NzbmeshctlTest, ServiceDownExitsFourNamingServiceAndAddress) {
  DeadAddress nothing_listens;
  const std::string dead = absl::StrCat("127.0.0.1:", nothing_listens.port());
  Result r = RunCtl({"--broker", dead, "pool"});
  EXPECT_EQ(r.code, 4);
  EXPECT_TRUE(absl::StrContains(r.err, absl::StrCat("cannot reach the broker at ", dead))) << r.err;
  EXPECT_TRUE(r.out.empty());
  // Environment overrides are honoured too.
  Result e = RunCtl({"jobs"}, {absl::StrCat("NZBMESH_IMPORTER=", dead)});
  EXPECT_EQ(e.code, 4);
  EXPECT_TRUE(absl::StrContains(e.err, absl::StrCat("importer at ", dead))) << e.err;
}

TEST_F(NzbmeshctlTest, HealthChecksEachService) {
  Result ok = Ctl({"health"});
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_TRUE(absl::StrContains(ok.out, "broker")) << ok.out;
  EXPECT_EQ(absl::StrContains(ok.out, "UNREACHABLE"), false) << ok.out;
  DeadAddress nothing_listens;
  const std::string dead = absl::StrCat("127.0.0.1:", nothing_listens.port());
  std::vector<std::string> args = Addr();
  args[5] = dead;  // --speedtest
  args.push_back("health");
  Result down = RunCtl(args);
  EXPECT_EQ(down.code, 4);
  EXPECT_TRUE(absl::StrContains(down.out, absl::StrCat("speedtest  ", dead, "  UNREACHABLE"))) << down.out;
  args.insert(args.end(), {"-o", "json"});
  Result j = RunCtl(args);
  EXPECT_TRUE(absl::StrContains(j.out, "\"broker\": {\"address\"")) << j.out;
  EXPECT_TRUE(absl::StrContains(j.out, "\"status\": \"SERVING\"")) << j.out;
}

TEST_F(NzbmeshctlTest, ImportWaitFollowsTheJobAndExitCodesTellTheOutcome) {
  const std::string good = absl::StrCat(::testing::TempDir(), "/good.nzb");
  const std::string bad = absl::StrCat(::testing::TempDir(), "/bad.nzb");
  std::ofstream(good) << "<nzb></nzb>";
  std::ofstream(bad) << "<nzb></nzb>";
  Result r = Ctl({"import", good, "--category", "movies", "--wait", "--poll", "10ms"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "RUNNING 50%")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "COMPLETED")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "/movies/good.nzb")) << r.out;
  Result f = Ctl({"import", bad, "--wait", "--poll", "10ms"});
  EXPECT_EQ(f.code, 5) << f.err;
  EXPECT_TRUE(absl::StrContains(f.out, "MISSING_ARTICLES")) << f.out;
  Result q = Ctl({"import", good, "-o", "json"});
  ASSERT_EQ(q.code, 0) << q.err;
  EXPECT_TRUE(absl::StrContains(q.out, "\"job_id\": \"3\"")) << q.out;  // int64 is a JSON string
  Result missing = Ctl({"import", "/nonexistent.nzb"});
  EXPECT_EQ(missing.code, 3);
}

TEST_F(NzbmeshctlTest, JobsJobCancelRetryAndTheirErrors) {
  const std::string nzb = absl::StrCat(::testing::TempDir(), "/jobs.nzb");
  std::ofstream(nzb) << "<nzb></nzb>";
  ASSERT_EQ(Ctl({"import", nzb, "--wait", "--poll", "1ms"}).code, 0);
  Result list = Ctl({"jobs", "--state", "completed"});
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_TRUE(absl::StartsWith(list.out, "ID  STATE      PROGRESS")) << list.out;
  EXPECT_TRUE(absl::StrContains(list.out, "jobs.nzb")) << list.out;
  EXPECT_EQ(Ctl({"jobs", "--state", "sideways"}).code, 2);
  Result nf = Ctl({"job", "999"});
  EXPECT_EQ(nf.code, 3);
  EXPECT_TRUE(absl::StrContains(nf.err, "NOT_FOUND: job 999 not found")) << nf.err;
  // The job just imported is COMPLETED: cancelling it is a conflict.
  Result jobs_json = Ctl({"jobs", "-o", "json"});
  ASSERT_EQ(jobs_json.code, 0);
  Result conflict = Ctl({"cancel", "1"});
  EXPECT_EQ(conflict.code, 7) << conflict.err;
  Result retry = Ctl({"retry", "1"});
  EXPECT_EQ(retry.code, 0) << retry.err;
  EXPECT_TRUE(absl::StrContains(retry.out, "State:")) << retry.out;
}

TEST_F(NzbmeshctlTest, CatalogLsStatRm) {
  Result ls = Ctl({"ls", "/movies"});
  ASSERT_EQ(ls.code, 0) << ls.err;
  EXPECT_TRUE(absl::StrContains(ls.out, "Big.Buck.Bunny/")) << ls.out;
  EXPECT_TRUE(absl::StrContains(ls.out, "trailer.mkv      3.0 MiB  -         HEALTHY")) << ls.out;
  Result st = Ctl({"stat", "/movies/trailer.mkv"});
  ASSERT_EQ(st.code, 0) << st.err;
  EXPECT_TRUE(absl::StrContains(st.out, "Health:   DEGRADED")) << st.out;
  EXPECT_EQ(Ctl({"stat", "/nope"}).code, 3);
  Result rm = Ctl({"rm", "/movies/Big.Buck.Bunny"});
  ASSERT_EQ(rm.code, 0) << rm.err;
  EXPECT_TRUE(absl::StrContains(rm.out, "3 files")) << rm.out;
  EXPECT_EQ(Ctl({"rm", "/"}).code, 2);
}

TEST_F(NzbmeshctlTest, SpeedtestRunsThroughTheServiceAndTheBroker) {
  Result r = Ctl({"speedtest", "main", "--bytes", "400000", "--connections", "2", "--watch"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(absl::StartsWith(r.out, "PROVIDER  SPEED")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "MB/s")) << r.out;
  Result cached = Ctl({"speedtest", "main", "-o", "json"});
  ASSERT_EQ(cached.code, 0) << cached.err;
  EXPECT_TRUE(absl::StrContains(cached.out, "\"cached\": true")) << cached.out;
  Result ghost = Ctl({"speedtest", "ghost"});
  EXPECT_EQ(ghost.code, 7) << ghost.err;  // FAILED_PRECONDITION: no test articles configured for it
  EXPECT_TRUE(absl::StrContains(ghost.err, "no test articles configured for provider \"ghost\"")) << ghost.err;
}

TEST_F(NzbmeshctlTest, StreamsListAndKillThroughTheFrontendAdminApi) {
  FakeFrontend fe;
  Result noauth = Ctl({"streams", "--frontend", fe.url()});
  EXPECT_EQ(noauth.code, 6) << noauth.err;
  EXPECT_TRUE(absl::StrContains(noauth.err, "NZBMESH_API_KEY")) << noauth.err;
  Result list = Ctl({"streams", "--frontend", fe.url()}, {"NZBMESH_API_KEY=sekrit"});
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_TRUE(absl::StrContains(list.out, "s1  /dav/movies/x.mkv  10.0.0.5")) << list.out;
  Result json = Ctl({"streams", "--frontend", fe.url(), "-o", "json"}, {"NZBMESH_API_KEY=sekrit"});
  ASSERT_EQ(json.code, 0) << json.err;
  EXPECT_TRUE(absl::StrContains(json.out, absl::StrCat("\"frontend\":\"", fe.url(), "\""))) << json.out;
  Result kill = Ctl({"streams", "kill", "s1", "--frontend", fe.url()}, {"NZBMESH_API_KEY=sekrit"});
  EXPECT_EQ(kill.code, 0) << kill.err;
  Result gone = Ctl({"streams", "kill", "s9", "--frontend", fe.url()}, {"NZBMESH_API_KEY=sekrit"});
  EXPECT_EQ(gone.code, 3) << gone.err;
  DeadAddress nothing_listens;
  const std::string dead = absl::StrCat("http://127.0.0.1:", nothing_listens.port());
  Result down = Ctl({"streams", "--frontend", dead}, {"NZBMESH_API_KEY=sekrit"});
  EXPECT_EQ(down.code, 4);
  EXPECT_TRUE(absl::StrContains(down.err, absl::StrCat("frontend at ", dead))) << down.err;
}

}  // namespace
}  // namespace nzbmesh::ctl
