#include "services/frontend/grpc_segment_fetcher.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace nzbmesh::frontend {
namespace {

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

broker::v1::TrafficClass ToProto(TrafficClass c) {
  return c == TrafficClass::kProbe ? broker::v1::PROBE : broker::v1::STREAM;
}

}  // namespace

// Handles must not be used after the fetcher is destroyed (Promote calls it).
class GrpcFetchHandle : public FetchHandle {
 public:
  GrpcFetchHandle(GrpcSegmentFetcher* owner, std::shared_ptr<GrpcSegmentFetcher::CallState> s,
                  const std::string& message_id, const FetchOptions& options)
      : owner_(owner),
        s_(std::move(s)),
        message_id_(message_id),
        session_id_(options.stream_session_id),
        promotable_(options.read_ahead && options.traffic_class == TrafficClass::kStream) {}
  void Cancel() override { s_->Cancel(); }
  void Promote() override {
    if (!promotable_ || promoted_.exchange(true, std::memory_order_acq_rel)) return;
    {
      absl::MutexLock lock(&s_->mu);
      if (s_->done) return;
    }
    owner_->SendPromote(session_id_, message_id_);
  }

 private:
  GrpcSegmentFetcher* const owner_;
  std::shared_ptr<GrpcSegmentFetcher::CallState> s_;
  const std::string message_id_;
  const uint64_t session_id_;
  const bool promotable_;
  std::atomic<bool> promoted_{false};
};

class GrpcSegmentFetcher::FetchReactor : public grpc::ClientReadReactor<broker::v1::FetchSegmentResponse> {
 public:
  FetchReactor(GrpcSegmentFetcher* owner, std::shared_ptr<CallState> state, FetchCallback done)
      : owner_(owner), state_(std::move(state)), done_(std::move(done)) {}

  void Start(const std::string& message_id, const FetchOptions& options) {
    req_.set_message_id(message_id);
    req_.set_traffic_class(ToProto(options.traffic_class));
    req_.set_stream_session_id(options.stream_session_id);
    req_.set_read_ahead(options.read_ahead);
    req_.set_chunk_bytes(owner_->options_.chunk_bytes);
    owner_->stub_->async()->FetchSegment(&state_->context, &req_, this);
    StartRead(&resp_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    if (first_) {
      first_ = false;
      const auto& m = resp_.metadata();
      segment_.info = SegmentInfo{m.name(),      m.part(),  m.total_parts(),  m.begin(),   m.end(),
                                  m.file_size(), m.crc32(), m.crc_verified(), m.provider()};
      expected_size_ = m.decoded_size();
    }
    AppendChunk();
    resp_.Clear();
    StartRead(&resp_);
  }

  // Memory contract: the finished segment's buffer holds its decoded size
  // (what FileReader reserved in stream_memory_limit for it), not more. A
  // segment that fits one chunk keeps that chunk's string (no copy); a
  // multi-chunk one is copied into one buffer of exactly decoded_size,
  // allocated once. Growing by append instead doubles capacity (3 × 256 KiB
  // chunks of a 768,000-byte segment end in a 1 MiB buffer) and leaves the
  // bytes over the reservation unaccounted while the segment is held.
  void AppendChunk() {
    std::string* chunk = resp_.mutable_data();
    if (data_.empty() && (expected_size_ <= 0 || static_cast<int64_t>(chunk->size()) >= expected_size_)) {
      data_.swap(*chunk);
      return;
    }
    if (data_.empty() && expected_size_ > 0 && expected_size_ < (int64_t{1} << 30)) {
      data_.reserve(static_cast<size_t>(expected_size_));
    }
    data_.append(*chunk);
  }

  void OnDone(const grpc::Status& s) override {
    {
      absl::MutexLock lock(&state_->mu);
      state_->done = true;
    }
    absl::StatusOr<Segment> result;
    // DATA_LOSS after every byte arrived: the broker found no clean copy on
    // any provider. A player is better served by the bytes (a decoder shrugs
    // off a damaged byte) than by an aborted stream; crc_verified says so.
    const bool damaged_but_complete = s.error_code() == grpc::StatusCode::DATA_LOSS && !first_ &&
                                      static_cast<int64_t>(data_.size()) == expected_size_;
    if (s.ok() || damaged_but_complete) {
      if (damaged_but_complete) {
        segment_.info.crc_verified = false;
        segment_.info.damaged = true;
      }
      segment_.data = std::make_shared<const std::string>(std::move(data_));
      result = std::move(segment_);
    } else {
      result = FromGrpc(s);
    }
    FetchCallback done = std::move(done_);
    GrpcSegmentFetcher* owner = owner_;
    CallState* key = state_.get();
    std::shared_ptr<CallState> keep = state_;
    delete this;
    done(std::move(result));
    owner->Remove(key);
  }

 private:
  GrpcSegmentFetcher* const owner_;
  std::shared_ptr<CallState> state_;
  FetchCallback done_;
  broker::v1::FetchSegmentRequest req_;
  broker::v1::FetchSegmentResponse resp_;
  bool first_ = true;
  int64_t expected_size_ = -1;
  std::string data_;
  Segment segment_;
};

namespace {

struct SessionShared {
  GrpcSegmentFetcher::CallState call;
  std::atomic<uint64_t> id{0};
};

class GrpcStreamSession : public StreamSession {
 public:
  GrpcStreamSession(std::shared_ptr<SessionShared> s, std::shared_ptr<std::atomic<int>> open)
      : s_(std::move(s)), open_(std::move(open)) {
    open_->fetch_add(1, std::memory_order_relaxed);
  }
  ~GrpcStreamSession() override {
    open_->fetch_sub(1, std::memory_order_relaxed);
    s_->call.Cancel();
  }
  uint64_t id() const override { return s_->id.load(std::memory_order_acquire); }

 private:
  std::shared_ptr<SessionShared> s_;
  std::shared_ptr<std::atomic<int>> open_;
};

}  // namespace

class GrpcSegmentFetcher::SessionReactor : public grpc::ClientReadReactor<broker::v1::StreamSessionEvent> {
 public:
  SessionReactor(GrpcSegmentFetcher* owner, std::shared_ptr<SessionShared> shared)
      : owner_(owner), shared_(std::move(shared)) {}

  void Start(const std::string& label) {
    req_.set_label(label);
    owner_->stub_->async()->OpenStreamSession(&shared_->call.context, &req_, this);
    StartRead(&event_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    if (event_.capacity_slots() > 0) owner_->capacity_.store(event_.capacity_slots(), std::memory_order_relaxed);
    if (event_.open_sessions() > 0) owner_->broker_sessions_.store(event_.open_sessions(), std::memory_order_relaxed);
    shared_->id.store(event_.session_id(), std::memory_order_release);
    StartRead(&event_);
  }

  void OnDone(const grpc::Status&) override {
    {
      absl::MutexLock lock(&shared_->call.mu);
      shared_->call.done = true;
    }
    shared_->id.store(0, std::memory_order_release);
    GrpcSegmentFetcher* owner = owner_;
    CallState* key = &shared_->call;
    std::shared_ptr<SessionShared> keep = shared_;
    delete this;
    owner->Remove(key);
  }

 private:
  GrpcSegmentFetcher* const owner_;
  std::shared_ptr<SessionShared> shared_;
  broker::v1::OpenStreamSessionRequest req_;
  broker::v1::StreamSessionEvent event_;
};

GrpcSegmentFetcher::GrpcSegmentFetcher(std::shared_ptr<grpc::Channel> channel, Options options)
    : options_(options), stub_(broker::v1::Broker::NewStub(std::move(channel))) {}

GrpcSegmentFetcher::~GrpcSegmentFetcher() {
  absl::MutexLock lock(&mu_);
  for (CallState* s : live_) s->Cancel();
  mu_.Await(absl::Condition(
      +[](GrpcSegmentFetcher* f) ABSL_NO_THREAD_SAFETY_ANALYSIS { return f->live_.empty(); }, this));
}

void GrpcSegmentFetcher::Add(CallState* s) {
  absl::MutexLock lock(&mu_);
  live_.insert(s);
}

void GrpcSegmentFetcher::Remove(CallState* s) {
  absl::MutexLock lock(&mu_);
  live_.erase(s);
}

int GrpcSegmentFetcher::outstanding() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(live_.size());
}

std::unique_ptr<FetchHandle> GrpcSegmentFetcher::Fetch(const std::string& message_id, const FetchOptions& options,
                                                       FetchCallback done) {
  auto state = std::make_shared<CallState>();
  if (options_.fetch_timeout > absl::ZeroDuration()) {
    state->context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(options_.fetch_timeout));
  }
  Add(state.get());
  auto* reactor = new FetchReactor(this, state, std::move(done));
  reactor->Start(message_id, options);
  return std::make_unique<GrpcFetchHandle>(this, std::move(state), message_id, options);
}

void GrpcSegmentFetcher::SendPromote(uint64_t session_id, const std::string& message_id) {
  struct Call {
    CallState state;
    broker::v1::PromoteFetchRequest req;
    broker::v1::PromoteFetchResponse resp;
  };
  auto* call = new Call;  // deleted by the completion callback
  call->req.set_stream_session_id(session_id);
  call->req.set_message_id(message_id);
  // A promotion is worth something only while the fetch waits: seconds.
  call->state.context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  Add(&call->state);
  stub_->async()->PromoteFetch(&call->state.context, &call->req, &call->resp, [this, call](grpc::Status) {
    {
      absl::MutexLock lock(&call->state.mu);
      call->state.done = true;
    }
    // Once removed, the destructor may finish and `this` be gone; the call
    // state lives until then because the destructor may still cancel it.
    Remove(&call->state);
    delete call;
  });
}

std::unique_ptr<StreamSession> GrpcSegmentFetcher::OpenSession(const std::string& label) {
  auto shared = std::make_shared<SessionShared>();
  Add(&shared->call);
  auto* reactor = new SessionReactor(this, shared);
  reactor->Start(label);
  return std::make_unique<GrpcStreamSession>(std::move(shared), open_sessions_);
}

int GrpcSegmentFetcher::StreamShare() const {
  const int64_t capacity = capacity_.load(std::memory_order_relaxed);
  const int64_t own = open_sessions_->load(std::memory_order_relaxed);
  if (capacity <= 0 || own <= 0) return 0;
  // The broker's count includes other frontends' players; ours may be ahead
  // of its latest event.
  const int64_t sessions = std::max(own, broker_sessions_.load(std::memory_order_relaxed));
  return static_cast<int>(std::min<int64_t>((capacity + sessions - 1) / sessions, 1 << 20));
}

}  // namespace nzbmesh::frontend
