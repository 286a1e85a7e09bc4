// gRPC face of the broker: thin handlers over Pool (TF Serving style):
// validate, convert, call the pool, convert the status once at the edge.
// Uses the callback API: one reactor object per RPC; OnCancel stops the
// upstream work at once (a cancelled fetch leaves the queue or is drained).
#ifndef NZBMESH_SERVICES_BROKER_BROKER_SERVICE_H_
#define NZBMESH_SERVICES_BROKER_BROKER_SERVICE_H_

#include <atomic>
#include <thread>

#include "nzbmesh/broker/v1/broker.grpc.pb.h"
#include "services/broker/candidate_pools.h"
#include "services/broker/pool.h"

namespace nzbmesh::broker {

// Broker::CallbackService, except that FetchSegment and FetchCandidateSegment
// are raw methods: they write serialized FetchSegmentResponse bytes
// themselves (segment_wire.h), so the article is not copied into a protobuf
// message. On the wire nothing changes. (Layered per method rather than raw
// over CallbackService, whose typed overloads clang would report as hidden.)
// A method added to broker.proto must be added here.
using BrokerServiceBase = v1::Broker::WithRawCallbackMethod_FetchSegment<
    v1::Broker::WithCallbackMethod_StatSegments<v1::Broker::WithCallbackMethod_OpenStreamSession<
        v1::Broker::WithCallbackMethod_AcquireImportLease<v1::Broker::WithCallbackMethod_GetPoolStatus<
            v1::Broker::WithCallbackMethod_TestProvider<v1::Broker::WithCallbackMethod_PromoteFetch<
                v1::Broker::WithRawCallbackMethod_FetchCandidateSegment<v1::Broker::Service>>>>>>>>;

class BrokerService final : public BrokerServiceBase {
 public:
  // `pool` (and `candidates`, which may be null: FetchCandidateSegment is then
  // UNIMPLEMENTED) must outlive the service.
  explicit BrokerService(Pool* pool, CandidatePools* candidates = nullptr);
  ~BrokerService() override;

  // Sends every open stream session the pool's capacity and session count
  // (StreamSessionEvent) if they changed; coalesced on a thread of its own,
  // at most one round per ~20 ms, and checked once a second regardless.
  // Sessions opening and closing call it; call it after reconfiguring the
  // pool for the sessions to learn the new capacity at once.
  void SessionStateChanged();

  // Ends every open session and lease stream (used before server shutdown so
  // the grace period is not spent on calls that never end by themselves).
  void EndLongLivedCalls();

  grpc::ServerWriteReactor<grpc::ByteBuffer>* FetchSegment(grpc::CallbackServerContext* ctx,
                                                          const grpc::ByteBuffer* request) override;
  grpc::ServerWriteReactor<v1::StatSegmentsResponse>* StatSegments(grpc::CallbackServerContext* ctx,
                                                                   const v1::StatSegmentsRequest* req) override;
  grpc::ServerWriteReactor<v1::StreamSessionEvent>* OpenStreamSession(grpc::CallbackServerContext* ctx,
                                                                      const v1::OpenStreamSessionRequest* req) override;
  grpc::ServerWriteReactor<v1::ImportLeaseEvent>* AcquireImportLease(grpc::CallbackServerContext* ctx,
                                                                     const v1::AcquireImportLeaseRequest* req) override;
  grpc::ServerUnaryReactor* GetPoolStatus(grpc::CallbackServerContext* ctx, const v1::GetPoolStatusRequest* req,
                                          v1::PoolStatus* resp) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* FetchCandidateSegment(grpc::CallbackServerContext* ctx,
                                                                   const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* PromoteFetch(grpc::CallbackServerContext* ctx, const v1::PromoteFetchRequest* req,
                                         v1::PromoteFetchResponse* resp) override;
  grpc::ServerUnaryReactor* TestProvider(grpc::CallbackServerContext* ctx, const v1::TestProviderRequest* req,
                                         v1::TestProviderResponse* resp) override;

  class LongLived;  // session and lease reactors register here

 private:
  Pool* const pool_;
  CandidatePools* const candidates_;
  void BroadcastSessionState();

  absl::Mutex broadcast_mu_;
  bool broadcast_due_ ABSL_GUARDED_BY(broadcast_mu_) = false;
  bool broadcast_stop_ ABSL_GUARDED_BY(broadcast_mu_) = false;
  absl::Mutex mu_;  // protects long_lived_ and ending_
  std::set<LongLived*> long_lived_ ABSL_GUARDED_BY(mu_);
  bool ending_ ABSL_GUARDED_BY(mu_) = false;
  // TestProvider budget: concurrent test dials per candidate endpoint.
  std::map<std::string, int> testing_ ABSL_GUARDED_BY(mu_);
  std::thread broadcaster_;  // last: it uses the members above
};

absl::StatusOr<TrafficClass> FromProto(v1::TrafficClass c);
// A candidate provider from the API (TestProvider, FetchCandidateSegment).
absl::StatusOr<ProviderOptions> FromProto(const v1::ProviderConfig& p);

}  // namespace nzbmesh::broker

#endif  // NZBMESH_SERVICES_BROKER_BROKER_SERVICE_H_
