#include "services/broker/pool.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log/log.h"

namespace nzbmesh::broker {

const char* ClassName(TrafficClass c) {
  switch (c) {
    case TrafficClass::kStream: return "stream";
    case TrafficClass::kProbe: return "probe";
    case TrafficClass::kImport: return "import";
    case TrafficClass::kHealth: return "health";
    case TrafficClass::kSpeedTest: return "speedtest";
  }
  return "unknown";
}

namespace {
constexpr int kBreakerWindow = 20;
enum Result { kOk, kMissing, kError, kTimeout, kCancelled, kNumResults };
const char* ResultName(int r) {
  static const char* names[] = {"ok", "missing", "error", "timeout", "cancelled"};
  return names[r];
}
enum class Breaker { kClosed, kOpen, kHalfOpen };
const char* BreakerName(Breaker b) {
  return b == Breaker::kClosed ? "closed" : b == Breaker::kOpen ? "open" : "half_open";
}
}  // namespace

struct Pool::Metrics {
  metrics::Family<metrics::Counter>* commands;
  metrics::Family<metrics::Counter>* dials;
  metrics::Family<metrics::Counter>* dial_failures;
  metrics::Family<metrics::Counter>* decoded_bytes;
  metrics::Family<metrics::Counter>* retries;
  metrics::Family<metrics::Counter>* crc_mismatches;
  metrics::Family<metrics::Counter>* throttle_events;
  metrics::Family<metrics::Gauge>* connections;
  metrics::Family<metrics::Gauge>* max_connections;
  metrics::Family<metrics::Gauge>* breaker_state;
  metrics::Family<metrics::Gauge>* queue_depth;
  metrics::Family<metrics::Gauge>* slots_in_use;
  metrics::Gauge* sessions;
  metrics::Family<metrics::Gauge>* leases;
  metrics::Histogram* queue_wait[kNumClasses];
  metrics::Histogram* ttfb[kNumClasses];
  metrics::Counter* rejected[kNumClasses];
};

// Per-provider state. Guarded by Pool::mu_.
struct Pool::Provider {
  ProviderOptions o;
  int index = 0;
  bool removed = false;
  int usable = 0;                  // connections allowed now (≤ max_connections)
  int conns_total = 0;             // dialing + open + closing: never > max_connections (B1)
  int dialing = 0, closing = 0;
  std::vector<std::shared_ptr<Conn>> conns;   // open
  std::deque<std::shared_ptr<FetchOp>> work;  // assigned, waiting for a connection
  int64_t slots_used = 0;          // BODY slots
  int64_t stat_used = 0;           // STAT slots (stat_pipeline_depth per connection)
  Breaker breaker = Breaker::kClosed;
  std::deque<bool> outcomes;       // last breaker_window outcomes; true = failure
  absl::Duration open_time;
  bool probe_in_flight = false;
  bool throttled = false;
  double speed_ewma = 0;           // bytes per second
  double reply_seconds_ewma = 0;   // time to read one reply (≈ time to first byte for small ones)
  int64_t dials = 0, commands = 0;
  int next_conn_id = 1;
  // Metric handles.
  metrics::Counter* commands_by[kNumClasses][kNumResults] = {};
  metrics::Counter* dials_c = nullptr;
  metrics::Counter* dial_failures_c = nullptr;
  metrics::Counter* bytes_c = nullptr;
  metrics::Counter* retries_c = nullptr;
  metrics::Counter* crc_c = nullptr;
  metrics::Counter* throttle_c = nullptr;

  int64_t SlotCapacity() const { return removed ? 0 : static_cast<int64_t>(usable) * o.pipeline_depth; }
  int Depth(bool stat) const { return stat ? o.stat_pipeline_depth : o.pipeline_depth; }
  int64_t Capacity(bool stat) const { return removed ? 0 : static_cast<int64_t>(usable) * Depth(stat); }
  int64_t Used(bool stat) const { return stat ? stat_used : slots_used; }
  int64_t Free(bool stat) const { return Capacity(stat) - Used(stat); }
};

// One NNTP connection; its thread owns the socket. Guarded by Pool::mu_.
struct Pool::Conn {
  int id = 0;
  std::deque<std::shared_ptr<FetchOp>> mine;  // assigned to this connection, not sent
  int in_flight = 0;                          // BODY sent, reply not read
  int stat_in_flight = 0;                     // STAT sent, reply not read
  absl::Time last_used;
  bool stop = false;
  nntp::Connection* nntp = nullptr;           // while open, for Interrupt() and Wake()
  // Set (with Wake()) when work is put in `mine` while a reply is read: the
  // reading thread's send hook then sends it at once (B15). Lets the hook
  // skip the pool's lock on every read when there is nothing new.
  std::atomic<bool> woken{false};
  int load() const { return in_flight + stat_in_flight + static_cast<int>(mine.size()); }
  // Commands of one kind (BODY or STAT) sent or assigned to this connection.
  int load(bool stat) const {
    int n = stat ? stat_in_flight : in_flight;
    for (const auto& op : mine) n += op->req.stat_only == stat ? 1 : 0;
    return n;
  }
};

void FetchOp::Cancel() {
  if (pool != nullptr) pool->CancelOp(this);
}

absl::StatusOr<std::unique_ptr<Pool>> Pool::Create(const PoolOptions& options, metrics::Registry* registry) {
  std::set<std::string> names;
  for (const auto& p : options.providers) {
    if (p.name.empty()) return absl::InvalidArgumentError("every provider needs a name");
    if (!names.insert(p.name).second) return absl::InvalidArgumentError(absl::StrCat("duplicate provider name ", p.name));
    if (p.max_connections < 1) return absl::InvalidArgumentError(absl::StrCat("provider ", p.name, ": max_connections must be >= 1"));
    if (p.pipeline_depth < 1 || p.stat_pipeline_depth < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("provider ", p.name, ": pipeline_depth and stat_pipeline_depth must be >= 1"));
    }
    if (p.connection.host.empty()) return absl::InvalidArgumentError(absl::StrCat("provider ", p.name, ": host is empty"));
  }
  if (options.retry_delay_max < options.retry_delay_min) return absl::InvalidArgumentError("retry_delay_max < retry_delay_min");
  return std::unique_ptr<Pool>(new Pool(options, registry));
}

Pool::Pool(const PoolOptions& options, metrics::Registry* registry)
    : options_(options), clock_(options.clock), metrics_(std::make_unique<Metrics>()) {
  static metrics::Registry* fallback = new metrics::Registry();
  metrics::Registry& reg = registry != nullptr ? *registry : *fallback;
  Metrics& m = *metrics_;
  m.commands = &metrics::BuildCounter().Name("nzbmesh_broker_commands_total")
                    .Help("NNTP article commands by provider, traffic class and result.").Register(reg);
  m.dials = &metrics::BuildCounter().Name("nzbmesh_broker_dials_total").Help("Connections dialled.").Register(reg);
  m.dial_failures = &metrics::BuildCounter().Name("nzbmesh_broker_dial_failures_total").Help("Dials that failed.").Register(reg);
  m.decoded_bytes = &metrics::BuildCounter().Name("nzbmesh_broker_decoded_bytes_total").Help("Decoded article bytes.").Register(reg);
  m.retries = &metrics::BuildCounter().Name("nzbmesh_broker_retries_total").Help("Attempts after the first.").Register(reg);
  m.crc_mismatches = &metrics::BuildCounter().Name("nzbmesh_broker_crc_mismatches_total").Help("yEnc CRC mismatches (DATA_LOSS).").Register(reg);
  m.throttle_events = &metrics::BuildCounter().Name("nzbmesh_broker_throttle_events_total")
                           .Help("Provider answered 'too many connections'; usable connections lowered.").Register(reg);
  m.connections = &metrics::BuildGauge().Name("nzbmesh_broker_connections").Help("Connections by provider and state.").Register(reg);
  m.max_connections = &metrics::BuildGauge().Name("nzbmesh_broker_max_connections").Help("Configured max_connections.").Register(reg);
  m.breaker_state = &metrics::BuildGauge().Name("nzbmesh_broker_breaker_state").Help("0 closed, 1 half_open, 2 open.").Register(reg);
  m.queue_depth = &metrics::BuildGauge().Name("nzbmesh_broker_queue_depth").Help("Requests waiting, by class.").Register(reg);
  m.slots_in_use = &metrics::BuildGauge().Name("nzbmesh_broker_slots_in_use").Help("Pipeline slots held, by class.").Register(reg);
  m.sessions = &metrics::BuildGauge().Name("nzbmesh_broker_stream_sessions").Help("Open stream sessions.").Register(reg).Add({});
  m.leases = &metrics::BuildGauge().Name("nzbmesh_broker_import_leases").Help("Import leases held and waiting.").Register(reg);
  auto& qw = metrics::BuildHistogram().Name("nzbmesh_broker_queue_wait_seconds").Help("Time from request to dispatch.").Register(reg);
  auto& tt = metrics::BuildHistogram().Name("nzbmesh_broker_ttfb_seconds").Help("Time from request to complete article.").Register(reg);
  auto& rej = metrics::BuildCounter().Name("nzbmesh_broker_rejected_total").Help("Requests refused because the class queue was full.").Register(reg);
  for (int c = 0; c < kNumClasses; ++c) {
    const char* cls = ClassName(static_cast<TrafficClass>(c));
    m.queue_wait[c] = &qw.Add({{"class", cls}}, metrics::LatencyBuckets());
    m.ttfb[c] = &tt.Add({{"class", cls}}, metrics::LatencyBuckets());
    m.rejected[c] = &rej.Add({{"class", cls}});
  }
  rng_.seed(options.random_seed != 0 ? options.random_seed : static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())));
  {
    Locked lock(this);
    for (const auto& p : options.providers) providers_.push_back(MakeProvider(p));
  }
  timer_thread_ = std::thread([this] { TimerMain(); });
  reg.AddCollectCallback([this] {
    PoolStatusView s = Status();
    Metrics& m = *metrics_;
    for (const auto& p : s.providers) {
      m.connections->Add({{"provider", p.name}, {"state", "open"}}).Set(p.open);
      m.connections->Add({{"provider", p.name}, {"state", "busy"}}).Set(p.busy);
      m.connections->Add({{"provider", p.name}, {"state", "idle"}}).Set(p.idle);
      m.connections->Add({{"provider", p.name}, {"state", "dialing"}}).Set(p.dialing);
      m.connections->Add({{"provider", p.name}, {"state", "closing"}}).Set(p.closing);
      m.max_connections->Add({{"provider", p.name}}).Set(p.max_connections);
      m.breaker_state->Add({{"provider", p.name}}).Set(p.breaker == "closed" ? 0 : p.breaker == "half_open" ? 1 : 2);
    }
    for (int c = 0; c < kNumClasses; ++c) {
      m.queue_depth->Add({{"class", ClassName(static_cast<TrafficClass>(c))}}).Set(static_cast<double>(s.queued[c]));
      m.slots_in_use->Add({{"class", ClassName(static_cast<TrafficClass>(c))}}).Set(static_cast<double>(s.in_flight[c]));
    }
    m.sessions->Set(s.open_sessions);
    m.leases->Add({{"state", "held"}}).Set(s.leases_held);
    m.leases->Add({{"state", "waiting"}}).Set(s.leases_waiting);
  });
}

std::unique_ptr<Pool::Provider> Pool::MakeProvider(const ProviderOptions& o) {
  auto p = std::make_unique<Provider>();
  p->o = o;
  p->usable = o.max_connections;
  p->open_time = options_.breaker_open_time;
  Metrics& m = *metrics_;
  for (int c = 0; c < kNumClasses; ++c) {
    for (int r = 0; r < kNumResults; ++r) {
      p->commands_by[c][r] = &m.commands->Add(
          {{"provider", o.name}, {"class", ClassName(static_cast<TrafficClass>(c))}, {"result", ResultName(r)}});
    }
  }
  p->dials_c = &m.dials->Add({{"provider", o.name}});
  p->dial_failures_c = &m.dial_failures->Add({{"provider", o.name}});
  p->bytes_c = &m.decoded_bytes->Add({{"provider", o.name}});
  p->retries_c = &m.retries->Add({{"provider", o.name}});
  p->crc_c = &m.crc_mismatches->Add({{"provider", o.name}});
  p->throttle_c = &m.throttle_events->Add({{"provider", o.name}});
  return p;
}

Pool::~Pool() { Shutdown(); }

void Pool::Shutdown() {
  std::vector<std::function<void()>> to_run;
  {
    Locked lock(this);
    if (!shutdown_) {
      shutdown_ = true;
      for (auto& q : queues_) {
        for (auto& op : q) {
          FetchResult r;
          r.status = absl::UnavailableError("broker is shutting down");
          FinishLocked(op, std::move(r), &to_run);
        }
        q.clear();
      }
      for (auto& p : providers_) {
        for (auto& op : p->work) {
          FetchResult r;
          r.status = absl::UnavailableError("broker is shutting down");
          ReleaseSlotLocked(*op);
          FinishLocked(op, std::move(r), &to_run);
        }
        p->work.clear();
        for (auto& c : p->conns) {
          c->stop = true;
          if (c->nntp != nullptr) c->nntp->Interrupt();
        }
      }
    }
  }
  for (auto& f : to_run) f();
  Locked lock(this);
  // Connection threads interrupt their sockets and exit; dialing ones give up
  // within the dial timeout.
  mu_.Await(absl::Condition(+[](int* n) { return *n == 0; }, &live_threads_));
  if (timer_thread_.joinable()) {
    mu_.Unlock();
    timer_thread_.join();
    mu_.Lock();
  }
}

// ---------------------------------------------------------------------------
// Requests

std::shared_ptr<FetchOp> Pool::Fetch(FetchRequest request, std::function<void(FetchResult)> done) {
  auto op = std::make_shared<FetchOp>();
  op->req = std::move(request);
  op->done = std::move(done);
  op->pool = this;
  std::vector<std::function<void()>> to_run;
  {
    Locked lock(this);
    op->enqueued_at = clock_->Now();
    op->seq = next_id_++;
    const int cls = static_cast<int>(op->req.traffic_class);
    FetchResult reject;
    if (!op->req.only_provider.empty()) {
      bool found = false;
      for (int i = 0; i < static_cast<int>(providers_.size()); ++i) {
        if (providers_[i]->removed || providers_[i]->o.name != op->req.only_provider) {
          op->excluded.insert(i);
        } else {
          found = true;
        }
      }
      if (!found) reject.status = absl::NotFoundError(absl::StrCat("no provider named \"", op->req.only_provider, "\""));
    }
    if (!reject.status.ok()) {
    } else if (op->req.message_id.empty()) {
      reject.status = absl::InvalidArgumentError("message_id is empty");
    } else if (shutdown_) {
      reject.status = absl::UnavailableError("broker is shutting down");
    } else if (!HasCandidateLocked(*op)) {
      reject.status = absl::UnavailableError("no provider is configured or available");
    } else if (static_cast<int>(queues_[cls].size()) >= options_.max_queue_per_class) {
      metrics_->rejected[cls]->Increment();
      reject.status = absl::ResourceExhaustedError(absl::StrCat("the ", ClassName(op->req.traffic_class),
                                                               " queue is full (", options_.max_queue_per_class,
                                                               " waiting); try again later"));
    }
    if (!reject.status.ok()) {
      FinishLocked(op, std::move(reject), &to_run);
    } else {
      if (op->req.deadline != absl::InfiniteFuture()) {
        std::weak_ptr<FetchOp> weak = op;
        op->deadline_timer = AddTimerLocked(op->req.deadline, [this, weak] {
          if (auto o = weak.lock()) ExpireOp(o);
        });
      }
      EnqueueLocked(op, /*at_head=*/false);
      DispatchLocked();
    }
  }
  for (auto& f : to_run) f();
  return op;
}

bool Pool::Promote(uint64_t session_id, const std::string& message_id) {
  Locked lock(this);
  if (shutdown_) return false;
  auto& q = queues_[static_cast<int>(TrafficClass::kStream)];
  // The read-ahead part is the long one (every player's window), but a scan
  // is ~1 ns per request against a segment's transfer time.
  auto it = std::find_if(q.begin(), q.end(), [&](const std::shared_ptr<FetchOp>& o) {
    return o->req.read_ahead && o->req.session_id == session_id && o->req.message_id == message_id;
  });
  if (it == q.end()) {
    // Waiting for its retry delay: it stops being read-ahead and, when the
    // timer requeues it, joins the needed-now part (as a retry, at its head).
    for (FetchOp* r : retrying_) {
      if (!r->finished && r->req.read_ahead && r->req.session_id == session_id && r->req.message_id == message_id) {
        r->req.read_ahead = false;
        return true;
      }
    }
    return false;  // not queued (dispatched, finished) or not read-ahead: nothing to do
  }
  std::shared_ptr<FetchOp> op = *it;
  q.erase(it);
  op->req.read_ahead = false;
  // The tail of the needed-now part: behind the players that already wait
  // for their needed-now segment, before all read-ahead.
  EnqueueLocked(op, /*at_head=*/false);
  DispatchLocked();
  return true;
}

void Pool::ExpireOp(const std::shared_ptr<FetchOp>& op) { CancelOpWith(op.get(), absl::DeadlineExceededError("deadline exceeded while waiting for the article")); }

void Pool::CancelOp(FetchOp* op) { CancelOpWith(op, absl::CancelledError("fetch cancelled by the caller")); }

void Pool::CancelOpWith(FetchOp* raw, absl::Status why) {
  std::vector<std::function<void()>> to_run;
  {
    Locked lock(this);
    if (raw->finished) return;
    raw->cancelled = true;
    std::shared_ptr<FetchOp> op;
    auto take = [&](std::deque<std::shared_ptr<FetchOp>>& q) {
      for (auto it = q.begin(); it != q.end(); ++it) {
        if (it->get() == raw) {
          op = *it;
          q.erase(it);
          return true;
        }
      }
      return false;
    };
    switch (raw->stage) {
      case FetchOp::Stage::kQueued:
        take(queues_[static_cast<int>(raw->req.traffic_class)]);
        break;
      case FetchOp::Stage::kAssigned: {
        Provider& p = *providers_[raw->provider];
        bool found = take(p.work);
        for (auto& c : p.conns) {
          if (found) break;
          found = take(c->mine);
        }
        if (found) {
          ReleaseSlotLocked(*raw);
          if (p.breaker == Breaker::kHalfOpen) p.probe_in_flight = false;
        }
        break;
      }
      case FetchOp::Stage::kWaitingRetry:  // the timer finds it finished
      case FetchOp::Stage::kSent:          // the connection drains the reply, then frees the slot
        break;
    }
    FetchResult r;
    r.status = std::move(why);
    r.attempts = raw->total_attempts;
    FinishRawLocked(raw, std::move(r), &to_run);
    DispatchLocked();
  }
  for (auto& f : to_run) f();
}

void Pool::FinishLocked(const std::shared_ptr<FetchOp>& op, FetchResult result,
                        std::vector<std::function<void()>>* to_run) {
  FinishRawLocked(op.get(), std::move(result), to_run);
}

void Pool::FinishRawLocked(FetchOp* op, FetchResult result, std::vector<std::function<void()>>* to_run) {
  if (op->finished) return;
  op->finished = true;
  if (op->deadline_timer) {
    timers_.erase(*op->deadline_timer);
    op->deadline_timer.reset();
  }
  auto done = std::move(op->done);
  op->done = nullptr;
  if (done) {
    to_run->push_back([done = std::move(done), r = std::move(result)]() mutable { done(std::move(r)); });
  }
}

// ---------------------------------------------------------------------------
// Scheduling

int64_t Pool::CapacityLocked() const {
  int64_t c = 0;
  for (const auto& p : providers_) {
    if (!p->o.backup) c += p->SlotCapacity();
  }
  return c;
}

int64_t Pool::ReserveLocked() const {
  const int64_t c = CapacityLocked();
  if (c <= 0) return 0;
  return std::min<int64_t>(static_cast<int64_t>(options_.stream_headroom) * static_cast<int64_t>(sessions_.size()), c - 1);
}

int64_t Pool::PerStreamCapLocked() const {
  if (options_.max_slots_per_stream > 0) return options_.max_slots_per_stream;
  int64_t c = 0;
  for (const auto& p : providers_) {
    if (!p->o.backup && !p->removed) c += static_cast<int64_t>(p->o.max_connections) * p->o.pipeline_depth;
  }
  return std::max<int64_t>(1, c / 2);
}

bool Pool::ProviderEligibleLocked(const FetchOp& op, int i) {
  const Provider& p = *providers_[i];
  if (p.removed || op.excluded.count(i)) return false;
  if (!p.o.backbone.empty() && op.missing_backbones.count(p.o.backbone)) return false;
  return true;
}

bool Pool::HasCandidateLocked(const FetchOp& op) {
  for (int i = 0; i < static_cast<int>(providers_.size()); ++i) {
    if (ProviderEligibleLocked(op, i)) return true;
  }
  return false;
}

bool Pool::AllCandidatesOpenLocked(const FetchOp& op) {
  bool any = false;
  for (int i = 0; i < static_cast<int>(providers_.size()); ++i) {
    if (!ProviderEligibleLocked(op, i)) continue;
    any = true;
    if (providers_[i]->breaker != Breaker::kOpen) return false;
  }
  return any;
}

int Pool::PickProviderLocked(const FetchOp& op) {
  // Primaries first: backups are considered only when no primary can still be
  // asked (all said missing, exhausted their attempts, or are broken).
  bool primary_left = false;
  for (int i = 0; i < static_cast<int>(providers_.size()); ++i) {
    const Provider& p = *providers_[i];
    if (!p.o.backup && ProviderEligibleLocked(op, i) && p.breaker != Breaker::kOpen) primary_left = true;
  }
  double total = 0;
  std::vector<std::pair<int, double>> weights;
  for (int i = 0; i < static_cast<int>(providers_.size()); ++i) {
    const Provider& p = *providers_[i];
    if (p.o.backup == primary_left) continue;
    if (!ProviderEligibleLocked(op, i)) continue;
    if (p.breaker == Breaker::kOpen) continue;
    if (p.breaker == Breaker::kHalfOpen && p.probe_in_flight) continue;
    const int64_t free = p.Free(op.req.stat_only);
    if (free <= 0) continue;
    // Weight: free slots, scaled by measured speed relative to 1 MB/s so a
    // fast provider takes more of the load; unknown speed counts as 1 MB/s.
    const double speed = p.speed_ewma > 0 ? p.speed_ewma / 1e6 : 1.0;
    const double w = static_cast<double>(free) * std::max(0.1, speed);
    weights.emplace_back(i, w);
    total += w;
  }
  if (weights.empty()) return -1;
  if (weights.size() == 1) return weights[0].first;
  double x = std::uniform_real_distribution<double>(0, total)(rng_);
  for (const auto& [i, w] : weights) {
    if (x < w) return i;
    x -= w;
  }
  return weights.back().first;
}

void Pool::DispatchLocked() {
  if (shutdown_) return;
  const int64_t capacity = CapacityLocked();
  const int64_t limit_below_stream = capacity - ReserveLocked();
  int64_t below_stream = 0;
  for (int c = 1; c < kNumClasses; ++c) below_stream += in_use_by_class_[c];
  const int64_t per_stream = PerStreamCapLocked();
  // BODY and STAT have separate slots (pipeline_depth, stat_pipeline_depth);
  // index 0 = BODY, 1 = STAT. The class limit below STREAM applies to BODY
  // slots, which carry the bytes playback competes for.
  int64_t free_slots[2] = {0, 0};
  for (const auto& p : providers_) {
    free_slots[0] += std::max<int64_t>(0, p->Free(false));
    free_slots[1] += std::max<int64_t>(0, p->Free(true));
  }
  for (int c = 0; c < kNumClasses; ++c) {
    auto& q = queues_[c];
    if (c == 0 && q.size() > 1 && !sessions_.empty()) OrderStreamQueueLocked();
    // Once a request that may go to any provider found no slot, later fresh
    // requests of its kind will not either: skip them cheaply (keeps
    // saturation O(n)).
    bool fresh_blocked[2] = {false, false};
    for (auto it = q.begin(); it != q.end();) {
      if (free_slots[0] <= 0 && free_slots[1] <= 0) return;
      const int kind = (*it)->req.stat_only ? 1 : 0;
      const bool fresh = (*it)->excluded.empty() && (*it)->missing_backbones.empty();
      if (free_slots[kind] <= 0 || (fresh && fresh_blocked[kind]) ||
          (kind == 0 && c > 0 && below_stream >= limit_below_stream)) {
        ++it;
        continue;
      }
      const std::shared_ptr<FetchOp> op = *it;
      if (c == 0 && op->req.session_id != 0) {
        auto s = sessions_.find(op->req.session_id);
        if (s != sessions_.end() && s->second.slots >= per_stream) {
          ++it;  // this player is at its cap; others may still go
          continue;
        }
      }
      const int p = PickProviderLocked(*op);
      if (p < 0) {
        if (fresh && !AllCandidatesOpenLocked(*op)) fresh_blocked[kind] = true;
        if (AllCandidatesOpenLocked(*op)) {  // fail fast: that is what the breaker is for
          FetchResult r;
          r.attempts = op->total_attempts;
          r.status = absl::UnavailableError(absl::StrCat(
              "every provider that could serve <", op->req.message_id, "> keeps failing (circuit open)",
              op->last_error.ok() ? "" : absl::StrCat("; last error: ", op->last_error.message())));
          it = q.erase(it);
          FinishLocked(op, std::move(r), &deferred_);
          continue;
        }
        ++it;
        continue;
      }
      it = q.erase(it);
      --free_slots[kind];
      if (c > 0 && kind == 0) ++below_stream;
      const absl::Duration waited = clock_->Now() - op->enqueued_at;
      metrics_->queue_wait[c]->Observe(absl::ToDoubleSeconds(waited));
      if (options_.on_dispatch) options_.on_dispatch(static_cast<TrafficClass>(c), waited);
      AssignLocked(op, p);
      if (c == 0 && op->req.session_id != 0 && q.size() > 1) {
        // The session now holds one more slot: the fewest-slots order may
        // have changed (B11), so the next free slot is chosen afresh.
        OrderStreamQueueLocked();
        it = q.begin();
      }
    }
  }
}

void Pool::OrderStreamQueueLocked() {
  // Two orders compose here. First the partition EnqueueLocked keeps:
  // needed-now requests before read-ahead ones (B12). Within each part,
  // retries first (they keep their place at the head), then the requests of
  // the sessions holding the fewest slots (B11): a player that just started
  // (or is starved) gets the next free slot before another player's
  // read-ahead. A stable sort keeps FIFO order within a session and among
  // equals. DispatchLocked re-orders after every stream dispatch, so free
  // slots are shared out one at a time to the poorest session.
  using Key = std::pair<int, int64_t>;
  auto key = [this](const std::shared_ptr<FetchOp>& op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const int part = op->req.read_ahead ? 1 : 0;
    if (op->total_attempts > 0) return Key{part, -1};
    auto s = sessions_.find(op->req.session_id);
    return Key{part, s == sessions_.end() ? int64_t{0} : s->second.slots};
  };
  auto& q = queues_[0];
  bool sorted = true;
  Key prev{std::numeric_limits<int>::min(), std::numeric_limits<int64_t>::min()};
  for (const auto& op : q) {
    const Key k = key(op);
    if (k < prev) {
      sorted = false;
      break;
    }
    prev = k;
  }
  if (sorted) return;  // the common case (one player, or none ahead of its share): no work
  std::vector<std::pair<Key, std::shared_ptr<FetchOp>>> keyed;
  keyed.reserve(q.size());
  for (auto& op : q) keyed.emplace_back(key(op), std::move(op));
  std::stable_sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < keyed.size(); ++i) q[i] = std::move(keyed[i].second);
}

void Pool::AssignLocked(const std::shared_ptr<FetchOp>& op, int pi) {
  Provider& p = *providers_[pi];
  op->stage = FetchOp::Stage::kAssigned;
  op->provider = pi;
  const bool stat = op->req.stat_only;
  if (stat) {
    p.stat_used++;
  } else {
    p.slots_used++;
    in_use_by_class_[static_cast<int>(op->req.traffic_class)]++;
    if (op->req.session_id != 0) {
      auto s = sessions_.find(op->req.session_id);
      if (s != sessions_.end()) s->second.slots++;
    }
  }
  if (p.breaker == Breaker::kHalfOpen) p.probe_in_flight = true;
  if (op->total_attempts > 0) p.retries_c->Increment();
  // A connection answers its commands in order, so a command put on a
  // connection that waits for a STAT reply is answered after it (B14; B15
  // sends the command at once, but the reply still queues). STATs (health
  // sweeps, import sampling) are therefore packed onto the connections already
  // waiting for STAT replies, and BODYs go to connections without STATs
  // first: a sweep holds back the BODYs of one connection, not of every one.
  // Then hot-first: the least loaded open connection, most recently used on
  // ties, so idle connections stay idle long enough to be closed.
  auto rank = [stat](const Conn& c) {
    const bool has_stats = c.load(true) > 0;
    return std::make_pair(stat ? !has_stats : has_stats, c.load(stat));
  };
  std::shared_ptr<Conn> best;
  for (auto& c : p.conns) {
    if (c->stop || op->Avoids(pi, c->id) || c->load(stat) >= p.Depth(stat)) continue;
    if (!best || rank(*c) < rank(*best) || (rank(*c) == rank(*best) && c->last_used > best->last_used)) {
      best = c;
    }
  }
  if (best) {
    best->mine.push_back(op);
    // A connection reading a reply sends this command now, not after the
    // reply (B15): the provider's latency for it overlaps that reply.
    if (options_.send_while_reading && (best->in_flight > 0 || best->stat_in_flight > 0) && best->nntp != nullptr) {
      best->woken.store(true, std::memory_order_release);
      best->nntp->Wake();
    }
  } else {
    p.work.push_back(op);
    MaybeDialLocked(pi);
  }
}

void Pool::ReleaseSlotLocked(const FetchOp& op) {
  if (op.provider < 0) return;
  Provider& p = *providers_[op.provider];
  if (op.req.stat_only) {
    p.stat_used--;
    return;
  }
  p.slots_used--;
  in_use_by_class_[static_cast<int>(op.req.traffic_class)]--;
  if (op.req.session_id != 0) {
    auto s = sessions_.find(op.req.session_id);
    if (s != sessions_.end()) s->second.slots--;
  }
}

void Pool::MaybeDialLocked(int pi) {
  Provider& p = *providers_[pi];
  if (shutdown_ || p.removed) return;
  // Dial while the waiting work of either kind exceeds the room the open and
  // dialling connections have for it.
  int waiting[2] = {0, 0}, spare[2];
  for (const auto& op : p.work) waiting[op->req.stat_only ? 1 : 0]++;
  for (int k = 0; k < 2; ++k) {
    spare[k] = p.dialing * p.Depth(k == 1);
    for (auto& c : p.conns) {
      if (!c->stop) spare[k] += std::max(0, p.Depth(k == 1) - c->load(k == 1));
    }
  }
  while ((waiting[0] > spare[0] || waiting[1] > spare[1]) && p.conns_total < p.usable &&
         p.conns_total < p.o.max_connections && p.dialing < options_.max_parallel_dials) {
    auto conn = std::make_shared<Conn>();
    conn->id = p.next_conn_id++;
    conn->last_used = clock_->Now();
    p.conns_total++;
    p.dialing++;
    p.dials++;
    p.dials_c->Increment();
    live_threads_++;
    spare[0] += p.Depth(false);
    spare[1] += p.Depth(true);
    std::thread([this, pi, conn] { ConnectionMain(pi, conn); }).detach();
  }
}

// ---------------------------------------------------------------------------
// Connections

void Pool::ConnectionMain(int pi, std::shared_ptr<Conn> conn) {
  nntp::ConnectionOptions copts;
  {
    Locked lock(this);
    copts = providers_[pi]->o.connection;
  }
  auto dialed = nntp::Connection::Dial(copts);
  std::vector<std::function<void()>> to_run;
  {
    Locked lock(this);
    Provider& p = *providers_[pi];
    p.dialing--;
    if (!dialed.ok()) {
      p.conns_total--;
      p.dial_failures_c->Increment();
      OnDialFailedLocked(pi, dialed.status(), &to_run);
      live_threads_--;
      DispatchLocked();
    } else if (shutdown_ || p.removed) {
      conn->stop = true;
    }
    if (dialed.ok()) {
      conn->nntp = dialed->get();
      p.conns.push_back(conn);
      // Hand it whatever is waiting.
      while (!p.work.empty() && conn->load(p.work.front()->req.stat_only) < p.Depth(p.work.front()->req.stat_only)) {
        conn->mine.push_back(p.work.front());
        p.work.pop_front();
      }
      MaybeDialLocked(pi);  // keep ramping up if more work is waiting
    }
  }
  for (auto& f : to_run) f();
  if (!dialed.ok()) return;
  RunConnection(pi, conn, dialed->get());
  // Close: still counted against max_connections until the socket is closed.
  {
    Locked lock(this);
    Provider& p = *providers_[pi];
    p.closing++;
    conn->nntp = nullptr;
    p.conns.erase(std::remove(p.conns.begin(), p.conns.end(), conn), p.conns.end());
    // Unsent work goes back to the provider for another connection (or, when
    // the provider is gone or the pool is stopping, back to the scheduler).
    std::vector<std::function<void()>> run;
    for (auto it = conn->mine.rbegin(); it != conn->mine.rend(); ++it) {
      if (shutdown_ || p.removed) {
        ReleaseSlotLocked(**it);
        RequeueLocked(*it, &run);
      } else {
        p.work.push_front(*it);
      }
    }
    conn->mine.clear();
    if (!run.empty()) {
      mu_.Unlock();
      for (auto& f : run) f();
      mu_.Lock();
    }
  }
  if ((*dialed)->usable()) (*dialed)->Quit();
  dialed->reset();
  {
    Locked lock(this);
    Provider& p = *providers_[pi];
    p.closing--;
    p.conns_total--;
    live_threads_--;
    MaybeDialLocked(pi);
    DispatchLocked();
  }
}

void Pool::OnDialFailedLocked(int pi, const absl::Status& s, std::vector<std::function<void()>>* to_run) {
  Provider& p = *providers_[pi];
  log::Warning("dial failed", {{"provider", p.o.name}, {"error", s.ToString()}});
  if (nntp::IsConnectionLimit(s)) {
    // R6: keep what is open and stop dialling; every throttle_restore allow
    // one more connection (so at most one probing dial per period) until the
    // configured limit is back.
    const int open = static_cast<int>(p.conns.size());
    p.throttle_c->Increment();
    p.usable = open;
    if (!p.throttled) {
      p.throttled = true;
      ArmThrottleTimerLocked(pi);
    }
    if (open > 0) return;  // the waiting work will run on the open connections
  } else {
    RecordFailureLocked(pi);
  }
  // Nothing can carry the waiting work: each such request has made an attempt.
  std::deque<std::shared_ptr<FetchOp>> work;
  work.swap(p.work);
  for (auto& op : work) {
    FetchResult r;
    r.status = s;
    ReleaseSlotLocked(*op);
    if (p.breaker == Breaker::kHalfOpen) p.probe_in_flight = false;
    AttemptDoneLocked(op, -1, std::move(r), /*connection_failed=*/false, to_run);  // breaker already counted
  }
}

void Pool::TakeSendableLocked(int pi, Conn& conn, bool take_provider_work,
                              std::vector<std::shared_ptr<FetchOp>>* batch) {
  Provider& p = *providers_[pi];
  // In order: BODY up to pipeline_depth, STAT up to stat_pipeline_depth in flight.
  int room[2] = {p.Depth(false) - conn.in_flight, p.Depth(true) - conn.stat_in_flight};
  while (true) {
    std::deque<std::shared_ptr<FetchOp>>* from = nullptr;
    if (!conn.mine.empty()) {
      from = &conn.mine;
    } else if (take_provider_work && !p.work.empty() && !p.work.front()->Avoids(pi, conn.id)) {
      from = &p.work;
    } else {
      break;
    }
    std::shared_ptr<FetchOp> op = from->front();
    const int kind = op->req.stat_only ? 1 : 0;
    if (room[kind] <= 0) break;
    --room[kind];
    from->pop_front();
    op->stage = FetchOp::Stage::kSent;
    (kind == 1 ? conn.stat_in_flight : conn.in_flight)++;
    batch->push_back(std::move(op));
  }
}

void Pool::BufferCommands(nntp::Connection* nntp, const std::vector<std::shared_ptr<FetchOp>>& batch,
                          std::deque<std::shared_ptr<FetchOp>>* sent) {
  for (const auto& op : batch) {
    if (op->req.stat_only) {
      nntp->SendStat(op->req.message_id);
    } else {
      nntp->SendBody(op->req.message_id);
    }
    sent->push_back(op);
  }
}

void Pool::RunConnection(int pi, const std::shared_ptr<Conn>& conn, nntp::Connection* nntp) {
  std::deque<std::shared_ptr<FetchOp>> sent;
  // B15: work assigned to this connection while it reads a reply is sent
  // from inside the read (the connection's send hook, on this thread, so TLS
  // sees one thread), within the same pipeline depths as below.
  if (options_.send_while_reading) nntp->SetSendHook([&] {
    if (!conn->woken.exchange(false, std::memory_order_acq_rel)) return;
    std::vector<std::shared_ptr<FetchOp>> more;
    {
      Locked lock(this);
      Provider& p = *providers_[pi];
      if (conn->stop || shutdown_ || p.removed) return;
      TakeSendableLocked(pi, *conn, /*take_provider_work=*/false, &more);
    }
    BufferCommands(nntp, more, &sent);
    // A failed write leaves the connection unusable: the read in progress
    // (or the next) fails or ends, and every sent command is answered by
    // FailSent below.
    if (!more.empty()) (void)nntp->Flush();
  });
  struct RemoveHook {
    nntp::Connection* c;
    ~RemoveHook() { c->SetSendHook(nullptr); }
  } remove_hook{nntp};
  while (true) {
    std::vector<std::shared_ptr<FetchOp>> batch;
    bool keepalive = false;
    {
      Locked lock(this);
      Provider& p = *providers_[pi];
      auto has_work = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return conn->stop || shutdown_ || p.removed || !conn->mine.empty() ||
               (!p.work.empty() && !p.work.front()->Avoids(pi, conn->id) &&
                conn->load(p.work.front()->req.stat_only) < p.Depth(p.work.front()->req.stat_only));
      };
      if (sent.empty()) {
        const absl::Time idle_deadline = conn->last_used + p.o.idle_timeout;
        absl::Time wake = idle_deadline;
        if (p.o.keepalive_interval > absl::ZeroDuration()) wake = std::min(wake, conn->last_used + p.o.keepalive_interval);
        clock_->AwaitWithDeadline(&mu_, absl::Condition(&has_work), wake);
        if (conn->stop || shutdown_ || p.removed) return;
        if (!has_work()) {
          if (clock_->Now() >= idle_deadline) return;  // idle: close
          keepalive = true;
        }
      }
      TakeSendableLocked(pi, *conn, /*take_provider_work=*/true, &batch);
    }
    if (keepalive) {
      absl::Status s = nntp->Date();
      Locked lock(this);
      conn->last_used = clock_->Now();
      if (!s.ok()) return;
      continue;
    }
    BufferCommands(nntp, batch, &sent);
    if (!batch.empty()) {
      absl::Status s = nntp->Flush();
      if (!s.ok()) {
        FailSent(pi, conn, &sent, s, /*record_failure=*/true);
        return;
      }
    }
    if (sent.empty()) continue;

    std::shared_ptr<FetchOp> op = sent.front();
    bool drain;
    absl::Duration attempt_timeout;
    {
      Locked lock(this);
      drain = op->finished;
      attempt_timeout = AttemptTimeoutLocked(pi);
    }
    const absl::Time start = clock_->Now();
    FetchResult result;
    nntp->SetFirstByteTimeout(attempt_timeout);
    if (drain) {
      result.status = nntp->DiscardBody(options_.drain_limit);
      if (result.status.ok()) result.status = absl::CancelledError("drained");
    } else if (op->req.stat_only) {
      result.status = nntp->ReadStat();
    } else {
      result.data = buffers_.Get();
      auto info = nntp->ReadBody(result.data.get());
      if (info.ok()) {
        result.info = *info;
      } else {
        result.status = info.status();
        if (result.status.code() == absl::StatusCode::kDataLoss) result.info = nntp->last_body();
      }
    }
    sent.pop_front();
    const absl::Duration took = clock_->Now() - start;
    std::vector<std::function<void()>> to_run;
    {
      Locked lock(this);
      Provider& p = *providers_[pi];
      (op->req.stat_only ? conn->stat_in_flight : conn->in_flight)--;
      conn->last_used = clock_->Now();
      p.commands++;
      if (result.status.ok() || nntp::IsArticleMissing(result.status)) {
        const double s = absl::ToDoubleSeconds(took);
        p.reply_seconds_ewma = p.reply_seconds_ewma == 0 ? s : 0.8 * p.reply_seconds_ewma + 0.2 * s;
      }
      if (result.data && !result.data->empty() && took > absl::ZeroDuration()) {
        const double bps = static_cast<double>(result.data->size()) / absl::ToDoubleSeconds(took);
        p.speed_ewma = p.speed_ewma == 0 ? bps : 0.8 * p.speed_ewma + 0.2 * bps;
      }
      ReleaseSlotLocked(*op);
      if (p.breaker == Breaker::kHalfOpen) p.probe_in_flight = false;
      if (drain) {
        p.commands_by[static_cast<int>(op->req.traffic_class)][kCancelled]->Increment();
      } else {
        AttemptDoneLocked(op, conn->id, std::move(result), !nntp->usable(), &to_run);
      }
      if (!nntp->usable()) {
        conn->stop = true;
      }
      DispatchLocked();
    }
    for (auto& f : to_run) f();
    if (!nntp->usable()) {
      // The failure of this connection was recorded with the reply just read.
      FailSent(pi, conn, &sent, absl::UnavailableError(absl::StrCat("connection lost: ", nntp->last_error())),
               /*record_failure=*/false);
      return;
    }
  }
}

void Pool::FailSent(int pi, const std::shared_ptr<Conn>& conn, std::deque<std::shared_ptr<FetchOp>>* sent,
                    const absl::Status& s, bool record_failure) {
  std::vector<std::function<void()>> to_run;
  {
    Locked lock(this);
    Provider& p = *providers_[pi];
    for (auto& op : *sent) {
      (op->req.stat_only ? conn->stat_in_flight : conn->in_flight)--;
      ReleaseSlotLocked(*op);
      if (p.breaker == Breaker::kHalfOpen) p.probe_in_flight = false;
      if (op->finished) continue;
      FetchResult r;
      r.status = s;
      // One lost connection is one provider failure, not one per request on it.
      AttemptDoneLocked(op, conn->id, std::move(r), /*connection_failed=*/false, &to_run);
    }
    if (record_failure && !sent->empty()) RecordFailureLocked(pi);
    sent->clear();
    DispatchLocked();
  }
  for (auto& f : to_run) f();
}

void Pool::AttemptDoneLocked(const std::shared_ptr<FetchOp>& op, int conn_id, FetchResult result,
                             bool connection_failed, std::vector<std::function<void()>>* to_run) {
  const int pi = op->provider;
  Provider& p = *providers_[pi];
  const int cls = static_cast<int>(op->req.traffic_class);
  const absl::Status& s = result.status;
  op->attempts[pi]++;
  op->total_attempts++;
  result.attempts = op->total_attempts;
  result.provider = p.o.name;
  if (op->finished) return;  // cancelled while in flight
  if (shutdown_) {
    RequeueLocked(op, to_run);  // finishes it
    return;
  }
  if (s.code() == absl::StatusCode::kDataLoss) {
    // R7: a CRC mismatch may be damage in transit (try again on another
    // connection, then other providers) or on the provider's disk. If no clean
    // copy arrives, the caller gets DATA_LOSS with the damaged bytes.
    p.commands_by[cls][kError]->Increment();
    p.crc_c->Increment();
    RecordSuccessLocked(pi);  // the provider and the connection work
    if (op->attempts[pi] >= options_.attempts_per_provider) op->excluded.insert(pi);
    op->damaged = std::move(result);
    if (!HasCandidateLocked(*op) || clock_->Now() >= op->req.deadline) {
      FinishDamagedLocked(op, to_run);
      return;
    }
    RequeueLocked(op, to_run);
    return;
  }
  if (s.ok()) {
    p.commands_by[cls][kOk]->Increment();
    if (result.data) p.bytes_c->Increment(static_cast<double>(result.data->size()));
    RecordSuccessLocked(pi);
    metrics_->ttfb[cls]->Observe(absl::ToDoubleSeconds(clock_->Now() - op->enqueued_at));
    FinishLocked(op, std::move(result), to_run);
    return;
  }
  if (nntp::IsArticleMissing(s)) {
    // R1/R2: never again on this provider (or its backbone); next one at once.
    p.commands_by[cls][kMissing]->Increment();
    RecordSuccessLocked(pi);  // the provider answered; it is healthy
    op->excluded.insert(pi);
    op->any_missing = true;
    if (!p.o.backbone.empty()) op->missing_backbones.insert(p.o.backbone);
    op->missing_on.push_back(p.o.name);
    if (!HasCandidateLocked(*op) && FinishDamagedLocked(op, to_run)) return;
    if (!HasCandidateLocked(*op)) {
      FetchResult r;
      r.attempts = op->total_attempts;
      r.status = absl::NotFoundError(absl::StrCat("article <", op->req.message_id, "> is missing on ",
                                                  absl::StrJoin(op->missing_on, ", ")));
      FinishLocked(op, std::move(r), to_run);
      return;
    }
    RequeueLocked(op, to_run);
    return;
  }
  // Transient failure (R3–R5).
  const bool timeout = nntp::IsTimeout(s);
  p.commands_by[cls][timeout ? kTimeout : kError]->Increment();
  // The breaker counts failures of the provider (dials, timeouts, dropped
  // connections), not an error reply about one article on a healthy link.
  if (connection_failed) RecordFailureLocked(pi);
  op->last_error = s;
  if (op->attempts[pi] >= options_.attempts_per_provider) op->excluded.insert(pi);
  if (!HasCandidateLocked(*op) && FinishDamagedLocked(op, to_run)) return;
  if (!HasCandidateLocked(*op)) {
    FetchResult r;
    r.attempts = op->total_attempts;
    r.status = op->any_missing
                   ? absl::NotFoundError(absl::StrCat("article <", op->req.message_id, "> is missing on ",
                                                      absl::StrJoin(op->missing_on, ", "),
                                                      "; other providers failed: ", s.message()))
                   : absl::UnavailableError(absl::StrCat("article <", op->req.message_id, "> could not be fetched after ",
                                                         op->total_attempts, " attempts: ", s.message()));
    FinishLocked(op, std::move(r), to_run);
    return;
  }
  const absl::Duration delay = timeout ? absl::ZeroDuration() : JitterLocked();
  const absl::Time now = clock_->Now();
  if (now + delay >= op->req.deadline) {  // R8: no retry starts after the deadline
    if (FinishDamagedLocked(op, to_run)) return;
    FetchResult r;
    r.attempts = op->total_attempts;
    r.status = absl::DeadlineExceededError(absl::StrCat("deadline exceeded after ", op->total_attempts,
                                                        " attempts; last error: ", s.message()));
    FinishLocked(op, std::move(r), to_run);
    return;
  }
  if (timeout) {  // R5: at once, on another connection (of this provider: ids are per provider)
    op->avoid_provider = pi;
    op->avoid_connection = conn_id;
  }
  if (delay == absl::ZeroDuration()) {
    RequeueLocked(op, to_run);
    return;
  }
  op->stage = FetchOp::Stage::kWaitingRetry;
  retrying_.insert(op.get());
  AddTimerLocked(now + delay, [this, op] {
    std::vector<std::function<void()>> run;
    {
      Locked lock(this);
      retrying_.erase(op.get());
      if (!op->finished) RequeueLocked(op, &run);
      DispatchLocked();
    }
    for (auto& f : run) f();
  });
}

bool Pool::FinishDamagedLocked(const std::shared_ptr<FetchOp>& op, std::vector<std::function<void()>>* to_run) {
  if (!op->damaged) return false;
  FetchResult damaged = std::move(*op->damaged);
  op->damaged.reset();
  damaged.attempts = op->total_attempts;
  FinishLocked(op, std::move(damaged), to_run);
  return true;
}

void Pool::RequeueLocked(const std::shared_ptr<FetchOp>& op, std::vector<std::function<void()>>* to_run) {
  if (shutdown_) {
    FetchResult r;
    r.attempts = op->total_attempts;
    r.status = absl::UnavailableError("broker is shutting down");
    FinishLocked(op, std::move(r), to_run);
    return;
  }
  // Retries keep their place at the head of their class: they were first.
  op->stage = FetchOp::Stage::kQueued;
  EnqueueLocked(op, /*at_head=*/true);
}

void Pool::EnqueueLocked(const std::shared_ptr<FetchOp>& op, bool at_head) {
  auto& q = queues_[static_cast<int>(op->req.traffic_class)];
  if (op->req.traffic_class != TrafficClass::kStream) {
    if (at_head) {
      q.push_front(op);
    } else {
      q.push_back(op);
    }
    return;
  }
  const bool ahead = op->req.read_ahead;
  if ((at_head && !ahead) || (!at_head && ahead) || q.empty() || (!at_head && !q.back()->req.read_ahead)) {
    // Head of the needed-now part, tail of the read-ahead part, or a queue
    // with no read-ahead at its end: the plain ends keep the partition.
    if (at_head) {
      q.push_front(op);
    } else {
      q.push_back(op);
    }
    return;
  }
  // The boundary: the first read-ahead request (the needed-now part is the
  // short one: at most a request or two per player).
  auto it = std::find_if(q.begin(), q.end(), [](const std::shared_ptr<FetchOp>& o) { return o->req.read_ahead; });
  q.insert(it, op);
}

void Pool::RecordSuccessLocked(int pi) {
  Provider& p = *providers_[pi];
  p.outcomes.push_back(false);
  if (static_cast<int>(p.outcomes.size()) > kBreakerWindow) p.outcomes.pop_front();
  if (p.breaker != Breaker::kClosed) {
    log::Info("provider recovered; circuit closed", {{"provider", p.o.name}});
    p.breaker = Breaker::kClosed;
    p.open_time = options_.breaker_open_time;
    p.outcomes.clear();
  }
}

void Pool::RecordFailureLocked(int pi) {
  // Trips when, among the last kBreakerWindow outcomes, at least
  // breaker_failure_threshold are failures and they are at least half: a
  // provider that keeps failing, not a burst of drops among many successes.
  Provider& p = *providers_[pi];
  p.outcomes.push_back(true);
  if (static_cast<int>(p.outcomes.size()) > kBreakerWindow) p.outcomes.pop_front();
  const int failures = static_cast<int>(std::count(p.outcomes.begin(), p.outcomes.end(), true));
  const bool trip = p.breaker == Breaker::kHalfOpen ||
                    (p.breaker == Breaker::kClosed && failures >= options_.breaker_failure_threshold &&
                     2 * failures >= static_cast<int>(p.outcomes.size()));
  if (!trip) return;
  if (p.breaker == Breaker::kHalfOpen) p.open_time = std::min(p.open_time * 2, options_.max_breaker_open_time);
  p.breaker = Breaker::kOpen;
  p.probe_in_flight = false;
  log::Warning("provider keeps failing; circuit open",
               {{"provider", p.o.name}, {"for_s", absl::ToDoubleSeconds(p.open_time)}});
  AddTimerLocked(clock_->Now() + p.open_time, [this, pi] {
    Locked lock(this);
    Provider& pr = *providers_[pi];
    if (pr.breaker == Breaker::kOpen) pr.breaker = Breaker::kHalfOpen;
    DispatchLocked();
  });
}

void Pool::ArmThrottleTimerLocked(int pi) {
  AddTimerLocked(clock_->Now() + options_.throttle_restore, [this, pi] {
    Locked lock(this);
    Provider& p = *providers_[pi];
    p.usable = std::min(p.o.max_connections, p.usable + 1);
    if (p.usable < p.o.max_connections) {
      ArmThrottleTimerLocked(pi);
    } else {
      p.throttled = false;
    }
    MaybeDialLocked(pi);
    DispatchLocked();
  });
}

absl::Duration Pool::AttemptTimeoutLocked(int pi) {
  // Adaptive first-byte timeout: 4 × the measured reply time, clamped to
  // [attempt_timeout_min, attempt_timeout_max] and never above the provider's
  // configured first_byte_timeout. Unmeasured providers get the maximum.
  const Provider& p = *providers_[pi];
  absl::Duration t = options_.attempt_timeout_max;
  if (p.reply_seconds_ewma > 0) {
    t = std::clamp(absl::Seconds(4 * p.reply_seconds_ewma), options_.attempt_timeout_min, options_.attempt_timeout_max);
  }
  return std::min(t, p.o.connection.first_byte_timeout);
}

absl::Duration Pool::JitterLocked() {
  const double lo = absl::ToDoubleSeconds(options_.retry_delay_min);
  const double hi = absl::ToDoubleSeconds(options_.retry_delay_max);
  return absl::Seconds(std::uniform_real_distribution<double>(lo, hi)(rng_));
}

// ---------------------------------------------------------------------------
// Timers

Pool::TimerKey Pool::AddTimerLocked(absl::Time when, std::function<void()> fn) {
  TimerKey key{when, timer_seq_++};
  timers_.emplace(key, std::move(fn));
  return key;
}

void Pool::TimerMain() {
  while (true) {
    std::function<void()> fn;
    {
      Locked lock(this);
      while (true) {
        if (shutdown_ && live_threads_ == 0) return;
        if (!timers_.empty() && clock_->Now() >= timers_.begin()->first.first) break;
        const absl::Time wake = timers_.empty() ? clock_->Now() + absl::Milliseconds(100)
                                                : std::min(timers_.begin()->first.first, clock_->Now() + absl::Milliseconds(100));
        const size_t n = timers_.size();
        auto changed = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return timers_.size() != n || (shutdown_ && live_threads_ == 0); };
        clock_->AwaitWithDeadline(&mu_, absl::Condition(&changed), wake);
      }
      fn = std::move(timers_.begin()->second);
      timers_.erase(timers_.begin());
    }
    fn();
  }
}

// ---------------------------------------------------------------------------
// Sessions and leases

uint64_t Pool::OpenSession(const std::string& label) {
  Locked lock(this);
  const uint64_t id = next_id_++;
  sessions_[id] = Session{label, 0};
  return id;
}

void Pool::CloseSession(uint64_t id) {
  std::vector<std::function<void()>> to_run;
  {
    Locked lock(this);
    if (sessions_.erase(id) == 0) return;
    GrantLeasesLocked(&to_run);
    DispatchLocked();
  }
  for (auto& f : to_run) f();
}

uint64_t Pool::RequestLease(const std::string& holder, std::function<void()> granted) {
  std::vector<std::function<void()>> to_run;
  uint64_t id;
  {
    Locked lock(this);
    id = next_id_++;
    leases_[id] = Lease{holder, std::move(granted), false};
    GrantLeasesLocked(&to_run);
  }
  for (auto& f : to_run) f();
  return id;
}

void Pool::ReleaseLease(uint64_t id) {
  std::vector<std::function<void()>> to_run;
  {
    Locked lock(this);
    auto it = leases_.find(id);
    if (it == leases_.end()) return;
    if (it->second.held) leases_held_--;
    leases_.erase(it);
    GrantLeasesLocked(&to_run);
  }
  for (auto& f : to_run) f();
}

void Pool::GrantLeasesLocked(std::vector<std::function<void()>>* to_run) {
  const int limit = sessions_.empty() ? options_.max_concurrent_imports : options_.max_concurrent_imports_while_streaming;
  for (auto& [id, lease] : leases_) {
    if (leases_held_ >= limit) break;
    if (lease.held) continue;
    lease.held = true;
    leases_held_++;
    if (lease.granted) to_run->push_back(std::move(lease.granted));
    lease.granted = nullptr;
  }
}

// ---------------------------------------------------------------------------
// Reconfiguration and status

absl::Status Pool::Reconfigure(const std::vector<ProviderOptions>& providers) {
  PoolOptions check = options_;
  check.providers = providers;
  std::set<std::string> names;
  for (const auto& p : providers) {
    if (p.name.empty() || !names.insert(p.name).second || p.max_connections < 1 || p.pipeline_depth < 1 ||
        p.stat_pipeline_depth < 1) {
      return absl::InvalidArgumentError(absl::StrCat("invalid provider list (name \"", p.name, "\")"));
    }
  }
  std::vector<std::function<void()>> to_run;
  {
    Locked lock(this);
    for (auto& existing : providers_) {
      if (existing->removed) continue;
      auto it = std::find_if(providers.begin(), providers.end(), [&](const ProviderOptions& o) { return o.name == existing->o.name; });
      const bool same_endpoint = it != providers.end() && it->connection.host == existing->o.connection.host &&
                                 it->connection.port == existing->o.connection.port &&
                                 it->connection.username == existing->o.connection.username &&
                                 it->connection.password == existing->o.connection.password &&
                                 it->connection.tls == existing->o.connection.tls;
      if (it != providers.end() && same_endpoint) {
        // Resize in place; connections above the new limit close when idle.
        existing->o = *it;
        existing->usable = existing->throttled ? std::min(existing->usable, it->max_connections) : it->max_connections;
        int excess = existing->conns_total - existing->o.max_connections;
        for (auto& c : existing->conns) {
          if (excess <= 0) break;
          if (c->load() == 0) {
            c->stop = true;
            --excess;
          }
        }
        continue;
      }
      // Removed (or moved to another endpoint): no new work; in-flight work
      // finishes on its connections, which then close.
      existing->removed = true;
      for (auto& c : existing->conns) c->stop = c->load() == 0 ? true : c->stop;
      std::deque<std::shared_ptr<FetchOp>> work;
      work.swap(existing->work);
      for (auto& op : work) {
        ReleaseSlotLocked(*op);
        op->stage = FetchOp::Stage::kQueued;
        EnqueueLocked(op, /*at_head=*/true);
      }
    }
    for (const auto& o : providers) {
      bool present = std::any_of(providers_.begin(), providers_.end(),
                                 [&](const std::unique_ptr<Provider>& p) { return !p->removed && p->o.name == o.name; });
      if (!present) providers_.push_back(MakeProvider(o));
    }
    options_.providers = providers;
    DispatchLocked();
  }
  for (auto& f : to_run) f();
  log::Info("providers reconfigured", {{"providers", providers.size()}});
  return absl::OkStatus();
}

PoolStatusView Pool::Status() {
  Locked lock(this);
  PoolStatusView v;
  for (const auto& p : providers_) {
    if (p->removed && p->conns_total == 0) continue;
    ProviderStatusView s;
    s.name = p->o.name;
    s.backup = p->o.backup;
    s.backbone = p->o.backbone;
    s.max_connections = p->o.max_connections;
    s.pipeline_depth = p->o.pipeline_depth;
    s.open = static_cast<int>(p->conns.size());
    for (const auto& c : p->conns) (c->load() > 0 ? s.busy : s.idle)++;
    s.dialing = p->dialing;
    s.closing = p->closing;
    s.usable = p->usable;
    s.slots_in_use = p->slots_used;
    s.breaker = BreakerName(p->breaker);
    s.speed_bytes_per_second = p->speed_ewma;
    s.dials_total = p->dials;
    s.commands_total = p->commands;
    v.providers.push_back(std::move(s));
  }
  for (int c = 0; c < kNumClasses; ++c) {
    v.in_flight[c] = in_use_by_class_[c];
    v.queued[c] = static_cast<int64_t>(queues_[c].size());
  }
  v.capacity = CapacityLocked();
  v.reserved = ReserveLocked();
  v.open_sessions = static_cast<int>(sessions_.size());
  v.leases_held = leases_held_;
  v.leases_waiting = static_cast<int>(leases_.size()) - leases_held_;
  return v;
}

Pool::Usage Pool::GetUsage() {
  Locked lock(this);
  Usage u;
  for (const auto& p : providers_) u.slots_in_use += p->slots_used + p->stat_used;
  for (const auto& q : queues_) u.queued += static_cast<int64_t>(q.size());
  u.waiting_retry = static_cast<int64_t>(retrying_.size());
  u.sessions = static_cast<int>(sessions_.size());
  u.leases_held = leases_held_;
  u.leases_waiting = static_cast<int>(leases_.size()) - leases_held_;
  return u;
}

int64_t Pool::ConnectionsDialed(const std::string& provider) {
  Locked lock(this);
  int64_t n = 0;
  for (const auto& p : providers_) {
    if (p->o.name == provider) n += p->dials;
  }
  return n;
}

}  // namespace nzbmesh::broker
