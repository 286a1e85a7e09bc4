// The broker's connection pool and scheduler: the one place that opens NNTP
// connections and the budget authority for every provider account.
//
// Model (see docs/ARCHITECTURE.md, "Broker: budgets and traffic classes"):
//   * A provider has `max_connections` connections (counting ones being
//     dialled and being closed) of `pipeline_depth` slots each. Capacity C is
//     the slot count of the usable primaries.
//   * A request waits in the FIFO of its traffic class (STREAM: needed-now
//     requests ahead of read-ahead ones, FIFO within each). Whenever a slot frees,
//     Dispatch() gives it to the highest class with a waiter that may run:
//     classes below STREAM together hold at most C − reserve slots, where
//     reserve = min(stream_headroom × open_sessions, C − 1); one stream
//     session holds at most max_slots_per_stream. Within STREAM, needed-now
//     requests go before read-ahead ones (B12); within each, retries go
//     first, then the sessions holding the fewest slots (B11): a player that
//     starts gets the next free slot before another player's read-ahead.
//   * A granted request is bound to a provider (primaries first, weighted by
//     free slots and measured speed) and handed to one of its connections,
//     which pipelines up to pipeline_depth commands.
//   * Retries (R1–R8): a CRC mismatch is retried like a transient error
//     (another connection, then other providers) and, if no clean copy
//     arrives, returned as DATA_LOSS with the damaged bytes; 430/423 moves
//     to the next provider (never the same
//     one; backups only after every primary said missing; providers sharing
//     a backbone with one that said missing are skipped); transient errors get
//     at most `attempts_per_provider` attempts per provider with a jittered
//     delay in [retry_delay_min, retry_delay_max]; a timed-out attempt is
//     retried at once on another connection; no retry starts after the
//     request's deadline.
//   * Cancellation: a queued request leaves its queue at once. An in-flight
//     one keeps its slot until the connection has drained the reply (or is
//     closed when draining would exceed drain_limit), so cancellations never
//     leave a half-read connection in the pool and never cause re-dials.
//
// Threading: one thread per NNTP connection does all socket I/O, outside the
// lock; one timer thread runs delayed retries, breaker and throttle timers.
// Every piece of shared state is guarded by the single mutex mu_ (contention
// is negligible next to network I/O: ~1 µs of work per request).
// Completion callbacks run on connection or timer threads, never under mu_.
#ifndef NZBMESH_SERVICES_BROKER_POOL_H_
#define NZBMESH_SERVICES_BROKER_POOL_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/metrics/metrics.h"
#include "common/nntp/connection.h"
#include "common/time/clock.h"
#include "services/broker/buffer_pool.h"

namespace nzbmesh::broker {

enum class TrafficClass { kStream = 0, kProbe = 1, kImport = 2, kHealth = 3, kSpeedTest = 4 };
inline constexpr int kNumClasses = 5;
const char* ClassName(TrafficClass c);

struct ProviderOptions {
  std::string name;                 // unique; metrics label
  nntp::ConnectionOptions connection;  // host, port, TLS, credentials, timeouts
  int max_connections = 10;         // hard limit of the account
  int pipeline_depth = 2;           // BODY commands in flight per connection
  int stat_pipeline_depth = 16;     // STAT commands in flight per connection (cheap, tiny replies)
  bool backup = false;              // used only after every primary said missing
  std::string backbone;             // providers on one backbone share article loss
  absl::Duration idle_timeout = absl::Seconds(60);  // close a connection idle this long
  absl::Duration keepalive_interval = absl::ZeroDuration();  // DATE when idle; 0 = never
};

struct PoolOptions {
  std::vector<ProviderOptions> providers;
  int stream_headroom = 8;          // slots reserved per open stream session
  int max_slots_per_stream = 0;     // per session; 0 = half of C (at least 1)
  int max_concurrent_imports = 2;
  int max_concurrent_imports_while_streaming = 1;
  int max_queue_per_class = 10000;  // past it: RESOURCE_EXHAUSTED at once
  int max_parallel_dials = 4;       // per provider: ramp up without a dial burst
  int attempts_per_provider = 2;    // transient failures (R3)
  absl::Duration retry_delay_min = absl::Milliseconds(50);   // R4
  absl::Duration retry_delay_max = absl::Milliseconds(150);
  absl::Duration throttle_restore = absl::Seconds(30);       // R6
  absl::Duration drain_limit = absl::Seconds(5);             // B10
  // Circuit breaker: opens when, of the provider's last 20 outcomes, at least
  // this many are failures (dials, timeouts, lost connections) and they are
  // at least half.
  int breaker_failure_threshold = 5;
  absl::Duration breaker_open_time = absl::Seconds(15);      // before a half-open probe
  absl::Duration max_breaker_open_time = absl::Minutes(5);
  // Attempt timeout (first byte): adapted to the measured time to first byte
  // (4 × EWMA) clamped to [min, max].
  absl::Duration attempt_timeout_min = absl::Seconds(2);
  absl::Duration attempt_timeout_max = absl::Seconds(10);
  // B15: a command given to a connection while it reads a reply is sent at
  // once, from inside the read. false sends it only after that reply (the
  // behaviour before B15; kept for the benchmark that measures the
  // difference, BM_StreamAtProviderLatency).
  bool send_while_reading = true;
  Clock* clock = Clock::Real();
  uint64_t random_seed = 0;         // 0 = from the clock
  // Called under the pool's lock each time a request is dispatched, with its
  // queue wait (benchmarks; must be cheap and must not call into the pool).
  std::function<void(TrafficClass, absl::Duration)> on_dispatch;
};

struct FetchRequest {
  std::string message_id;
  TrafficClass traffic_class = TrafficClass::kStream;
  uint64_t session_id = 0;          // 0 = no stream session
  absl::Time deadline = absl::InfiniteFuture();
  bool stat_only = false;           // STAT instead of BODY
  std::string only_provider;        // "" = any; else this provider only, no failover
  // STREAM only: a fetch ahead of what the player needs now. Waits behind
  // every needed-now STREAM request (B12). Pool::Promote clears it while the
  // request waits (B13).
  bool read_ahead = false;
};

struct FetchResult {
  absl::Status status;              // OK, NOT_FOUND, DATA_LOSS (bytes present), ...
  BufferPool::Handle data;          // decoded bytes (BODY; null for STAT or errors)
  nntp::BodyInfo info;
  std::string provider;             // who served it
  int attempts = 0;
};

class Pool;

// One request's life. Held by the caller (to cancel) and by the pool.
class FetchOp {
 public:
  // Thread-safe, idempotent. A queued request leaves the queue at once and
  // its callback runs with CANCELLED; an in-flight one is drained.
  void Cancel();

 private:
  friend class Pool;
  FetchRequest req;
  std::function<void(FetchResult)> done;
  Pool* pool = nullptr;
  // The fields below are guarded by Pool::mu_.
  enum class Stage { kQueued, kWaitingRetry, kAssigned, kSent } stage = Stage::kQueued;
  bool cancelled = false;
  bool finished = false;            // `done` has been scheduled
  std::vector<std::string> missing_on;  // providers that answered 430/423
  std::optional<FetchResult> damaged;   // last CRC-mismatched copy, returned if no clean one arrives
  int provider = -1;                // provider of the current attempt
  std::map<int, int> attempts;      // per provider
  std::set<int> excluded;           // providers not to try again
  std::set<std::string> missing_backbones;
  bool any_missing = false;
  int total_attempts = 0;
  absl::Status last_error;
  // A timed-out connection (R5): connection ids are per provider, so it is
  // avoided only on the provider it belongs to.
  int avoid_provider = -1;
  int avoid_connection = -1;
  bool Avoids(int provider_index, int connection_id) const {
    return provider_index == avoid_provider && connection_id == avoid_connection;
  }
  std::optional<std::pair<absl::Time, uint64_t>> deadline_timer;
  absl::Time enqueued_at;
  uint64_t seq = 0;
};

struct ProviderStatusView {
  std::string name;
  bool backup = false;
  std::string backbone;
  int max_connections = 0, pipeline_depth = 0;
  int open = 0, busy = 0, idle = 0, dialing = 0, closing = 0, usable = 0;
  int64_t slots_in_use = 0;
  std::string breaker;
  double speed_bytes_per_second = 0;
  int64_t dials_total = 0, commands_total = 0;
};

struct PoolStatusView {
  std::vector<ProviderStatusView> providers;
  int64_t in_flight[kNumClasses] = {};
  int64_t queued[kNumClasses] = {};
  int64_t capacity = 0, reserved = 0;
  int open_sessions = 0, leases_held = 0, leases_waiting = 0;
};

class Pool {
 public:
  static absl::StatusOr<std::unique_ptr<Pool>> Create(const PoolOptions& options, metrics::Registry* registry);
  ~Pool();  // Shutdown()

  // Fails every queued request with UNAVAILABLE, closes every connection and
  // joins every thread. Idempotent.
  void Shutdown();

  // Starts a fetch; `done` runs exactly once (on a pool thread, or inline
  // when the request is rejected at once).
  std::shared_ptr<FetchOp> Fetch(FetchRequest request, std::function<void(FetchResult)> done);

  // The player of stream session `session_id` now needs the read-ahead fetch
  // of `message_id` (the id exactly as in its FetchRequest). If such a
  // request is still queued (the oldest one, if the session asked twice), it
  // stops being read-ahead and moves from the read-ahead part of the STREAM
  // queue to the tail of the needed-now part (B12, B13), ahead of every
  // read-ahead request, older ones too. A request waiting for its retry
  // delay (after a transient error) stops being read-ahead there and joins
  // the needed-now part when its timer requeues it. Returns whether a request was promoted:
  // false when none of the session's read-ahead requests for that id waits
  // (already dispatched, finished, never read-ahead, unknown) — a no-op.
  bool Promote(uint64_t session_id, const std::string& message_id);

  // Stream sessions (reservation for playback).
  uint64_t OpenSession(const std::string& label);
  void CloseSession(uint64_t id);

  // Import leases: `granted` runs once when the lease is granted (possibly
  // inline). ReleaseLease frees a held lease or withdraws a waiting request;
  // either way the next waiter is considered. Idempotent.
  uint64_t RequestLease(const std::string& holder, std::function<void()> granted);
  void ReleaseLease(uint64_t id);

  // Adds, removes and resizes providers without dropping in-flight work.
  absl::Status Reconfigure(const std::vector<ProviderOptions>& providers);

  PoolStatusView Status();

  // Test and benchmark hooks: counts that must return to 0 after any storm
  // (B8): slots in use, queued requests, sessions, leases held and waiting.
  struct Usage {
    int64_t slots_in_use = 0, queued = 0, waiting_retry = 0;
    int sessions = 0, leases_held = 0, leases_waiting = 0;
  };
  Usage GetUsage();
  int64_t ConnectionsDialed(const std::string& provider);

 private:
  struct Provider;
  struct Conn;
  struct Session {
    std::string label;
    int64_t slots = 0;
  };
  struct Lease {
    std::string holder;
    std::function<void()> granted;
    bool held = false;
  };
  using TimerKey = std::pair<absl::Time, uint64_t>;  // (when, sequence)

  explicit Pool(const PoolOptions& options, metrics::Registry* registry);

  // Holds mu_; on release runs the deferred callbacks outside the lock.
  class ABSL_SCOPED_LOCKABLE Locked {
   public:
    explicit Locked(Pool* p) ABSL_EXCLUSIVE_LOCK_FUNCTION(p->mu_) : p_(p) { p_->mu_.Lock(); }
    ~Locked() ABSL_UNLOCK_FUNCTION() {
      std::vector<std::function<void()>> run;
      run.swap(p_->deferred_);
      p_->mu_.Unlock();
      for (auto& f : run) f();
    }

   private:
    Pool* const p_;
  };

  // Scheduling; all under mu_.
  void DispatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int PickProviderLocked(const FetchOp& op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasCandidateLocked(const FetchOp& op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool AllCandidatesOpenLocked(const FetchOp& op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool ProviderEligibleLocked(const FetchOp& op, int p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t CapacityLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t ReserveLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t PerStreamCapLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Orders the STREAM queue: needed-now before read-ahead (B12); within each,
  // retries, then by the session's slots in use (B11).
  void OrderStreamQueueLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AssignLocked(const std::shared_ptr<FetchOp>& op, int p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeDialLocked(int p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseSlotLocked(const FetchOp& op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts `op` in its class queue: at the tail, or at the head for a request
  // that already waited (a retry, work taken back from a removed provider).
  // The STREAM queue is kept as [needed-now ...][read-ahead ...] (B12), so a
  // head insertion of a read-ahead request goes after the needed-now ones
  // and a tail insertion of a needed-now request before the read-ahead ones.
  void EnqueueLocked(const std::shared_ptr<FetchOp>& op, bool at_head) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void GrantLeasesLocked(std::vector<std::function<void()>>* to_run) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  friend class FetchOp;
  void CancelOp(FetchOp* op);
  void ExpireOp(const std::shared_ptr<FetchOp>& op);
  void CancelOpWith(FetchOp* op, absl::Status why);
  // Outcome of one attempt (slot already released); finishes or retries.
  void AttemptDoneLocked(const std::shared_ptr<FetchOp>& op, int conn_id, FetchResult result, bool slot_released,
                         std::vector<std::function<void()>>* to_run) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RequeueLocked(const std::shared_ptr<FetchOp>& op, std::vector<std::function<void()>>* to_run)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Finishes with the CRC-damaged copy kept from an earlier attempt, if any.
  bool FinishDamagedLocked(const std::shared_ptr<FetchOp>& op, std::vector<std::function<void()>>* to_run)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Schedules `done` (run by the caller after unlocking via to_run).
  void FinishLocked(const std::shared_ptr<FetchOp>& op, FetchResult result,
                    std::vector<std::function<void()>>* to_run) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishRawLocked(FetchOp* op, FetchResult result, std::vector<std::function<void()>>* to_run)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailSent(int p, const std::shared_ptr<Conn>& conn, std::deque<std::shared_ptr<FetchOp>>* sent,
                const absl::Status& s, bool record_failure);

  // Connection threads.
  // Moves what `conn` may send now into *batch, marked sent, up to its
  // pipeline depths: its own assigned work first, then (take_provider_work)
  // the provider's unassigned work.
  void TakeSendableLocked(int p, Conn& conn, bool take_provider_work, std::vector<std::shared_ptr<FetchOp>>* batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Buffers the batch's commands on `nntp` (Flush() sends them) and appends them to `sent`.
  static void BufferCommands(nntp::Connection* nntp, const std::vector<std::shared_ptr<FetchOp>>& batch,
                             std::deque<std::shared_ptr<FetchOp>>* sent);
  void ConnectionMain(int p, std::shared_ptr<Conn> conn);
  void RunConnection(int p, const std::shared_ptr<Conn>& conn, nntp::Connection* nntp);
  void OnDialFailedLocked(int p, const absl::Status& s, std::vector<std::function<void()>>* to_run)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ArmThrottleTimerLocked(int p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordSuccessLocked(int p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordFailureLocked(int p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Timer thread.
  TimerKey AddTimerLocked(absl::Time when, std::function<void()> fn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TimerMain();
  absl::Duration JitterLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration AttemptTimeoutLocked(int p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::unique_ptr<Provider> MakeProvider(const ProviderOptions& o);

  PoolOptions options_;
  Clock* const clock_;
  BufferPool buffers_;

  absl::Mutex mu_;  // guards everything below
  std::vector<std::unique_ptr<Provider>> providers_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<FetchOp>> queues_[kNumClasses] ABSL_GUARDED_BY(mu_);
  int64_t in_use_by_class_[kNumClasses] ABSL_GUARDED_BY(mu_) = {};
  // Requests in their retry delay (Stage::kWaitingRetry): for Promote() and
  // the usage report. Each is kept alive by its retry timer, which removes it
  // when it fires.
  std::set<FetchOp*> retrying_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Session> sessions_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Lease> leases_ ABSL_GUARDED_BY(mu_);  // ordered by id = FIFO
  int leases_held_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  // Ordered by due time; a finished request removes its deadline timer so
  // long deadlines at high request rates do not pile up dead entries.
  std::map<TimerKey, std::function<void()>> timers_ ABSL_GUARDED_BY(mu_);
  uint64_t timer_seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  // Callbacks of requests finished inside DispatchLocked (which has no
  // to_run parameter); Locked's destructor runs them after unlocking.
  std::vector<std::function<void()>> deferred_ ABSL_GUARDED_BY(mu_);
  int live_threads_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread timer_thread_;

  // Metrics (handles resolved once).
  struct Metrics;
  std::unique_ptr<Metrics> metrics_;
};

}  // namespace nzbmesh::broker

#endif  // NZBMESH_SERVICES_BROKER_POOL_H_
