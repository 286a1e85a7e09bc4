// SegmentFetcher over the broker's gRPC API (nzbmesh.broker.v1.Broker), with
// the callback API: each fetch is a ClientReadReactor over the
// FetchSegment stream, so FetchHandle::Cancel() is ClientContext::TryCancel()
// and the broker drops the request from its queue or frees its slot at once.
// A StreamSession is an OpenStreamSession call held open until the session
// object is destroyed.
//
// Threading: callbacks run on gRPC's callback threads; `done` callbacks must
// not block. The destructor cancels every call still running and waits for
// them to finish.
#ifndef NZBMESH_SERVICES_FRONTEND_GRPC_SEGMENT_FETCHER_H_
#define NZBMESH_SERVICES_FRONTEND_GRPC_SEGMENT_FETCHER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nzbmesh/broker/v1/broker.grpc.pb.h"
#include "services/frontend/segment_fetcher.h"

namespace nzbmesh::frontend {

class GrpcSegmentFetcher : public SegmentFetcher {
 public:
  struct Options {
    // Deadline of one FetchSegment call (queueing at the broker included).
    // Bounds the broker's retries too (R8). 0 = no deadline.
    absl::Duration fetch_timeout = absl::Seconds(60);
    // Preferred chunk size of the response stream; 0 = broker default (256 KiB).
    uint32_t chunk_bytes = 0;
  };

  // `channel` to the broker (see common/grpc for credentials).
  GrpcSegmentFetcher(std::shared_ptr<grpc::Channel> channel, Options options);
  ~GrpcSegmentFetcher() override;

  std::unique_ptr<FetchHandle> Fetch(const std::string& message_id, const FetchOptions& options,
                                     FetchCallback done) override;
  std::unique_ptr<StreamSession> OpenSession(const std::string& label) override;
  // ceil(capacity_slots / sessions), both from the latest session event:
  // sessions is the broker's count (every frontend's players), at least the
  // ones open through this fetcher; 0 while none is open here.
  int StreamShare() const override;

  // Calls (fetches and sessions) not finished yet.
  int outstanding() const;

  // State shared by a call's reactor and its handle; the ClientContext lives
  // here so Cancel() stays valid after the reactor is gone.
  struct CallState {
    grpc::ClientContext context;
    absl::Mutex mu;
    bool done ABSL_GUARDED_BY(mu) = false;
    // TryCancel outside the lock: it is safe on a finished call (the context
    // keeps the call referenced) and may not run reactions under our lock.
    void Cancel() {
      {
        absl::MutexLock lock(&mu);
        if (done) return;
      }
      context.TryCancel();
    }
  };

 private:
  class FetchReactor;
  class SessionReactor;
  friend class GrpcFetchHandle;
  // Sends PromoteFetch(session, message_id) without waiting for the answer
  // (a lost promotion only costs the fetch its earlier place).
  void SendPromote(uint64_t session_id, const std::string& message_id);
  void Add(CallState* s);
  void Remove(CallState* s);

  const Options options_;
  std::unique_ptr<broker::v1::Broker::Stub> stub_;
  mutable absl::Mutex mu_;  // protects live_
  absl::flat_hash_set<CallState*> live_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> capacity_{0};    // from the latest StreamSessionEvent
  std::atomic<int64_t> broker_sessions_{0};  // every frontend's, from the latest StreamSessionEvent
  // Session objects alive; shared with them (a session may outlive nothing
  // it needs, but the count stays valid either way).
  const std::shared_ptr<std::atomic<int>> open_sessions_ = std::make_shared<std::atomic<int>>(0);
};

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_GRPC_SEGMENT_FETCHER_H_
