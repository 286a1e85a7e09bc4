// nzbmeshctl: the human and script face of nzbmesh's gRPC APIs (kubectl in
// spirit). The whole CLI is RunCtl(), so main() stays one line and the
// command table, flag parsing and output are plain functions.
//
// Structure: a table of commands (name, arguments, flags, help, handler);
// a generic parser turns argv into global options + one command's flags
// and positionals; handlers call one service and print a Table / Details
// (default) or JSON (--output json). Errors name the service and address
// and map to the exit codes in exit_codes.h.
#ifndef NZBMESH_SERVICES_CTL_CTL_H_
#define NZBMESH_SERVICES_CTL_CTL_H_

#include <ostream>
#include <string>
#include <vector>

namespace nzbmesh::ctl {

// `args` excludes the program name. Returns the process exit code.
int RunCtl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace nzbmesh::ctl

#endif  // NZBMESH_SERVICES_CTL_CTL_H_
