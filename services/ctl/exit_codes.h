// nzbmeshctl's exit codes: a contract scripts rely on (also printed by
// `nzbmeshctl --help`). Never renumber; add new codes at the end.
#ifndef NZBMESH_SERVICES_CTL_EXIT_CODES_H_
#define NZBMESH_SERVICES_CTL_EXIT_CODES_H_

#include "absl/status/status.h"

namespace nzbmesh::ctl {

enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,        // anything not listed below
  kExitUsage = 2,        // bad command line
  kExitNotFound = 3,     // job, path, provider or stream does not exist
  kExitUnavailable = 4,  // a service is down, unreachable, not serving, or timed out
  kExitJobFailed = 5,    // `import --wait`: the job ended FAILED or CANCELLED
  kExitDenied = 6,       // authentication / API key / TLS identity refused
  kExitConflict = 7,     // the request does not fit the current state (e.g. cancel a finished job)
};

inline constexpr char kExitCodeHelp[] =
    "Exit codes:\n"
    "  0  success\n"
    "  1  error (anything not listed below)\n"
    "  2  usage error (bad command line)\n"
    "  3  not found (job, path, provider, stream)\n"
    "  4  unavailable (service down or unreachable, not serving, timed out)\n"
    "  5  import --wait: the job ended FAILED or CANCELLED\n"
    "  6  denied (authentication, API key)\n"
    "  7  conflict (the request does not fit the current state, e.g. cancelling a finished job)\n";

// The exit code for a failed call.
inline int ExitCodeFor(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk: return kExitOk;
    case absl::StatusCode::kNotFound: return kExitNotFound;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded: return kExitUnavailable;
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied: return kExitDenied;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted: return kExitConflict;
    default: return kExitError;
  }
}

}  // namespace nzbmesh::ctl

#endif  // NZBMESH_SERVICES_CTL_EXIT_CODES_H_
