// absl::Status <-> grpc::Status, in one place. Services keep absl::Status
// inside and convert only at the gRPC edge (handlers and client stubs).
#ifndef NZBMESH_COMMON_STATUS_GRPC_STATUS_H_
#define NZBMESH_COMMON_STATUS_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace nzbmesh {

// Codes map one to one (both follow google.rpc.Code); the message is kept.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace nzbmesh

#endif  // NZBMESH_COMMON_STATUS_GRPC_STATUS_H_
