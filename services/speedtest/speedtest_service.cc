#include "services/speedtest/speedtest_service.h"

#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/status/grpc_status.h"

namespace nzbmesh::speedtest {
namespace {

class RunReactor : public grpc::ServerWriteReactor<v1::SpeedTestProgress> {
 public:
  RunReactor(SpeedTester* tester, const v1::RunSpeedTestRequest& req, const std::string& caller)
      : tester_(tester), provider_(req.provider()), outbox_(std::make_shared<Outbox>(this)) {
    auto id = tester_->Subscribe(req, caller, outbox_);
    absl::MutexLock lock(&outbox_->mu);
    if (!id.ok()) {
      FinishLocked(ToGrpcStatus(id.status()));
      return;
    }
    id_ = *id;
    subscribed_ = true;
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&outbox_->mu);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    PumpLocked();
  }

  void OnCancel() override {
    bool unsubscribe = false;
    {
      absl::MutexLock lock(&outbox_->mu);
      unsubscribe = subscribed_;
      if (!writing_) FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client"));
    }
    if (unsubscribe) tester_->Unsubscribe(provider_, id_);
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&outbox_->mu);
      outbox_->reactor = nullptr;
    }
    delete this;
  }

 private:
  // Shared with the run (which may outlive this reactor).
  struct Outbox : SpeedTester::Sink {
    explicit Outbox(RunReactor* r) : reactor(r) {}
    void OnProgress(const v1::SpeedTestProgress& p) override {
      absl::MutexLock lock(&mu);
      if (reactor == nullptr) return;
      reactor->pending_ = p;
      reactor->PumpLocked();
    }
    void OnFinal(const absl::StatusOr<v1::SpeedTestResult>& r) override {
      absl::MutexLock lock(&mu);
      if (reactor == nullptr) return;
      if (r.ok()) {
        v1::SpeedTestProgress f;
        f.set_final(true);
        f.set_elapsed_seconds(r->duration_seconds());
        f.set_bytes(r->bytes());
        f.set_megabytes_per_second(r->megabytes_per_second());
        *f.mutable_result() = *r;
        reactor->final_ = std::move(f);
        reactor->status_ = grpc::Status::OK;
      } else {
        reactor->status_ = ToGrpcStatus(r.status());
      }
      reactor->PumpLocked();
    }
    absl::Mutex mu;  // protects `reactor` and the reactor's write state
    RunReactor* reactor ABSL_GUARDED_BY(mu);
  };

  // Starts the next write, or finishes when everything was written.
  void PumpLocked() {
    if (writing_ || finished_) return;
    if (final_) {
      current_ = std::move(*final_);
      final_.reset();
      pending_.reset();
      final_written_ = true;
      writing_ = true;
      StartWrite(&current_);
      return;
    }
    if (status_) {
      FinishLocked(*status_);
      return;
    }
    if (pending_ && !final_written_) {
      current_ = std::move(*pending_);
      pending_.reset();
      writing_ = true;
      StartWrite(&current_);
    }
  }
  void FinishLocked(const grpc::Status& s) {
    if (finished_) return;
    finished_ = true;
    Finish(s);
  }

  SpeedTester* const tester_;
  const std::string provider_;
  std::shared_ptr<Outbox> outbox_;
  uint64_t id_ = 0;
  // The write state below is guarded by outbox_->mu (not annotated: the
  // analysis cannot see that Outbox::mu and outbox_->mu are the same lock).
  bool subscribed_ = false;
  bool writing_ = false;
  bool finished_ = false;
  bool final_written_ = false;
  v1::SpeedTestProgress current_;
  std::optional<v1::SpeedTestProgress> pending_;
  std::optional<v1::SpeedTestProgress> final_;
  std::optional<grpc::Status> status_;
};

}  // namespace

std::string CallerOf(const std::string& peer) {
  const size_t colon = peer.rfind(':');
  const size_t first = peer.find(':');
  if (colon == std::string::npos || colon == first) return peer;  // "unix:/path" or no port
  return peer.substr(0, colon);
}

grpc::ServerWriteReactor<v1::SpeedTestProgress>* SpeedTestService::RunSpeedTest(grpc::CallbackServerContext* ctx,
                                                                                const v1::RunSpeedTestRequest* req) {
  return new RunReactor(tester_, *req, CallerOf(ctx->peer()));
}

grpc::ServerUnaryReactor* SpeedTestService::ListResults(grpc::CallbackServerContext* ctx,
                                                        const v1::ListResultsRequest* req,
                                                        v1::ListResultsResponse* resp) {
  // A short indexed query bounded by `limit`: run inline on the callback thread.
  auto* reactor = ctx->DefaultReactor();
  auto results = tester_->ListResults(req->provider(), req->limit());
  if (!results.ok()) {
    reactor->Finish(ToGrpcStatus(results.status()));
    return reactor;
  }
  for (auto& r : *results) *resp->add_results() = std::move(r);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace nzbmesh::speedtest
