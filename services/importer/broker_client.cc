#include "services/importer/broker_client.h"

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status/grpc_status.h"

namespace nzbmesh::importer {
namespace {

namespace v1 = nzbmesh::broker::v1;

std::chrono::system_clock::time_point ToChrono(absl::Time t) {
  if (t == absl::InfiniteFuture()) return std::chrono::system_clock::time_point::max();
  return absl::ToChronoTime(t);
}

class GrpcLease : public ImportLease {
 public:
  GrpcLease(std::unique_ptr<grpc::ClientContext> ctx, std::unique_ptr<grpc::ClientReader<v1::ImportLeaseEvent>> reader)
      : ctx_(std::move(ctx)), reader_(std::move(reader)) {}
  ~GrpcLease() override;

 private:
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<grpc::ClientReader<v1::ImportLeaseEvent>> reader_;
};

class GrpcBrokerClient : public BrokerClient {
 public:
  explicit GrpcBrokerClient(std::shared_ptr<grpc::Channel> channel) : stub_(v1::Broker::NewStub(channel)) {}

  absl::StatusOr<std::unique_ptr<ImportLease>> AcquireImportLease(const std::string& holder,
                                                                  CallCanceller* cancel) override {
    auto ctx = std::make_unique<grpc::ClientContext>();
    grpc::ClientContext* raw = ctx.get();
    if (cancel != nullptr && !cancel->Register(raw, [raw] { raw->TryCancel(); })) {
      return absl::CancelledError("broker call cancelled before it started");
    }
    v1::AcquireImportLeaseRequest req;
    req.set_holder(holder);
    auto reader = stub_->AcquireImportLease(raw, req);
    v1::ImportLeaseEvent ev;
    const bool got = reader->Read(&ev);
    // From here on a Cancel() no longer touches the call: a granted lease is
    // released by destroying it, not by the canceller.
    if (cancel != nullptr) cancel->Unregister(raw);
    if (!got || !ev.granted()) {
      ctx->TryCancel();
      grpc::Status st = reader->Finish();
      if (st.ok()) return absl::UnavailableError("broker ended the import lease call without granting it");
      return FromGrpcStatus(st);
    }
    return std::unique_ptr<ImportLease>(new GrpcLease(std::move(ctx), std::move(reader)));
  }

  absl::StatusOr<std::vector<StatResult>> StatSegments(const std::vector<std::string>& ids, BrokerClass cls,
                                                       absl::Time deadline, CallCanceller* cancel) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(ToChrono(deadline));
    if (cancel != nullptr && !cancel->Register(&ctx, [&ctx] { ctx.TryCancel(); })) {
      return absl::CancelledError("broker call cancelled before it started");
    }
    auto result = Stat(ctx, ids, cls);
    if (cancel != nullptr) cancel->Unregister(&ctx);
    return result;
  }

  absl::StatusOr<SegmentData> FetchSegment(const std::string& id, BrokerClass cls, absl::Time deadline,
                                            CallCanceller* cancel) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(ToChrono(deadline));
    if (cancel != nullptr && !cancel->Register(&ctx, [&ctx] { ctx.TryCancel(); })) {
      return absl::CancelledError("broker call cancelled before it started");
    }
    auto result = Fetch(ctx, id, cls);
    if (cancel != nullptr) cancel->Unregister(&ctx);
    return result;
  }

 private:
  // The FetchSegment call on `ctx`.
  absl::StatusOr<SegmentData> Fetch(grpc::ClientContext& ctx, const std::string& id, BrokerClass cls) {
    v1::FetchSegmentRequest req;
    req.set_message_id(id);
    req.set_traffic_class(cls);
    auto reader = stub_->FetchSegment(&ctx, req);
    SegmentData out;
    v1::FetchSegmentResponse resp;
    bool first = true;
    while (reader->Read(&resp)) {
      if (first && resp.has_metadata()) {
        const auto& m = resp.metadata();
        out.name = m.name();
        out.part = m.part();
        out.begin = m.begin();
        out.end = m.end();
        out.file_size = m.file_size();
        out.data.reserve(m.decoded_size());
      }
      first = false;
      out.data.append(resp.data());
    }
    grpc::Status st = reader->Finish();
    if (!st.ok()) return FromGrpcStatus(st);
    return out;
  }

  // The StatSegments call on `ctx`.
  absl::StatusOr<std::vector<StatResult>> Stat(grpc::ClientContext& ctx, const std::vector<std::string>& ids,
                                               BrokerClass cls) {
    v1::StatSegmentsRequest req;
    for (const auto& id : ids) req.add_message_ids(id);
    req.set_traffic_class(cls);
    auto reader = stub_->StatSegments(&ctx, req);
    std::vector<StatResult> out;
    v1::StatSegmentsResponse resp;
    while (reader->Read(&resp)) out.push_back({resp.message_id(), resp.exists(), resp.error()});
    grpc::Status st = reader->Finish();
    if (!st.ok()) return FromGrpcStatus(st);
    return out;
  }

  std::unique_ptr<v1::Broker::Stub> stub_;
};

GrpcLease::~GrpcLease() {
  ctx_->TryCancel();  // ends the server stream: the broker frees the lease at once
  reader_->Finish();
}

}  // namespace

void CallCanceller::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  for (auto& [call, cancel] : calls_) cancel();
}

bool CallCanceller::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

bool CallCanceller::Register(const void* call, std::function<void()> cancel) {
  absl::MutexLock lock(&mu_);
  if (cancelled_) return false;
  calls_[call] = std::move(cancel);
  return true;
}

void CallCanceller::Unregister(const void* call) {
  absl::MutexLock lock(&mu_);
  calls_.erase(call);
}

std::unique_ptr<BrokerClient> MakeGrpcBrokerClient(std::shared_ptr<grpc::Channel> channel) {
  return std::make_unique<GrpcBrokerClient>(std::move(channel));
}

}  // namespace nzbmesh::importer
