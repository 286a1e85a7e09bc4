// A minimal blocking HTTP/1.1 client for the frontend's admin endpoints
// (plain http only: the frontends' admin API is reached on loopback or
// inside the cluster network). One request per connection (Connection:
// close); chunked and Content-Length bodies.
#ifndef NZBMESH_SERVICES_CTL_HTTP_CLIENT_H_
#define NZBMESH_SERVICES_CTL_HTTP_CLIENT_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace nzbmesh::ctl {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// `url` is "http://host:port/path?query". Errors: INVALID_ARGUMENT (bad URL,
// https), UNAVAILABLE (connect/read failed), DEADLINE_EXCEEDED.
absl::StatusOr<HttpResponse> HttpRequest(const std::string& method, const std::string& url,
                                         const std::map<std::string, std::string>& headers, absl::Duration timeout);

}  // namespace nzbmesh::ctl

#endif  // NZBMESH_SERVICES_CTL_HTTP_CLIENT_H_
