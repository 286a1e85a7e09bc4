// BrokerClient: the importer's view of the broker (the seam that tests can
// replace). The gRPC implementation speaks nzbmesh.broker.v1.Broker.
//
// Threading: thread-safe; every call blocks the calling thread. Every call
// takes a CallCanceller (nullable) through which another thread ends it
// early with CANCELLED: that is how Stop() of a worker pool or health sweep
// ends the broker calls its threads are blocked in.
#ifndef NZBMESH_SERVICES_IMPORTER_BROKER_CLIENT_H_
#define NZBMESH_SERVICES_IMPORTER_BROKER_CLIENT_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nzbmesh/broker/v1/broker.grpc.pb.h"

namespace nzbmesh::importer {

using BrokerClass = nzbmesh::broker::v1::TrafficClass;

struct StatResult {
  std::string message_id;
  bool exists = false;
  std::string error;  // non-empty: the check itself failed; `exists` is meaningless
};

// One decoded article and its yEnc header fields.
struct SegmentData {
  std::string name;          // =ybegin name
  int64_t part = 0;          // 0 for single-part posts
  int64_t begin = 0;         // 1-based offset of the part's first byte in the file
  int64_t end = 0;           // 1-based offset of its last byte
  int64_t file_size = 0;     // =ybegin size (whole file)
  std::string data;          // decoded bytes
};

// Lets one thread cancel the broker calls other threads make with it (a
// background loop's Stop() ending the calls its threads are blocked in; one
// canceller may serve any number of threads and calls at once).
// Cancel() is final: calls started afterwards fail at once with CANCELLED.
// Thread-safe.
class CallCanceller {
 public:
  void Cancel();
  bool cancelled() const;
  // For BrokerClient implementations: `cancel` runs on Cancel() while the
  // call `call` is registered. False (nothing registered) when Cancel()
  // already ran. Unregister waits for a Cancel() that is running `cancel`,
  // so the call's state may be destroyed right after it.
  bool Register(const void* call, std::function<void()> cancel);
  void Unregister(const void* call);

 private:
  mutable absl::Mutex mu_;  // protects cancelled_ and calls_
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::map<const void*, std::function<void()>> calls_ ABSL_GUARDED_BY(mu_);
};

// Held while an import job runs; destroying it releases the lease.
class ImportLease {
 public:
  virtual ~ImportLease() = default;
};

class BrokerClient {
 public:
  virtual ~BrokerClient() = default;
  // Blocks until the broker grants an import lease. UNAVAILABLE when the
  // broker cannot be reached; CANCELLED when `cancel` (nullable) is or gets
  // cancelled. The lease itself outlives `cancel`'s Cancel(): destroying it
  // is what releases it.
  virtual absl::StatusOr<std::unique_ptr<ImportLease>> AcquireImportLease(const std::string& holder,
                                                                          CallCanceller* cancel) = 0;
  // STATs the ids (results in any order, one per id). `cancel` (nullable)
  // ends the call early with CANCELLED.
  virtual absl::StatusOr<std::vector<StatResult>> StatSegments(const std::vector<std::string>& ids, BrokerClass cls,
                                                               absl::Time deadline, CallCanceller* cancel) = 0;
  // Fetches one article. NOT_FOUND: missing everywhere; DATA_LOSS: CRC
  // mismatch; UNAVAILABLE / DEADLINE_EXCEEDED / RESOURCE_EXHAUSTED: transient.
  // `cancel` (nullable) ends the call early with CANCELLED.
  virtual absl::StatusOr<SegmentData> FetchSegment(const std::string& id, BrokerClass cls, absl::Time deadline,
                                                   CallCanceller* cancel) = 0;
};

std::unique_ptr<BrokerClient> MakeGrpcBrokerClient(std::shared_ptr<grpc::Channel> channel);

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_BROKER_CLIENT_H_
