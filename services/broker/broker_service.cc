#include "services/broker/broker_service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status/grpc_status.h"
#include "services/broker/segment_wire.h"

namespace nzbmesh::broker {

absl::StatusOr<TrafficClass> FromProto(v1::TrafficClass c) {
  switch (c) {
    case v1::STREAM: return TrafficClass::kStream;
    case v1::PROBE: return TrafficClass::kProbe;
    case v1::IMPORT: return TrafficClass::kImport;
    case v1::HEALTH: return TrafficClass::kHealth;
    case v1::SPEEDTEST: return TrafficClass::kSpeedTest;
    default: return absl::InvalidArgumentError("traffic_class must be one of STREAM, PROBE, IMPORT, HEALTH, SPEEDTEST");
  }
}

namespace {

absl::Time DeadlineOf(grpc::CallbackServerContext* ctx) {
  auto d = ctx->deadline();
  if (d == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(d);
}

// FetchSegment: one article, streamed as metadata + data chunks. The reactor
// writes raw FetchSegmentResponse bytes (segment_wire.h): every data chunk is
// a slice over the pooled buffer the NNTP connection decoded into, so the
// article is not copied between the decoder and the socket.
class FetchReactor : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  FetchReactor(Pool* pool, grpc::CallbackServerContext* ctx, const v1::FetchSegmentRequest& req) {
    auto cls = FromProto(req.traffic_class());
    if (!cls.ok()) {
      Finish(ToGrpcStatus(cls.status()));
      return;
    }
    FetchRequest fr;
    fr.message_id = req.message_id();
    fr.traffic_class = *cls;
    fr.session_id = req.stream_session_id();
    fr.only_provider = req.provider();
    fr.read_ahead = req.read_ahead();
    Start(pool, ctx, std::move(fr), req.chunk_bytes());
  }

  // FetchCandidateSegment: the same stream from a temporary pool, which the
  // reactor keeps alive until the call ends.
  FetchReactor(std::shared_ptr<Pool> pool, grpc::CallbackServerContext* ctx, const std::string& message_id,
               uint32_t chunk_bytes)
      : keep_pool_(std::move(pool)) {
    FetchRequest fr;
    fr.message_id = message_id;
    fr.traffic_class = TrafficClass::kSpeedTest;
    Start(keep_pool_.get(), ctx, std::move(fr), chunk_bytes);
  }

  explicit FetchReactor(const absl::Status& error) { Finish(ToGrpcStatus(error)); }

  void Start(Pool* pool, grpc::CallbackServerContext* ctx, FetchRequest fr, uint32_t chunk_bytes) {
    chunk_ = chunk_bytes == 0 ? kDefaultChunk : std::clamp<uint32_t>(chunk_bytes, 4096, 4 << 20);
    fr.deadline = DeadlineOf(ctx);
    // Hold a reference so the reactor outlives a callback racing OnDone.
    self_ = std::make_shared<Shared>();
    self_->reactor = this;
    auto shared = self_;
    op_ = pool->Fetch(std::move(fr), [shared](FetchResult r) {
      absl::MutexLock lock(&shared->mu);
      if (shared->reactor != nullptr) shared->reactor->OnResult(std::move(r));
    });
  }

  void OnCancel() override {
    if (op_) op_->Cancel();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    WriteNext();
  }

  void OnDone() override {
    if (self_) {
      absl::MutexLock lock(&self_->mu);
      self_->reactor = nullptr;
    }
    delete this;
  }

 private:
  struct Shared {
    absl::Mutex mu;
    FetchReactor* reactor = nullptr;
  };

  void OnResult(FetchResult r) {
    result_ = std::move(r);
    const absl::Status& s = result_.status;
    if (!s.ok() && s.code() != absl::StatusCode::kDataLoss) {
      Finish(ToGrpcStatus(s));
      return;
    }
    const auto& h = result_.info.header;
    metadata_.set_name(h.name);
    metadata_.set_part(h.part);
    metadata_.set_total_parts(h.total);
    metadata_.set_begin(h.begin);
    metadata_.set_end(h.end);
    metadata_.set_file_size(h.size);
    metadata_.set_decoded_size(result_.data ? static_cast<int64_t>(result_.data->size()) : 0);
    metadata_.set_crc32(result_.info.crc32);
    metadata_.set_crc_verified(result_.info.crc_checked && s.ok());
    metadata_.set_provider(result_.provider);
    first_pending_ = true;
    WriteNext();
  }

  // The first message carries the metadata and the first chunk (a whole
  // 768 KB article with the default chunk size); the rest carry data only.
  void WriteNext() {
    const size_t total = result_.data ? result_.data->size() : 0;
    if (!first_pending_ && offset_ >= total) {
      Finish(ToGrpcStatus(result_.status));  // OK, or DATA_LOSS after the bytes
      return;
    }
    const size_t n = std::min(chunk_, total - offset_);
    out_ = FetchSegmentResponseBuffer(first_pending_ ? &metadata_ : nullptr, result_.data, offset_, n);
    first_pending_ = false;
    offset_ += n;
    StartWrite(&out_);
  }

  std::shared_ptr<Pool> keep_pool_;  // temporary pools only
  std::shared_ptr<Shared> self_;
  std::shared_ptr<FetchOp> op_;
  FetchResult result_;
  v1::SegmentMetadata metadata_;
  grpc::ByteBuffer out_;  // the message being written; references result_.data
  static constexpr size_t kDefaultChunk = 1 << 20;  // a whole 768 KB article in one message
  bool first_pending_ = false;
  size_t offset_ = 0;
  size_t chunk_ = kDefaultChunk;
};

// The request of a raw (ByteBuffer) method; false if it does not parse.
template <typename Message>
bool ParseRequest(const grpc::ByteBuffer* raw, Message* out) {
  grpc::ByteBuffer copy(*raw);  // Deserialize consumes its input; this copies slice references only
  return grpc::SerializationTraits<Message>::Deserialize(&copy, out).ok();
}

// StatSegments: one STAT per id through the scheduler; results as they come.
class StatReactor : public grpc::ServerWriteReactor<v1::StatSegmentsResponse> {
 public:
  StatReactor(Pool* pool, grpc::CallbackServerContext* ctx, const v1::StatSegmentsRequest* req) {
    auto cls = FromProto(req->traffic_class());
    if (!cls.ok()) {
      Finish(ToGrpcStatus(cls.status()));
      return;
    }
    if (req->message_ids_size() > 100000) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "at most 100000 message ids per call"));
      return;
    }
    shared_ = std::make_shared<Shared>();
    shared_->reactor = this;
    shared_->remaining = req->message_ids_size();
    if (shared_->remaining == 0) {
      Finish(grpc::Status::OK);
      return;
    }
    auto shared = shared_;
    for (const auto& id : req->message_ids()) {
      FetchRequest fr;
      fr.message_id = id;
      fr.traffic_class = *cls;
      fr.deadline = DeadlineOf(ctx);
      fr.stat_only = true;
      ops_.push_back(pool->Fetch(std::move(fr), [shared, id](FetchResult r) {
        absl::MutexLock lock(&shared->mu);
        v1::StatSegmentsResponse resp;
        resp.set_message_id(id);
        if (r.status.ok()) {
          resp.set_exists(true);
        } else if (!nntp::IsArticleMissing(r.status)) {
          resp.set_error(std::string(r.status.message()));
        }
        shared->out.push_back(std::move(resp));
        shared->remaining--;
        if (shared->reactor != nullptr) shared->reactor->PumpLocked();
      }));
    }
  }

  void OnCancel() override {
    for (auto& op : ops_) op->Cancel();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&shared_->mu);
    shared_->writing = false;
    if (!ok) {
      if (!shared_->finished) {
        shared_->finished = true;
        Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      }
      return;
    }
    PumpLocked();
  }

  void OnDone() override {
    if (shared_) {
      absl::MutexLock lock(&shared_->mu);
      shared_->reactor = nullptr;
    }
    delete this;
  }

 private:
  struct Shared {
    absl::Mutex mu;
    StatReactor* reactor = nullptr;
    std::deque<v1::StatSegmentsResponse> out;
    v1::StatSegmentsResponse current;
    int remaining = 0;
    bool writing = false;
    bool finished = false;
  };

  void PumpLocked() {
    Shared& s = *shared_;
    if (s.writing || s.finished) return;
    if (!s.out.empty()) {
      s.current = std::move(s.out.front());
      s.out.pop_front();
      s.writing = true;
      StartWrite(&s.current);
      return;
    }
    if (s.remaining == 0) {
      s.finished = true;
      Finish(grpc::Status::OK);
    }
  }

  std::shared_ptr<Shared> shared_;
  std::vector<std::shared_ptr<FetchOp>> ops_;
};

}  // namespace

// Sessions and leases: calls that stay open until the client ends them.
class BrokerService::LongLived {
 public:
  virtual ~LongLived() = default;
  virtual void End() = 0;
  // The pool's capacity and open stream sessions now (sessions tell their
  // caller when it changed; leases ignore it).
  virtual void Update(int64_t capacity, int32_t sessions) {}
};

namespace {

// One stream session. Writes never overlap: a change that arrives while an
// event is on its way is sent when that write is done, and only the latest
// state is sent. End() while a write is in flight leaves Finish() to
// OnWriteDone, so no write is started after Finish().
class SessionReactor : public grpc::ServerWriteReactor<v1::StreamSessionEvent>, public BrokerService::LongLived {
 public:
  SessionReactor(Pool* pool, const v1::OpenStreamSessionRequest* req, std::function<void(LongLived*)> unregister,
                 std::function<void()> changed)
      : pool_(pool), unregister_(std::move(unregister)), changed_(std::move(changed)) {
    id_ = pool_->OpenSession(req->label());
    PoolStatusView st = pool_->Status();
    {
      absl::MutexLock lock(&mu_);
      want_ = {st.capacity, st.open_sessions};
      FillLocked();
      writing_ = true;
    }
    StartWrite(&event_);
  }
  void OnWriteDone(bool ok) override {
    bool finish = false, end = false, write = false;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (ended_) {
        finish = true;  // End() ran during the write
      } else if (!ok) {
        end = true;
      } else if (want_ != sent_) {
        FillLocked();
        writing_ = write = true;
      }
    }
    if (finish) {
      Finish(grpc::Status::OK);
    } else if (end) {
      End();
    } else if (write) {
      StartWrite(&event_);
    }
  }
  void OnCancel() override { End(); }
  void End() override {
    bool finish;
    {
      absl::MutexLock lock(&mu_);
      if (ended_) return;
      ended_ = true;
      finish = !writing_;
    }
    pool_->CloseSession(id_);
    changed_();
    if (finish) Finish(grpc::Status::OK);
  }
  void Update(int64_t capacity, int32_t sessions) override {
    {
      absl::MutexLock lock(&mu_);
      if (ended_) return;
      want_ = {capacity, sessions};
      if (writing_ || want_ == sent_) return;
      FillLocked();
      writing_ = true;
    }
    StartWrite(&event_);
  }
  void OnDone() override {
    unregister_(this);
    delete this;
  }

 private:
  void FillLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    sent_ = want_;
    event_.set_session_id(id_);
    event_.set_capacity_slots(sent_.first);
    event_.set_open_sessions(sent_.second);
  }

  Pool* const pool_;
  std::function<void(LongLived*)> unregister_;
  std::function<void()> changed_;
  uint64_t id_ = 0;
  absl::Mutex mu_;
  v1::StreamSessionEvent event_;  // written only while !writing_
  std::pair<int64_t, int32_t> want_ ABSL_GUARDED_BY(mu_), sent_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

class LeaseReactor : public grpc::ServerWriteReactor<v1::ImportLeaseEvent>, public BrokerService::LongLived {
 public:
  LeaseReactor(Pool* pool, const v1::AcquireImportLeaseRequest* req, std::function<void(LongLived*)> unregister)
      : pool_(pool), unregister_(std::move(unregister)), shared_(std::make_shared<Shared>()) {
    shared_->reactor = this;
    auto shared = shared_;
    id_ = pool_->RequestLease(req->holder(), [shared] {
      absl::MutexLock lock(&shared->mu);
      shared->granted = true;
      if (shared->reactor != nullptr) shared->reactor->SendGrantLocked();
    });
    absl::MutexLock lock(&shared_->mu);
    shared_->id_known = true;
    if (shared_->granted) SendGrantLocked();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) End();
  }
  void OnCancel() override { End(); }
  // B6/B7: releasing a held lease or withdrawing a waiter; a grant that raced
  // this is released here and so forwarded to the next waiter.
  void End() override {
    if (ended_.exchange(true)) return;
    pool_->ReleaseLease(id_);
    Finish(grpc::Status::OK);
  }
  void OnDone() override {
    {
      absl::MutexLock lock(&shared_->mu);
      shared_->reactor = nullptr;
    }
    pool_->ReleaseLease(id_);
    unregister_(this);
    delete this;
  }

 private:
  struct Shared {
    absl::Mutex mu;
    LeaseReactor* reactor = nullptr;
    bool granted = false;
    bool id_known = false;
    bool sent = false;
  };
  void SendGrantLocked() {
    if (!shared_->id_known || shared_->sent || ended_) return;
    shared_->sent = true;
    event_.set_granted(true);
    event_.set_lease_id(id_);
    StartWrite(&event_);
  }

  Pool* const pool_;
  std::function<void(LongLived*)> unregister_;
  std::shared_ptr<Shared> shared_;
  uint64_t id_ = 0;
  v1::ImportLeaseEvent event_;
  std::atomic<bool> ended_{false};
};

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* BrokerService::FetchSegment(grpc::CallbackServerContext* ctx,
                                                                        const grpc::ByteBuffer* raw) {
  v1::FetchSegmentRequest req;
  if (!ParseRequest(raw, &req)) return new FetchReactor(absl::InvalidArgumentError("malformed FetchSegmentRequest"));
  return new FetchReactor(pool_, ctx, req);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* BrokerService::FetchCandidateSegment(grpc::CallbackServerContext* ctx,
                                                                                 const grpc::ByteBuffer* raw) {
  v1::FetchCandidateSegmentRequest req;
  if (!ParseRequest(raw, &req)) {
    return new FetchReactor(absl::InvalidArgumentError("malformed FetchCandidateSegmentRequest"));
  }
  if (candidates_ == nullptr) {
    return new FetchReactor(absl::UnimplementedError("this broker has no candidate pools"));
  }
  auto options = FromProto(req.provider());
  if (!options.ok()) return new FetchReactor(options.status());
  auto pool = candidates_->Acquire(*options);
  if (!pool.ok()) return new FetchReactor(pool.status());
  return new FetchReactor(std::move(*pool), ctx, req.message_id(), req.chunk_bytes());
}

absl::StatusOr<ProviderOptions> FromProto(const v1::ProviderConfig& p) {
  if (p.host().empty() || p.port() <= 0 || p.port() > 65535) {
    return absl::InvalidArgumentError("provider.host and provider.port are required");
  }
  ProviderOptions o;
  o.name = p.name().empty() ? absl::StrCat("candidate-", p.host()) : p.name();
  o.connection.host = p.host();
  o.connection.port = p.port();
  o.connection.tls = p.tls() == v1::IMPLICIT   ? nntp::TlsMode::kImplicit
                     : p.tls() == v1::STARTTLS ? nntp::TlsMode::kStartTls
                                               : nntp::TlsMode::kNone;
  o.connection.tls_verify = !p.tls_skip_verify();
  o.connection.username = p.username();
  o.connection.password = p.password();
  o.max_connections = p.max_connections() > 0 ? p.max_connections() : 1;
  o.pipeline_depth = p.pipeline_depth() > 0 ? p.pipeline_depth() : 1;
  return o;
}

grpc::ServerWriteReactor<v1::StatSegmentsResponse>* BrokerService::StatSegments(grpc::CallbackServerContext* ctx,
                                                                                const v1::StatSegmentsRequest* req) {
  return new StatReactor(pool_, ctx, req);
}

grpc::ServerWriteReactor<v1::StreamSessionEvent>* BrokerService::OpenStreamSession(
    grpc::CallbackServerContext* ctx, const v1::OpenStreamSessionRequest* req) {
  auto unregister = [this](LongLived* l) {
    absl::MutexLock lock(&mu_);
    long_lived_.erase(l);
  };
  auto* r = new SessionReactor(pool_, req, unregister, [this] { SessionStateChanged(); });
  {
    absl::MutexLock lock(&mu_);
    long_lived_.insert(r);
    if (ending_) r->End();
  }
  SessionStateChanged();  // the other sessions learn there is one more
  return r;
}

grpc::ServerWriteReactor<v1::ImportLeaseEvent>* BrokerService::AcquireImportLease(
    grpc::CallbackServerContext* ctx, const v1::AcquireImportLeaseRequest* req) {
  auto unregister = [this](LongLived* l) {
    absl::MutexLock lock(&mu_);
    long_lived_.erase(l);
  };
  auto* r = new LeaseReactor(pool_, req, unregister);
  absl::MutexLock lock(&mu_);
  long_lived_.insert(r);
  if (ending_) r->End();
  return r;
}

BrokerService::BrokerService(Pool* pool, CandidatePools* candidates)
    : pool_(pool), candidates_(candidates), broadcaster_([this] { BroadcastSessionState(); }) {}

BrokerService::~BrokerService() {
  {
    absl::MutexLock lock(&broadcast_mu_);
    broadcast_stop_ = true;
  }
  broadcaster_.join();
}

void BrokerService::SessionStateChanged() {
  absl::MutexLock lock(&broadcast_mu_);
  broadcast_due_ = true;
}

void BrokerService::BroadcastSessionState() {
  // Sessions are only written to when what they were last told changed.
  // Coalescing: a burst of players starting (or a library scan's sessions
  // coming and going) costs each session one event per interval, not one per
  // change.
  constexpr absl::Duration kInterval = absl::Milliseconds(20);
  while (true) {
    {
      absl::MutexLock lock(&broadcast_mu_);
      // Also once a second without a call: capacity changes by itself too
      // (a 502 throttle, a breaker opening, a throttle restored).
      broadcast_mu_.AwaitWithTimeout(
          absl::Condition(
              +[](BrokerService* s) ABSL_NO_THREAD_SAFETY_ANALYSIS { return s->broadcast_due_ || s->broadcast_stop_; },
              this),
          absl::Seconds(1));
      if (broadcast_stop_) return;
      broadcast_due_ = false;
    }
    const PoolStatusView st = pool_->Status();
    {
      absl::MutexLock lock(&mu_);
      for (LongLived* l : long_lived_) l->Update(st.capacity, st.open_sessions);
    }
    absl::MutexLock lock(&broadcast_mu_);
    broadcast_mu_.AwaitWithTimeout(absl::Condition(&broadcast_stop_), kInterval);
    if (broadcast_stop_) return;
  }
}

void BrokerService::EndLongLivedCalls() {
  // Under mu_: a reactor cannot finish OnDone (which unregisters under mu_)
  // while we call End() on it. End() only finishes the call.
  absl::MutexLock lock(&mu_);
  ending_ = true;
  for (LongLived* l : long_lived_) l->End();
}

namespace {
v1::TrafficClass ToProto(int c) { return static_cast<v1::TrafficClass>(c + 1); }
}  // namespace

grpc::ServerUnaryReactor* BrokerService::GetPoolStatus(grpc::CallbackServerContext* ctx,
                                                       const v1::GetPoolStatusRequest*, v1::PoolStatus* resp) {
  PoolStatusView s = pool_->Status();
  for (const auto& p : s.providers) {
    auto* o = resp->add_providers();
    o->set_name(p.name);
    o->set_backup(p.backup);
    o->set_backbone(p.backbone);
    o->set_max_connections(p.max_connections);
    o->set_pipeline_depth(p.pipeline_depth);
    o->set_connections_open(p.open);
    o->set_connections_busy(p.busy);
    o->set_connections_idle(p.idle);
    o->set_connections_dialing(p.dialing);
    o->set_connections_closing(p.closing);
    o->set_usable_connections(p.usable);
    o->set_slots_in_use(p.slots_in_use);
    o->set_breaker_state(p.breaker);
    o->set_speed_bytes_per_second(p.speed_bytes_per_second);
    o->set_dials_total(p.dials_total);
    o->set_commands_total(p.commands_total);
  }
  for (int c = 0; c < kNumClasses; ++c) {
    auto* cs = resp->add_classes();
    cs->set_traffic_class(ToProto(c));
    cs->set_in_flight(s.in_flight[c]);
    cs->set_queued(s.queued[c]);
  }
  resp->set_capacity_slots(s.capacity);
  resp->set_reserved_for_stream(s.reserved);
  resp->set_open_sessions(s.open_sessions);
  resp->set_import_leases_held(s.leases_held);
  resp->set_import_leases_waiting(s.leases_waiting);
  auto* r = ctx->DefaultReactor();
  r->Finish(grpc::Status::OK);
  return r;
}

grpc::ServerUnaryReactor* BrokerService::PromoteFetch(grpc::CallbackServerContext* ctx,
                                                      const v1::PromoteFetchRequest* req,
                                                      v1::PromoteFetchResponse* resp) {
  auto* r = ctx->DefaultReactor();
  if (req->message_id().empty()) {
    r->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "message_id is empty"));
    return r;
  }
  resp->set_promoted(pool_->Promote(req->stream_session_id(), req->message_id()));
  r->Finish(grpc::Status::OK);
  return r;
}

grpc::ServerUnaryReactor* BrokerService::TestProvider(grpc::CallbackServerContext* ctx,
                                                      const v1::TestProviderRequest* req,
                                                      v1::TestProviderResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  const auto& p = req->provider();
  auto candidate = FromProto(p);
  if (!candidate.ok()) {
    reactor->Finish(ToGrpcStatus(candidate.status()));
    return reactor;
  }
  const std::string key = absl::StrCat(p.host(), ":", p.port(), ":", p.username());
  const int budget = std::max(1, std::min(p.max_connections() > 0 ? p.max_connections() : 1, 2));
  {
    absl::MutexLock lock(&mu_);
    if (testing_[key] >= budget) {
      reactor->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                   "a test of this provider account is already using its test budget; retry shortly"));
      return reactor;
    }
    testing_[key]++;
  }
  // Dial on a separate thread: never block a gRPC callback thread on the network.
  std::thread([this, reactor, resp, candidate = *candidate, key] {
    const nntp::ConnectionOptions o = candidate.connection;
    const absl::Time t0 = absl::Now();
    auto conn = nntp::Connection::Dial(o);
    const absl::Time t1 = absl::Now();
    if (!conn.ok()) {
      resp->set_ok(false);
      resp->set_error(std::string(conn.status().ToString()));
      resp->set_dial_seconds(absl::ToDoubleSeconds(t1 - t0));
    } else {
      resp->set_dial_seconds(absl::ToDoubleSeconds(t1 - t0));
      resp->set_server_greeting((*conn)->greeting());
      absl::Status s = (*conn)->Date();
      resp->set_date_round_trip_seconds(absl::ToDoubleSeconds(absl::Now() - t1));
      resp->set_ok(s.ok());
      if (!s.ok()) resp->set_error(std::string(s.ToString()));
      (*conn)->Quit();
    }
    {
      absl::MutexLock lock(&mu_);
      if (--testing_[key] == 0) testing_.erase(key);
    }
    reactor->Finish(grpc::Status::OK);
  }).detach();
  return reactor;
}

}  // namespace nzbmesh::broker
