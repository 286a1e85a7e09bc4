// Fixture for importer tests above the store: a real broker (Pool +
// BrokerService on a loopback gRPC server) over a fault-injecting
// FakeNntpServer, a fresh PostgreSQL database, and helpers to run importer
// instances in this process (each with its own Store connections and broker
// channel) or as separate importer processes. Tests wait on conditions with
// deadlines; none sleeps to wait for something to happen.
#ifndef NZBMESH_TESTS_SERVICES_IMPORTER_IMPORTER_FIXTURE_H_
#define NZBMESH_TESTS_SERVICES_IMPORTER_IMPORTER_FIXTURE_H_

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc/credentials.h"
#include "common/metrics/metrics.h"
#include "common/service/service_main.h"
#include "services/broker/broker_service.h"
#include "services/broker/pool.h"
#include "services/importer/broker_client.h"
#include "services/importer/cancel_watcher.h"
#include "services/importer/importer_metrics.h"
#include "services/importer/job_queue.h"
#include "services/importer/pipeline.h"
#include "services/importer/store.h"
#include "services/importer/worker.h"
#include "tests/fakes/nntp_server/nntp_server.h"
#include "tests/services/importer/pg_fixture.h"

extern char** environ;

namespace nzbmesh::importer::testing {

using ::nzbmesh::testing::FakeNntpServer;
using ::nzbmesh::testing::MakeNzb;
using ::nzbmesh::testing::NzbOptions;

inline std::string Sha256(absl::string_view data) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(d), sizeof(d)));
}

inline std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Polls `cond` until true or `timeout`; a condition with a deadline.
inline bool WaitUntil(const std::function<bool()>& cond, absl::Duration timeout = absl::Seconds(30)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (cond()) return true;
    absl::SleepFor(absl::Milliseconds(5));  // polling a condition with a deadline
  }
  return cond();
}

// One importer "process" living in the test process: its own Store (and so
// its own database connections), broker channel, pipeline and workers.
struct ImporterInstance {
  std::unique_ptr<Store> store;
  std::unique_ptr<BrokerClient> broker;
  std::unique_ptr<metrics::Registry> registry;
  std::unique_ptr<ImporterMetrics> metrics;
  std::unique_ptr<JobQueue> queue;
  std::unique_ptr<ImportPipeline> pipeline;
  std::unique_ptr<WorkerPool> workers;
  std::unique_ptr<CancelWatcher> cancels;  // destroyed before `workers`
  ~ImporterInstance() {
    if (workers) workers->Stop();
  }
};

// A separate importer process (//services/importer:importer).
class ImporterProcess {
 public:
  ImporterProcess(const std::string& name, const std::string& config_yaml, const std::string& db_url) {
    const char* tmp = std::getenv("TEST_TMPDIR");
    const std::string dir = tmp ? tmp : "/tmp";
    config_path_ = absl::StrCat(dir, "/", name, ".yaml");
    log_path_ = absl::StrCat(dir, "/", name, ".log");
    std::ofstream(config_path_) << config_yaml;
    const char* srcdir = std::getenv("TEST_SRCDIR");
    const char* ws = std::getenv("TEST_WORKSPACE");
    const std::string binary =
        absl::StrCat(srcdir ? srcdir : ".", "/", ws ? ws : "nzbmesh", "/services/importer/importer");
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    env.push_back("NZBMESH_DATABASE_URL=" + db_url);
    std::vector<std::string> args = {binary, "--config=" + config_path_};
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawn(&pid_, binary.c_str(), &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      ADD_FAILURE() << "cannot start " << binary << ": " << strerror(rc);
      pid_ = -1;
    }
  }
  ~ImporterProcess() { Terminate(); }

  void Kill9() { Signal(SIGKILL); }
  // SIGTERM and wait.
  void Terminate() { Signal(SIGTERM); }
  // SIGTERM, wait, and return the waitpid status (-1 when not running).
  int TerminateAndWait() { return Signal(SIGTERM); }
  pid_t pid() const { return pid_; }
  std::string Log() const {
    std::ifstream in(log_path_);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

 private:
  int Signal(int sig) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  pid_t pid_ = -1;
  std::string config_path_, log_path_;
};

class ImporterFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = TestDatabase::Create();
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    auto store = db_->OpenStore();
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto nntp = FakeNntpServer::Start({});
    ASSERT_TRUE(nntp.ok()) << nntp.status();
    nntp_ = std::move(*nntp);
    StartBroker();
  }

  void TearDown() override {
    instances_.clear();
    processes_.clear();
    if (broker_service_) broker_service_->EndLongLivedCalls();
    if (broker_main_) broker_main_->Shutdown(absl::Seconds(1));
    if (pool_) pool_->Shutdown();
    if (nntp_) nntp_->Stop();
  }

  // The broker: one provider (the fake server), generous capacity so the
  // importer's own bounds are what tests observe.
  void StartBroker(int max_imports = 16) {
    broker::PoolOptions o;
    broker::ProviderOptions p;
    p.name = "fake";
    p.connection.host = "127.0.0.1";
    p.connection.port = nntp_->port();
    p.connection.first_byte_timeout = absl::Seconds(10);
    p.connection.stall_timeout = absl::Seconds(10);
    p.max_connections = 20;
    p.pipeline_depth = 2;
    o.providers.push_back(p);
    o.max_concurrent_imports = max_imports;
    o.max_concurrent_imports_while_streaming = max_imports;
    o.random_seed = 42;
    TuneBroker(o);
    auto pool = broker::Pool::Create(o, &broker_registry_);
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = std::move(*pool);
    broker_service_ = std::make_unique<broker::BrokerService>(pool_.get());
    ServiceOptions so;
    so.name = "broker";
    so.grpc_listen = "127.0.0.1:0";
    so.metrics_listen = "";
    auto sm = ServiceMain::Start(so, {broker_service_.get()}, &broker_registry_);
    ASSERT_TRUE(sm.ok()) << sm.status();
    broker_main_ = std::move(*sm);
    broker_target_ = absl::StrCat("127.0.0.1:", broker_main_->grpc_port());
  }

  // Lets a test change the broker's options before it starts (SetUp).
  virtual void TuneBroker(broker::PoolOptions& /*options*/) {}

  std::unique_ptr<BrokerClient> NewBrokerClient() {
    auto ch = MakeChannel(broker_target_, {});
    EXPECT_TRUE(ch.ok()) << ch.status();
    return MakeGrpcBrokerClient(*ch);
  }

  static WorkerOptions FastWorkers(const std::string& owner, int workers = 2) {
    WorkerOptions w;
    w.workers = workers;
    w.owner = owner;
    w.heartbeat_interval = absl::Milliseconds(100);
    w.heartbeat_timeout = absl::Seconds(2);
    w.poll_interval = absl::Milliseconds(20);
    w.retry_backoff = absl::ZeroDuration();
    w.broker_retry_delay = absl::Milliseconds(50);
    return w;
  }

  // FastWorkers whose heartbeat comes only after 30 s: a cancel that stops
  // such a worker sooner reached it some other way.
  static WorkerOptions SlowHeartbeatWorkers(const std::string& owner, int workers = 1) {
    WorkerOptions w = FastWorkers(owner, workers);
    w.heartbeat_interval = absl::Seconds(30);
    w.heartbeat_timeout = absl::Seconds(90);
    return w;
  }

  // Starts an in-process importer instance (workers running).
  ImporterInstance* StartInstance(WorkerOptions w, PipelineOptions p = {}, bool start = true) {
    auto in = std::make_unique<ImporterInstance>();
    Store::Options so;
    so.max_connections = 2 * w.workers + 2;
    auto store = db_->OpenStore(so);
    EXPECT_TRUE(store.ok()) << store.status();
    in->store = std::move(*store);
    in->broker = NewBrokerClient();
    in->registry = std::make_unique<metrics::Registry>();
    in->metrics = std::make_unique<ImporterMetrics>(*in->registry);
    in->queue = std::make_unique<JobQueue>(in->store.get(), JobQueue::Options{}, in->metrics.get());
    in->pipeline = std::make_unique<ImportPipeline>(in->broker.get(), p, in->metrics.get());
    in->workers = std::make_unique<WorkerPool>(in->store.get(), in->broker.get(), in->pipeline.get(), w,
                                               in->metrics.get());
    WorkerPool* wp = in->workers.get();
    in->queue->AddListener([wp] { wp->Wake(); });
    in->queue->AddCancelListener([wp](int64_t id) { wp->CancelRunning(id); });
    // As main() does: cancels any instance takes reach this one's workers.
    in->cancels = std::make_unique<CancelWatcher>(CancelWatcher::Options{db_->url()},
                                                  [wp](int64_t id) { wp->CancelRunning(id); }, in->metrics.get());
    EXPECT_TRUE(in->cancels->WaitListening(absl::Seconds(10)));
    if (start) in->workers->Start();
    instances_.push_back(std::move(in));
    return instances_.back().get();
  }

  // YAML for an importer process against this fixture's broker.
  std::string ProcessConfig(const std::string& owner, int workers, int fan_out = 4) const {
    return absl::StrCat("importer:\n  grpc_listen: 127.0.0.1:0\n  metrics_listen: \"\"\n  broker: ", broker_target_,
                        "\n  database_url_env: NZBMESH_DATABASE_URL\n  workers: ", workers,
                        "\n  import_fetch_concurrency: ", fan_out,
                        "\n  heartbeat_interval: 100ms\n  heartbeat_timeout: 1s\n  poll_interval: 20ms\n"
                        "  retry_backoff: 0s\n  broker_retry_delay: 50ms\n  owner: ",
                        owner, "\n");
  }
  ImporterProcess* StartProcess(const std::string& owner, int workers, int fan_out = 4) {
    processes_.push_back(std::make_unique<ImporterProcess>(owner, ProcessConfig(owner, workers, fan_out), db_->url()));
    return processes_.back().get();
  }

  // Posts `size` random bytes as a multi-part file.
  FakeNntpServer::PostedFile Post(const std::string& name, size_t size, int64_t part_size,
                                  const std::string& prefix) {
    std::string data = RandomBytes(size, std::hash<std::string>()(prefix));
    contents_[prefix] = data;
    return nntp_->PostFile(name, data, part_size, prefix);
  }

  // Submits through the store's queue (what SubmitNzb does).
  SubmitResult Submit(const std::string& nzb, const std::string& filename, const std::string& category = "tv",
                      int priority = 0) {
    JobQueue q(store_.get(), JobQueue::Options{}, nullptr);
    Submission s;
    s.nzb = nzb;
    s.filename = filename;
    s.category = category;
    s.priority = priority;
    auto r = q.Submit(s);
    EXPECT_TRUE(r.ok()) << r.status();
    for (auto& in : instances_) in->workers->Wake();
    return r.ok() ? *r : SubmitResult{};
  }

  // Waits until the job is completed, failed or cancelled.
  JobRecord WaitFinished(int64_t job_id, absl::Duration timeout = absl::Seconds(60)) {
    JobRecord last;
    const bool ok = WaitUntil(
        [&] {
          auto j = store_->GetJob(job_id);
          if (!j.ok()) return false;
          last = *j;
          return last.state == JobState::kCompleted || last.state == JobState::kFailed ||
                 last.state == JobState::kCancelled;
        },
        timeout);
    EXPECT_TRUE(ok) << "job " << job_id << " still " << JobStateName(last.state) << ": " << last.message;
    return last;
  }

  // The decoded bytes of a catalog file, fetched through the broker.
  std::string ReadThroughBroker(const FileLayoutRecord& l) {
    auto client = NewBrokerClient();
    auto fetch = [&](const std::string& id) {
      auto seg = client->FetchSegment(id, nzbmesh::broker::v1::STREAM, absl::Now() + absl::Seconds(30), nullptr);
      EXPECT_TRUE(seg.ok()) << id << ": " << seg.status();
      return seg.ok() ? seg->data : std::string();
    };
    std::string out;
    if (l.extents.empty()) {
      for (const auto& s : l.segments) {
        std::string d = fetch(s.message_id);
        EXPECT_EQ(static_cast<int64_t>(d.size()), s.size) << s.message_id;
        out += d;
      }
      return out;
    }
    std::vector<std::string> volumes;
    for (const auto& v : l.volumes) {
      std::string vb;
      for (const auto& s : v.segments) vb += fetch(s.message_id);
      volumes.push_back(vb);
    }
    for (const auto& e : l.extents) out += volumes[e.volume].substr(e.volume_offset, e.length);
    return out;
  }

  std::unique_ptr<TestDatabase> db_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<FakeNntpServer> nntp_;
  metrics::Registry broker_registry_;
  std::unique_ptr<broker::Pool> pool_;
  std::unique_ptr<broker::BrokerService> broker_service_;
  std::unique_ptr<ServiceMain> broker_main_;
  std::string broker_target_;
  std::map<std::string, std::string> contents_;  // by message-id prefix
  std::vector<std::unique_ptr<ImporterInstance>> instances_;
  std::vector<std::unique_ptr<ImporterProcess>> processes_;
};

}  // namespace nzbmesh::importer::testing

#endif  // NZBMESH_TESTS_SERVICES_IMPORTER_IMPORTER_FIXTURE_H_
