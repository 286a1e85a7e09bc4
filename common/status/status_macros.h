// The small Status helpers Abseil 20220623 lacks.
//
//   NZB_RETURN_IF_ERROR(expr);            // returns expr's Status when not OK
//   NZB_ASSIGN_OR_RETURN(auto v, expr);   // unwraps a StatusOr or returns its Status
#ifndef NZBMESH_COMMON_STATUS_STATUS_MACROS_H_
#define NZBMESH_COMMON_STATUS_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define NZB_RETURN_IF_ERROR(expr)                \
  do {                                           \
    ::absl::Status nzb_status_ = (expr);         \
    if (!nzb_status_.ok()) return nzb_status_;   \
  } while (0)

#define NZB_STATUS_CONCAT_INNER_(a, b) a##b
#define NZB_STATUS_CONCAT_(a, b) NZB_STATUS_CONCAT_INNER_(a, b)

#define NZB_ASSIGN_OR_RETURN(lhs, expr) \
  NZB_ASSIGN_OR_RETURN_IMPL_(NZB_STATUS_CONCAT_(nzb_statusor_, __LINE__), lhs, expr)

#define NZB_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                               \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // NZBMESH_COMMON_STATUS_STATUS_MACROS_H_
