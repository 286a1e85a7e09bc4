// NzbUrlClient: downloads an NZB over HTTP or HTTPS for SABnzbd
// `mode=addurl` (Sonarr/Radarr hand the frontend an indexer URL).
//
// Contract: only http and https URLs; at most `max_redirects` redirects
// (301/302/303/307/308 with a Location), each hop checked for the scheme
// again; a body over `max_bytes` is refused (a Content-Length over it before
// any body byte is read); the whole fetch, redirects included, must finish
// within `timeout`. HTTPS verifies the server certificate against the system
// trust store (plus `ca_file`) and the host name.
//
// Threading: the client owns one thread running its own io_context; every
// fetch is an asynchronous state machine on it, so a slow or silent server
// costs a timer and a socket, never a thread, and never the frontend's IO
// threads. `done` runs exactly once, on the client's thread (or inline in
// Fetch() after Shutdown()).
#ifndef NZBMESH_SERVICES_FRONTEND_NZB_URL_CLIENT_H_
#define NZBMESH_SERVICES_FRONTEND_NZB_URL_CLIENT_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace boost::asio {
class io_context;
namespace ssl {
class context;
}  // namespace ssl
}  // namespace boost::asio

namespace nzbmesh::frontend {

// An absolute http(s) URL split for a request. `host` has no brackets.
struct HttpUrl {
  std::string scheme;    // "http" or "https"
  std::string userinfo;  // "user:password" (percent-decoded) or ""
  std::string host;
  std::string port;      // always set ("80"/"443" by default)
  std::string target;    // path and query, starts with '/'; no fragment
  bool ipv6 = false;     // host is an IPv6 literal
  // scheme://host[:port]target, without userinfo and without the query: safe
  // to show in errors and logs (indexer URLs carry API keys in the query).
  std::string Redacted() const;
};

// INVALID_ARGUMENT for a relative URL, another scheme ("unsupported URL
// scheme 'ftp' (only http and https)"), a missing host, a bad port, or
// whitespace/control characters.
absl::StatusOr<HttpUrl> ParseHttpUrl(absl::string_view url);
// The URL a Location header points at, resolved against `base` (absolute,
// scheme-relative "//host/p", absolute-path "/p" or relative "p").
absl::StatusOr<HttpUrl> ResolveLocation(const HttpUrl& base, absl::string_view location);
// The file name of a Content-Disposition header (filename*=UTF-8''… wins over
// filename=…), without any directory part; "" when there is none.
std::string ContentDispositionFilename(absl::string_view header);

class NzbUrlClient {
 public:
  struct Options {
    // Largest NZB accepted, in bytes (the frontend passes max_upload_bytes, the addfile cap). At least 1.
    size_t max_bytes = 64 << 20;
    // The whole fetch, every redirect included. Must be > 0.
    absl::Duration timeout = absl::Seconds(30);
    // Redirects followed; one more is an error. 0..5.
    int max_redirects = 5;
    // PEM file of extra trusted CAs for https, beside the system store. "" = system store only.
    std::string ca_file;
    std::string user_agent = "nzbmesh";
  };

  struct Result {
    std::string body;      // the NZB bytes
    std::string filename;  // from Content-Disposition; "" when the server sent none
    HttpUrl url;           // the URL that answered (after redirects)
  };
  using Callback = std::function<void(absl::StatusOr<Result>)>;

  // INVALID_ARGUMENT for a bad option or an unreadable ca_file.
  static absl::StatusOr<std::unique_ptr<NzbUrlClient>> Create(const Options& options);
  ~NzbUrlClient();  // Shutdown()

  // Starts fetching `url`. Errors passed to `done`: INVALID_ARGUMENT (bad URL
  // or scheme, also after a redirect), NOT_FOUND / FAILED_PRECONDITION (HTTP
  // 404/410 / any other non-2xx answer: "HTTP 404 Not Found"),
  // RESOURCE_EXHAUSTED (body over max_bytes), FAILED_PRECONDITION (too many
  // redirects, empty body), UNAVAILABLE (resolve/connect/TLS/read errors),
  // DEADLINE_EXCEEDED (timeout), CANCELLED (Shutdown).
  void Fetch(const std::string& url, Callback done);

  // Cancels every fetch in progress (their `done` gets CANCELLED) and joins
  // the thread. Later Fetch() calls fail at once. Idempotent.
  void Shutdown();

  int in_flight() const;

 private:
  class Op;
  explicit NzbUrlClient(const Options& options);
  void Forget(uint64_t id);

  const Options options_;
  std::unique_ptr<boost::asio::io_context> ioc_;
  std::unique_ptr<boost::asio::ssl::context> tls_;
  struct WorkGuard;
  std::unique_ptr<WorkGuard> work_;
  std::thread thread_;

  mutable absl::Mutex mu_;  // protects ops_, next_id_, stopped_
  absl::flat_hash_map<uint64_t, std::weak_ptr<Op>> ops_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_NZB_URL_CLIENT_H_
