#include "services/frontend/frontend_server.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <optional>
#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/log/log.h"
#include "services/frontend/file_reader.h"
#include "services/frontend/http_util.h"
#include "services/frontend/range.h"
#include "services/frontend/sabnzbd_api.h"
#include "services/frontend/webdav.h"

namespace nzbmesh::frontend {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

namespace {

constexpr absl::string_view kDavPrefix = "/dav";
constexpr const char* kDavAllow = "OPTIONS, GET, HEAD, PROPFIND, DELETE";
constexpr absl::string_view kStreamsPath = "/api/streams";

std::chrono::steady_clock::duration ToChrono(absl::Duration d) { return absl::ToChronoNanoseconds(d); }

const char* Reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 301: return "Moved Permanently";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

std::string MethodLabel(absl::string_view m) {
  static const char* const kKnown[] = {"GET", "HEAD", "OPTIONS", "PROPFIND", "DELETE", "POST", "PUT",
                                       "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK", "UNLOCK"};
  for (const char* k : kKnown) {
    if (m == k) return k;
  }
  return "other";
}

struct Reply {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool head_only = false;  // HEAD: headers (with the GET Content-Length) only
  bool close = false;
  int64_t content_length = -1;  // -1 = body.size()
};

Reply TextReply(int status, std::string body) {
  Reply r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  r.body = std::move(body);
  if (!r.body.empty() && r.body.back() != '\n') r.body += "\n";
  return r;
}

// HTTP status for a failed catalog call.
Reply CatalogError(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kNotFound:
      return TextReply(404, "not found");
    case absl::StatusCode::kInvalidArgument:
      return TextReply(400, std::string(s.message()));
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted: {
      Reply r = TextReply(503, absl::StrCat("catalog unavailable: ", s.message()));
      r.headers.emplace_back("Retry-After", "5");
      return r;
    }
    default:
      return TextReply(502, absl::StrCat("catalog error: ", s.message()));
  }
}

importer::v1::Entry RootEntry() {
  importer::v1::Entry e;
  e.set_path("/");
  e.set_name("");
  e.set_directory(true);
  return e;
}

}  // namespace

// ---------------------------------------------------------------------------
// Acceptor

class FrontendServer::Acceptor {
 public:
  explicit Acceptor(asio::io_context& ioc) : acceptor(asio::make_strand(ioc)), work(asio::make_work_guard(ioc)) {}
  tcp::acceptor acceptor;
  // Keeps the io threads running while no socket operation is pending (a
  // session waiting for the importer or an addurl download arms none); without
  // it they would return once Shutdown closes the acceptor, before the
  // sessions' close handlers ran. Released by Shutdown right before stop().
  asio::executor_work_guard<asio::io_context::executor_type> work;
};

// ---------------------------------------------------------------------------
// Session: one connection. Every member function runs on strand_.

class FrontendServer::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(FrontendServer* server, std::shared_ptr<asio::io_context> ioc, tcp::socket socket, uint64_t id)
      : server_(server),
        o_(server->options_),
        ioc_(std::move(ioc)),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        id_(id) {
    beast::error_code ec;
    auto remote = socket_.remote_endpoint(ec);
    if (!ec) client_ = remote.address().to_string();
  }

  ~Session() { server_->Unregister(id_); }

  void Start() {
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->ReadRequest(); });
  }

  // Shutdown: close now when idle, else after the response in progress.
  void Drain() {
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] {
      self->drain_ = true;
      if (self->state_ == State::kIdle) self->CloseNow();
    });
  }

  void ForceClose() {
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->Abort(false); });
  }

 private:
  enum class State { kIdle, kReading, kHandling, kStreaming, kClosed };

  // The current part's reader as GET /api/streams sees it (another thread).
  struct ReaderRef {
    absl::Mutex mu;  // protects reader
    std::weak_ptr<FileReader> reader ABSL_GUARDED_BY(mu);
  };

  struct Stream {
    std::shared_ptr<FileCache> file;
    std::vector<ByteRange> parts;
    bool multipart = false;
    std::string boundary;
    std::string content_type;
    int64_t size = 0;
    size_t part = 0;
    std::shared_ptr<FileReader> reader;
    std::shared_ptr<const StreamSession> session;
    std::string prefix;  // bytes to send before the next chunk (headers, part headers)
    bool headers_sent = false;
    int64_t body_bytes = 0;
    int64_t file_pos = 0;  // next file byte of the current part
    absl::Time started;
    uint64_t gen = 0;
    std::shared_ptr<ActiveStream> entry;  // in server_->streams_
    std::shared_ptr<ReaderRef> reader_ref = std::make_shared<ReaderRef>();
  };

  // ---- plumbing -------------------------------------------------------------

  template <typename F>
  void Post(F&& f) {
    asio::post(socket_.get_executor(), std::forward<F>(f));
  }

  void Arm(absl::Duration d) {
    uint64_t g = ++timer_gen_;
    timer_.expires_after(ToChrono(d));
    timer_.async_wait([self = shared_from_this(), g](beast::error_code ec) {
      if (!ec && g == self->timer_gen_) self->OnTimeout();
    });
  }
  void Disarm() {
    ++timer_gen_;
    timer_.cancel();
  }
  void OnTimeout() {
    if (state_ == State::kStreaming || state_ == State::kHandling) {
      Abort(true);  // a write stalled: the client stopped reading
    } else {
      CloseNow();
    }
  }

  void CloseNow() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    Disarm();
    beast::error_code ec;
    absl::MutexLock lock(&fd_mu_);
    fd_open_ = false;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  // Sends FIN, discards what the client still sends for a moment, then closes,
  // so an error reply is not lost to a TCP reset over unread request bytes.
  void LingerClose() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    Arm(absl::Seconds(1));
    state_ = State::kClosed;
    LingerRead();
  }
  void LingerRead() {
    socket_.async_read_some(asio::buffer(discard_), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec || ++self->linger_reads_ > 256) {
        beast::error_code ignored;
        self->Disarm();
        absl::MutexLock lock(&self->fd_mu_);
        self->fd_open_ = false;
        self->socket_.close(ignored);
        return;
      }
      self->LingerRead();
    });
  }

  // Client gone or fatal error mid-response: cancel everything of the response (F9).
  void Abort(bool client_gone) {
    if (stream_ != nullptr) EndStream(client_gone);
    CloseNow();
  }

  // ---- reading requests -----------------------------------------------------

  void ReadRequest() {
    if (state_ == State::kClosed) return;
    if (drain_) {
      CloseNow();
      return;
    }
    if (buffer_.size() == 0) {
      state_ = State::kIdle;
      Arm(o_.idle_timeout);
      socket_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
        if (ec || self->state_ == State::kClosed) {
          self->CloseNow();
          return;
        }
        self->buffer_.commit(n);
        self->ReadHeader();
      });
      return;
    }
    ReadHeader();
  }

  void ReadHeader() {
    state_ = State::kReading;
    request_start_ = absl::Now();
    Arm(o_.request_timeout);
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(std::min<size_t>(o_.max_header_bytes, 65535)));
    parser_->body_limit(o_.max_upload_bytes);
    http::async_read_header(socket_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (state_ == State::kClosed) return;
    if (ec == http::error::header_limit) {
      Reply r = TextReply(431, "request headers too large");
      r.close = true;
      Send(std::move(r), "other");
      return;
    }
    if (ec == http::error::body_limit) {  // a Content-Length over the limit, refused before the body
      Reply r = TextReply(413, "request body too large");
      r.close = true;
      Send(std::move(r), "other");
      return;
    }
    if (ec) {
      if (ec != http::error::end_of_stream && ec != asio::error::eof && ec != asio::error::operation_aborted &&
          ec != asio::error::connection_reset) {
        Reply r = TextReply(400, absl::StrCat("malformed request: ", ec.message()));
        r.close = true;
        Send(std::move(r), "other");
        return;
      }
      CloseNow();
      return;
    }
    auto& req = parser_->get();
    absl::string_view target(req.target().data(), req.target().size());
    bool upload = absl::StartsWith(target, "/sabnzbd") || absl::StartsWith(target, "/api");
    size_t limit = upload ? o_.max_upload_bytes : o_.max_body_bytes;
    parser_->body_limit(limit);
    if (parser_->content_length() && *parser_->content_length() > limit) {
      Reply r = TextReply(413, absl::StrCat("request body larger than ", limit, " bytes"));
      r.close = true;
      Send(std::move(r), MethodLabel(std::string(req.method_string())));
      return;
    }
    if (parser_->is_done()) {
      OnBody({});
      return;
    }
    if (absl::EqualsIgnoreCase(std::string(req[http::field::expect]), "100-continue")) {
      auto cont = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      asio::async_write(socket_, asio::buffer(*cont), [self = shared_from_this(), cont](beast::error_code ec, size_t) {
        if (ec) {
          self->CloseNow();
          return;
        }
        self->ReadBody();
      });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(beast::error_code ec) {
    if (state_ == State::kClosed) return;
    if (ec == http::error::body_limit) {
      Reply r = TextReply(413, "request body too large");
      r.close = true;
      Send(std::move(r), "other");
      return;
    }
    if (ec) {
      CloseNow();
      return;
    }
    Disarm();
    req_ = parser_->release();
    parser_.reset();
    keep_alive_ = req_.keep_alive();
    method_ = std::string(req_.method_string());
    state_ = State::kHandling;
    Dispatch();
  }

  // ---- writing replies ------------------------------------------------------

  std::string Head(int status, const std::vector<std::pair<std::string, std::string>>& headers,
                   int64_t content_length, bool close) {
    std::string h = absl::StrCat("HTTP/1.1 ", status, " ", Reason(status), "\r\n");
    absl::StrAppend(&h, "Date: ", HttpDate(absl::Now()), "\r\nServer: nzbmesh\r\n");
    for (const auto& [k, v] : headers) absl::StrAppend(&h, k, ": ", v, "\r\n");
    if (status != 204) absl::StrAppend(&h, "Content-Length: ", content_length, "\r\n");  // RFC 9110 §8.6
    absl::StrAppend(&h, "Connection: ", close ? "close" : "keep-alive", "\r\n\r\n");
    return h;
  }

  bool WillClose(bool close) const { return close || !keep_alive_ || drain_ || server_->draining_.load(); }

  void Send(Reply r, std::string method_label) {
    bool close = WillClose(r.close);
    int64_t len = r.content_length >= 0 ? r.content_length : static_cast<int64_t>(r.body.size());
    auto out = std::make_shared<std::string>(Head(r.status, r.headers, len, close));
    if (!r.head_only) out->append(r.body);
    server_->metrics_->RequestDone(method_label, r.status);
    state_ = State::kHandling;
    Arm(o_.write_timeout);
    asio::async_write(socket_, asio::buffer(*out), [self = shared_from_this(), out, close](beast::error_code ec, size_t) {
      if (self->state_ == State::kClosed) return;
      self->Disarm();
      if (ec) {
        self->CloseNow();
        return;
      }
      if (close) {
        self->LingerClose();
        return;
      }
      self->ReadRequest();
    });
  }

  void SendForRequest(Reply r) { Send(std::move(r), MethodLabel(method_)); }

  // ---- dispatch -------------------------------------------------------------

  void Dispatch() {
    absl::string_view target(req_.target().data(), req_.target().size());
    size_t q = target.find('?');
    absl::string_view path = target.substr(0, q);
    query_ = q == absl::string_view::npos ? "" : std::string(target.substr(q + 1));
    if (path == "/healthz") {
      SendForRequest(TextReply(200, "ok"));
    } else if (path == "/readyz") {
      SendForRequest(server_->draining_.load() ? TextReply(503, "draining") : TextReply(200, "ready"));
    } else if (path == "/sabnzbd/api" || path == "/api" || path == "/sabnzbd/api/") {
      HandleSab();
    } else if (path == kStreamsPath || absl::StartsWith(path, absl::StrCat(kStreamsPath, "/"))) {
      HandleStreamsApi(path);
    } else if (path == kDavPrefix || absl::StartsWith(path, "/dav/")) {
      HandleDav(path);
    } else if (path == "/") {
      Reply r = TextReply(301, "see /dav/");
      r.headers.emplace_back("Location", "/dav/");
      SendForRequest(std::move(r));
    } else {
      SendForRequest(TextReply(404, "not found"));
    }
  }

  // True when the request may use /dav/; `user` is set when authenticated.
  bool Authenticate(bool* authenticated) {
    *authenticated = false;
    if (o_.webdav_users.empty()) return true;
    std::string user, password;
    if (!ParseBasicAuth(std::string(req_[http::field::authorization]), &user, &password)) return false;
    std::string hash = Sha256Hex(password);
    bool ok = false;
    for (const auto& u : o_.webdav_users) {
      // Evaluate every user without early exit: timing does not reveal which matched.
      bool name_ok = ConstantTimeEquals(user, u.username);
      bool pass_ok = ConstantTimeEquals(hash, absl::AsciiStrToLower(u.password_sha256));
      ok |= name_ok & pass_ok;
    }
    *authenticated = ok;
    return ok;
  }

  void HandleDav(absl::string_view raw_path) {
    bool authenticated = false;
    if (!Authenticate(&authenticated)) {
      Reply r = TextReply(401, "authentication required");
      r.headers.emplace_back("WWW-Authenticate", absl::StrCat("Basic realm=\"", o_.auth_realm, "\", charset=\"UTF-8\""));
      SendForRequest(std::move(r));
      return;
    }
    auto path = DecodeTargetPath(raw_path, kDavPrefix);
    if (!path.ok()) {
      SendForRequest(TextReply(400, std::string(path.status().message())));
      return;
    }
    path_ = *path;
    const std::string& m = method_;
    if (m == "OPTIONS") {
      Reply r;
      r.headers = {{"DAV", "1"}, {"Allow", kDavAllow}, {"MS-Author-Via", "DAV"}};
      SendForRequest(std::move(r));
    } else if (m == "GET" || m == "HEAD") {
      StatThen([self = shared_from_this()](const importer::v1::Entry& e) { self->HandleGet(e); });
    } else if (m == "PROPFIND") {
      HandlePropfind();
    } else if (m == "DELETE") {
      if (o_.webdav_users.empty() || !authenticated) {
        SendForRequest(TextReply(403, "DELETE requires configured webdav_users"));
        return;
      }
      if (path_ == "/") {
        SendForRequest(TextReply(403, "refusing to delete the root"));
        return;
      }
      server_->deps_.catalog->DeletePath(path_, [self = shared_from_this()](absl::StatusOr<int64_t> r) {
        self->Post([self, r = std::move(r)] {
          if (self->state_ == State::kClosed) return;
          self->server_->files_.Invalidate(self->path_);
          if (!r.ok()) {
            self->SendForRequest(CatalogError(r.status()));
            return;
          }
          Reply rep;
          rep.status = 204;
          self->SendForRequest(std::move(rep));
        });
      });
    } else if (m == "PUT" || m == "MKCOL" || m == "MOVE" || m == "COPY" || m == "PROPPATCH" || m == "LOCK" ||
               m == "UNLOCK" || m == "POST" || m == "PATCH") {
      Reply r = TextReply(405, "the catalog is read-only over WebDAV");
      r.headers.emplace_back("Allow", kDavAllow);
      SendForRequest(std::move(r));
    } else {
      Reply r = TextReply(501, "method not implemented");
      r.headers.emplace_back("Allow", kDavAllow);
      SendForRequest(std::move(r));
    }
  }

  template <typename F>
  void StatThen(F&& f) {
    if (path_ == "/") {
      f(RootEntry());
      return;
    }
    server_->deps_.catalog->Stat(path_, [self = shared_from_this(), f = std::forward<F>(f)](
                                            absl::StatusOr<importer::v1::Entry> e) mutable {
      self->Post([self, f = std::move(f), e = std::move(e)]() mutable {
        if (self->state_ == State::kClosed) return;
        if (!e.ok()) {
          self->SendForRequest(CatalogError(e.status()));
          return;
        }
        f(*e);
      });
    });
  }

  void ListThen(std::function<void(std::vector<importer::v1::Entry>)> f) {
    server_->deps_.catalog->ListDirectory(
        path_, [self = shared_from_this(), f = std::move(f)](absl::StatusOr<std::vector<importer::v1::Entry>> r) {
          self->Post([self, f, r = std::move(r)] {
            if (self->state_ == State::kClosed) return;
            if (!r.ok()) {
              self->SendForRequest(CatalogError(r.status()));
              return;
            }
            f(*r);
          });
        });
  }

  void HandlePropfind() {
    std::string depth = absl::AsciiStrToLower(absl::StripAsciiWhitespace(std::string(req_["Depth"])));
    if (depth.empty()) depth = "infinity";  // RFC 4918 §9.1
    if (depth != "0" && depth != "1" && depth != "infinity") {
      SendForRequest(TextReply(400, "Depth must be 0, 1 or infinity"));
      return;
    }
    auto parsed = ParsePropfind(req_.body());
    if (!parsed.ok()) {
      SendForRequest(TextReply(400, std::string(parsed.status().message())));
      return;
    }
    StatThen([self = shared_from_this(), depth, request = *parsed](const importer::v1::Entry& e) {
      if (e.directory() && depth == "infinity") {
        Reply r;
        r.status = 403;
        r.headers.emplace_back("Content-Type", "application/xml; charset=utf-8");
        r.body = PropfindFiniteDepthBody();
        self->SendForRequest(std::move(r));
        return;
      }
      auto reply = [self, request](std::vector<importer::v1::Entry> entries) {
        Reply r;
        r.status = 207;
        r.headers.emplace_back("Content-Type", "application/xml; charset=utf-8");
        r.body = RenderMultistatus(entries, kDavPrefix, request);
        self->SendForRequest(std::move(r));
      };
      if (!e.directory() || depth == "0") {
        reply({e});
        return;
      }
      self->ListThen([e, reply](std::vector<importer::v1::Entry> children) {
        std::vector<importer::v1::Entry> all = {e};
        all.insert(all.end(), children.begin(), children.end());
        reply(std::move(all));
      });
    });
  }

  void HandleGet(const importer::v1::Entry& e) {
    if (e.directory()) {
      ListThen([self = shared_from_this(), e](std::vector<importer::v1::Entry> children) {
        Reply r;
        r.headers.emplace_back("Content-Type", "text/html; charset=utf-8");
        r.body = RenderHtmlListing(e, children, kDavPrefix);
        r.head_only = self->method_ == "HEAD";
        self->SendForRequest(std::move(r));
      });
      return;
    }
    if (method_ == "HEAD" || e.size() == 0) {
      Plan plan = PlanRanges(e, e.size());
      Reply r;
      r.status = plan.status;
      r.headers = plan.headers;
      r.content_length = plan.content_length;
      r.head_only = true;
      if (plan.status == 416) {
        r.content_length = -1;
        r.head_only = method_ == "HEAD";
        r.body = method_ == "HEAD" ? "" : "range not satisfiable\n";
      }
      SendForRequest(std::move(r));
      return;
    }
    server_->deps_.catalog->GetFileLayout(
        path_, [self = shared_from_this()](absl::StatusOr<std::shared_ptr<const FileLayout>> layout) {
          self->Post([self, layout = std::move(layout)] {
            if (self->state_ == State::kClosed) return;
            if (!layout.ok()) {
              self->SendForRequest(CatalogError(layout.status()));
              return;
            }
            // A file version already open shares its cache and layout map.
            std::shared_ptr<FileCache> file = self->server_->files_.Find(ReadLayout::KeyOf((*layout)->entry()));
            if (file == nullptr) {
              auto read_layout = ReadLayout::FromProto(**layout);
              if (!read_layout.ok()) {
                self->SendForRequest(TextReply(502, std::string(read_layout.status().message())));
                return;
              }
              file = self->server_->files_.Get(*read_layout);
            }
            self->StartGet((*layout)->entry(), std::move(file));
          });
        });
  }

  struct Plan {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::vector<ByteRange> parts;
    bool multipart = false;
    std::string boundary;
    int64_t content_length = 0;
  };

  std::string PartHeader(const Plan& p, const std::string& type, const ByteRange& r, int64_t size) const {
    return absl::StrCat("--", p.boundary, "\r\nContent-Type: ", type, "\r\nContent-Range: ", ContentRange(r, size),
                        "\r\n\r\n");
  }

  Plan PlanRanges(const importer::v1::Entry& e, int64_t size) {
    Plan p;
    std::string etag = EntityTag(e);
    absl::Time mtime = absl::FromUnixSeconds(e.mtime_unix());
    std::string type = ContentTypeFor(e.name());
    p.headers = {{"Accept-Ranges", "bytes"}, {"ETag", etag}, {"Last-Modified", HttpDate(mtime)}};
    RangeResult rr;
    std::string range(req_[http::field::range]);
    std::string if_range(req_[http::field::if_range]);
    if (!range.empty() && (if_range.empty() || IfRangeMatches(if_range, etag, mtime))) {
      RangeLimits limits;
      limits.max_ranges = o_.max_ranges;
      rr = ParseRange(range, size, limits);
    }
    switch (rr.kind) {
      case RangeResult::Kind::kFull:
        p.status = 200;
        p.parts = {ByteRange{0, size - 1}};
        if (size == 0) p.parts.clear();
        p.content_length = size;
        p.headers.emplace_back("Content-Type", type);
        break;
      case RangeResult::Kind::kUnsatisfiable:
        p.status = 416;
        p.headers.emplace_back("Content-Range", absl::StrCat("bytes */", size));
        p.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
        break;
      case RangeResult::Kind::kPartial:
        p.status = 206;
        p.parts = rr.ranges;
        if (p.parts.size() == 1) {
          p.headers.emplace_back("Content-Type", type);
          p.headers.emplace_back("Content-Range", ContentRange(p.parts[0], size));
          p.content_length = p.parts[0].length();
        } else {
          p.multipart = true;
          p.boundary = absl::StrCat("nzbmesh", absl::ToUnixNanos(absl::Now()), "x", reinterpret_cast<uintptr_t>(this));
          p.headers.emplace_back("Content-Type", absl::StrCat("multipart/byteranges; boundary=", p.boundary));
          int64_t n = 0;
          for (const auto& r : p.parts) {
            n += static_cast<int64_t>(PartHeader(p, type, r, size).size()) + r.length() + 2;
          }
          n += static_cast<int64_t>(p.boundary.size()) + 6;  // "--B--\r\n"
          p.content_length = n;
        }
        break;
    }
    return p;
  }

  void StartGet(const importer::v1::Entry& e, std::shared_ptr<FileCache> file) {
    int64_t size = file->layout().size;
    Plan plan = PlanRanges(e, size);
    if (plan.status == 416 || plan.parts.empty()) {
      Reply r;
      r.status = plan.status;
      r.headers = plan.headers;
      if (plan.status == 416) r.body = "range not satisfiable\n";
      SendForRequest(std::move(r));
      return;
    }
    auto s = std::make_unique<Stream>();
    s->file = std::move(file);
    s->parts = plan.parts;
    s->multipart = plan.multipart;
    s->boundary = plan.boundary;
    s->content_type = ContentTypeFor(e.name());
    s->size = size;
    s->started = request_start_;
    s->gen = ++stream_gen_;
    s->prefix = Head(plan.status, plan.headers, plan.content_length, WillClose(false));
    if (s->multipart) s->prefix += PartHeader(plan, s->content_type, s->parts[0], size);
    status_ = plan.status;
    if (last_end_ >= 0 && s->parts[0].first != last_end_) server_->metrics_->Seek();
    last_end_ = s->parts.back().last + 1;
    ActiveStream::Info info;
    info.path = absl::StrCat(kDavPrefix, path_);
    info.client = client_;
    info.user_agent = std::string(req_[http::field::user_agent]);
    info.started = request_start_;
    info.offset = s->parts[0].first;
    std::weak_ptr<Session> weak = weak_from_this();
    uint64_t gen = s->gen;
    s->entry = server_->streams_.Start(
        std::move(info),
        [weak, gen](std::function<void(bool)> done) {
          auto self = weak.lock();
          if (self == nullptr) {
            done(false);
            return;
          }
          self->Post([self, gen, done = std::move(done)] { done(self->Kill(gen)); });
        },
        [ref = s->reader_ref]() -> int64_t {
          std::shared_ptr<FileReader> r;
          {
            absl::MutexLock lock(&ref->mu);
            r = ref->reader.lock();
          }
          return r == nullptr ? 0 : r->stats().reserved_bytes;
        });
    stream_ = std::move(s);
    state_ = State::kStreaming;
    server_->active_streams_.fetch_add(1);
    server_->metrics_->StreamStarted();
    response_done_ = false;
    OpenPartReader();
    Watch();
    ReadMore();
  }

  // The broker session of a response (B-class accounting: stream headroom,
  // per-stream cap, fair order) opens once its first bytes are on their way
  // to the client, and only when it reads more than one segment. Its id
  // reaches the frontend a round trip after the open, later than the
  // response's first fetch leaves, so a session opened sooner would count
  // none of that fetch; opening it costs the first fetch ~0.3 ms on a
  // 2-core loopback setup (docs/PERFORMANCE.md, time to first byte).
  void OpenBrokerSession() {
    if (stream_->session != nullptr || !SpansSeveralSegments()) return;
    stream_->session = std::shared_ptr<const StreamSession>(server_->deps_.fetcher->OpenSession(path_));
    stream_->reader->AttachSession(stream_->session);
  }

  // Whether the response's ranges (in any order) touch more than one segment.
  bool SpansSeveralSegments() const {
    const ReadLayout& l = stream_->file->layout();
    int32_t seen = -1;
    for (const ByteRange& r : stream_->parts) {
      for (int64_t offset : {r.first, r.last}) {
        const size_t piece = l.PieceAt(offset);
        if (piece >= l.pieces.size()) continue;
        if (seen >= 0 && l.pieces[piece].segment != seen) return true;
        seen = l.pieces[piece].segment;
      }
    }
    return false;
  }

  void OpenPartReader() {
    const ByteRange& r = stream_->parts[stream_->part];
    ReaderOptions ro;
    ro.fresh_read_ahead = o_.fresh_read_ahead;
    ro.fresh_read_ahead_delay = o_.fresh_read_ahead_delay;
    ro.initial_read_ahead = o_.initial_read_ahead;
    ro.max_read_ahead = o_.max_read_ahead;
    ro.max_fetch_attempts = o_.max_fetch_attempts;
    // No Range header, or a range reaching the end of the file: the client
    // means to read on (open-ended).
    bool open_ended = std::string(req_[http::field::range]).empty() || r.last == stream_->size - 1;
    ro.traffic_class = server_->classifier_.Classify(client_, path_, r.first, r.last + 1, !open_ended, absl::Now());
    ro.session = stream_->session;
    if (stream_->reader != nullptr) stream_->reader->Close();
    stream_->reader = FileReader::Open(ReaderEnv{&server_->budget_, &server_->closers_, &server_->scheduler_},
                                       stream_->file, r.first, r.last + 1, std::move(ro));
    stream_->file_pos = r.first;
    absl::MutexLock lock(&stream_->reader_ref->mu);
    stream_->reader_ref->reader = stream_->reader;
  }

  // Reads the next chunk. No write is in flight while a read is (writes and
  // reads of a response alternate), so the thread that completes the read —
  // a fetch's callback thread when the chunk had to wait for its segment —
  // sends the chunk itself (SendFromAnyThread) and the strand writes only
  // what the socket did not take. That saves the hop to the strand, one
  // thread wake-up, before a response's first byte (docs/PERFORMANCE.md).
  //
  // The callback captures what the send needs besides the chunk, on the
  // strand: the socket's descriptor, and a copy of stream_->prefix (the
  // bytes before the chunk; the strand does not change it while the read is
  // outstanding, and it is empty but for a part's first chunk).
  void ReadMore() {
    uint64_t gen = stream_->gen;
    stream_->reader->ReadAsync(o_.chunk_bytes, [self = shared_from_this(), gen, fd = socket_.native_handle(),
                                                prefix = stream_->prefix](absl::StatusOr<FileReader::Chunk> c) {
      size_t sent = 0;
      if (c.ok() && c->size > 0) sent = self->SendFromAnyThread(fd, prefix, *c);
      self->Post([self, gen, sent, c = std::move(c)]() mutable { self->OnChunk(gen, std::move(c), sent); });
    });
  }

  // Runs on any thread. Sends prefix + chunk to `fd` without blocking, as far
  // as the socket takes them; returns the bytes sent (0 on EAGAIN or an
  // error: the strand's write then sends everything or reports the error).
  // fd_mu_ keeps the descriptor open, and not reused by another connection,
  // during the send: the strand closes the socket under it.
  size_t SendFromAnyThread(int fd, const std::string& prefix, const FileReader::Chunk& c) {
    iovec iov[2];
    int n = 0;
    if (!prefix.empty()) iov[n++] = iovec{const_cast<char*>(prefix.data()), prefix.size()};
    iov[n++] = iovec{const_cast<char*>(c.data), c.size};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(n);
    absl::MutexLock lock(&fd_mu_);
    if (!fd_open_ || fd < 0) return 0;
    ssize_t sent = ::sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    return sent > 0 ? static_cast<size_t>(sent) : 0;
  }

  // `sent`: bytes of the prefix and chunk already sent (SendFromAnyThread).
  void OnChunk(uint64_t gen, absl::StatusOr<FileReader::Chunk> c, size_t sent) {
    if (state_ == State::kClosed || stream_ == nullptr || stream_->gen != gen) return;
    if (!c.ok()) {
      absl::Status s = c.status();
      if (stream_->headers_sent) {
        log::Warning("aborting response after headers", {{"path", path_}, {"error", s.ToString()}});
        Abort(false);
        return;
      }
      EndStream(false);
      state_ = State::kHandling;
      Reply r;
      if (absl::IsUnavailable(s) || absl::IsResourceExhausted(s) || absl::IsDeadlineExceeded(s)) {
        r = TextReply(503, absl::StrCat("broker unavailable: ", s.message()));
        r.headers.emplace_back("Retry-After", "5");
      } else {
        r = TextReply(502, absl::StrCat("cannot read ", path_, ": ", s.message()));
      }
      SendForRequest(std::move(r));
      return;
    }
    if (c->size == 0) {
      // End of the current part.
      if (stream_->multipart) stream_->prefix += "\r\n";
      ++stream_->part;
      if (stream_->part < stream_->parts.size()) {
        Plan p;
        p.boundary = stream_->boundary;
        stream_->prefix += PartHeader(p, stream_->content_type, stream_->parts[stream_->part], stream_->size);
        OpenPartReader();
        ReadMore();
        return;
      }
      if (stream_->multipart) absl::StrAppend(&stream_->prefix, "--", stream_->boundary, "--\r\n");
      if (stream_->prefix.empty()) {
        FinishStream();
        return;
      }
      WriteChunk(FileReader::Chunk{}, /*last=*/true, 0);
      return;
    }
    WriteChunk(std::move(*c), false, sent);
  }

  // Writes stream_->prefix + `c`, less the first `sent` bytes, which already
  // went out (SendFromAnyThread), then reads on (or finishes when `last`).
  void WriteChunk(FileReader::Chunk c, bool last, size_t sent) {
    // What is still to go of the prefix and the chunk (empty buffers are
    // fine in a buffer sequence). The prefix (headers, part headers) is kept
    // alive by the write only when some of it is left: most chunks have none.
    std::array<asio::const_buffer, 2> bufs;
    std::shared_ptr<std::string> prefix;
    const size_t prefix_skip = std::min(sent, stream_->prefix.size());
    if (stream_->prefix.size() > prefix_skip) {
      prefix = std::make_shared<std::string>(std::move(stream_->prefix));
      bufs[0] = asio::const_buffer(prefix->data() + prefix_skip, prefix->size() - prefix_skip);
    }
    stream_->prefix.clear();
    const size_t skip = sent - prefix_skip;
    if (c.size > skip) bufs[1] = asio::const_buffer(c.data + skip, c.size - skip);
    const bool first_write = !stream_->headers_sent;
    if (first_write) {
      stream_->headers_sent = true;
      server_->metrics_->TimeToFirstByte(absl::Now() - stream_->started);
    }
    if (bufs[0].size() + bufs[1].size() == 0) {  // the socket took it all already
      if (first_write && !last) OpenBrokerSession();
      OnWritten(last, c.size, beast::error_code{});
      return;
    }
    uint64_t gen = stream_->gen;
    Arm(o_.write_timeout);
    asio::async_write(socket_, bufs,
                      [self = shared_from_this(), prefix, owner = c.owner, gen, last, n = c.size](
                          beast::error_code ec, size_t) {
                        if (self->state_ == State::kClosed || self->stream_ == nullptr || self->stream_->gen != gen) {
                          return;
                        }
                        self->Disarm();
                        self->OnWritten(last, n, ec);
                      });
    if (first_write && !last) OpenBrokerSession();
  }

  // A chunk of `n` body bytes of the current response is written.
  void OnWritten(bool last, size_t n, beast::error_code ec) {
    if (ec) {
      Abort(true);
      return;
    }
    stream_->body_bytes += static_cast<int64_t>(n);
    stream_->file_pos += static_cast<int64_t>(n);
    if (n > 0) stream_->entry->AddBytes(static_cast<int64_t>(n), stream_->file_pos, absl::Now());
    server_->metrics_->BytesServed(static_cast<int64_t>(n));
    if (last) {
      FinishStream();
    } else {
      ReadMore();
    }
  }

  // Releases the reader and the broker session of the current response.
  void EndStream(bool client_gone) {
    if (stream_ == nullptr) return;
    absl::Time now = absl::Now();
    server_->streams_.End(*stream_->entry, now);
    // Where the client really stopped: a read resuming there is sequential.
    server_->classifier_.Ended(client_, path_, stream_->file_pos, now);
    if (stream_->reader != nullptr) stream_->reader->Close();
    stream_->reader.reset();
    stream_->session.reset();
    stream_.reset();
    server_->active_streams_.fetch_sub(1);
    server_->metrics_->StreamEnded(client_gone);
  }

  void FinishStream() {
    EndStream(false);
    server_->metrics_->RequestDone(MethodLabel(method_), status_);
    if (WillClose(false)) {
      CloseNow();
      return;
    }
    response_done_ = true;
    state_ = State::kHandling;
    if (watching_) {
      beast::error_code ec;
      socket_.cancel(ec);  // OnWatch continues with the next request
      return;
    }
    ReadRequest();
  }

  // While a body streams, keep a read armed: EOF or an error means the client
  // went away (F9). Bytes that arrive (a pipelined request) are kept for the
  // next request.
  void Watch() {
    if (watching_ || buffer_.size() >= 64 * 1024) return;
    watching_ = true;
    socket_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->OnWatch(ec, n);
    });
  }

  void OnWatch(beast::error_code ec, size_t n) {
    watching_ = false;
    if (n > 0) buffer_.commit(n);
    if (state_ == State::kClosed) return;
    if (ec && ec != asio::error::operation_aborted) {
      // The client closed or reset the connection.
      Abort(true);
      return;
    }
    if (response_done_) {
      response_done_ = false;
      ReadRequest();
      return;
    }
    if (stream_ != nullptr) Watch();
  }

  // ---- admin API: /api/streams ----------------------------------------------

  // DELETE /api/streams/ID reached this session: ends response `gen` if it is
  // still the one streaming. True when it was.
  bool Kill(uint64_t gen) {
    if (state_ == State::kClosed || stream_ == nullptr || stream_->gen != gen) return false;
    server_->metrics_->StreamKilled();
    log::Info("stream killed through the admin API", {{"path", path_}, {"client", client_}});
    Abort(false);
    return true;
  }

  // True when the request carries the API key (header X-Api-Key or ?apikey=);
  // otherwise sends 401/403 and returns false.
  bool CheckApiKey() {
    if (o_.api_key.empty()) {
      SendForRequest(TextReply(403, "the admin API is disabled: set api_key in the frontend config"));
      return false;
    }
    std::string key(req_["X-Api-Key"]);
    if (key.empty()) {
      auto q = ParseQuery(query_);
      if (auto it = q.find("apikey"); it != q.end()) key = it->second;
    }
    if (key.empty()) {
      Reply r = TextReply(401, "API key required: send it in the X-Api-Key header or the apikey parameter");
      r.headers.emplace_back("WWW-Authenticate", "X-Api-Key");
      SendForRequest(std::move(r));
      return false;
    }
    if (!ConstantTimeEquals(key, o_.api_key)) {
      SendForRequest(TextReply(403, "API key incorrect"));
      return false;
    }
    return true;
  }

  void HandleStreamsApi(absl::string_view path) {
    if (!CheckApiKey()) return;
    absl::string_view rest = path.substr(kStreamsPath.size());
    if (rest.empty() || rest == "/") {
      if (method_ != "GET" && method_ != "HEAD") {
        Reply r = TextReply(405, "use GET to list streams");
        r.headers.emplace_back("Allow", "GET, HEAD");
        SendForRequest(std::move(r));
        return;
      }
      Reply r;
      r.headers.emplace_back("Content-Type", "application/json");
      r.headers.emplace_back("Cache-Control", "no-store");
      r.body = server_->streams_.ListJson(absl::Now());
      r.head_only = method_ == "HEAD";
      SendForRequest(std::move(r));
      return;
    }
    std::string id(rest.substr(1));
    if (method_ != "DELETE") {
      Reply r = TextReply(405, "use DELETE to end a stream");
      r.headers.emplace_back("Allow", "DELETE");
      SendForRequest(std::move(r));
      return;
    }
    std::shared_ptr<ActiveStream> target = server_->streams_.Find(id);
    if (target == nullptr) {
      SendForRequest(TextReply(404, absl::StrCat("no active stream ", id)));
      return;
    }
    target->Kill([self = shared_from_this(), id](bool killed) {
      self->Post([self, id, killed] {
        if (self->state_ == State::kClosed) return;
        if (!killed) {
          self->SendForRequest(TextReply(404, absl::StrCat("stream ", id, " already ended")));
          return;
        }
        Reply r;
        r.status = 204;
        self->SendForRequest(std::move(r));
      });
    });
  }

  // ---- SABnzbd ------------------------------------------------------------

  void HandleSab() {
    std::map<std::string, std::string> params = ParseQuery(query_);
    std::vector<FormPart> files;
    std::string ct(req_[http::field::content_type]);
    if (absl::StartsWithIgnoreCase(ct, "multipart/form-data")) {
      auto parts = ParseMultipart(ct, req_.body());
      if (!parts.ok()) {
        SendForRequest(TextReply(400, std::string(parts.status().message())));
        return;
      }
      for (auto& p : *parts) {
        if (p.filename.empty()) {
          params.emplace(p.name, p.data);
        } else {
          files.push_back(std::move(p));
        }
      }
    } else if (absl::StartsWithIgnoreCase(ct, "application/x-www-form-urlencoded")) {
      for (auto& [k, v] : ParseQuery(req_.body())) params.emplace(k, v);
    }
    SabOptions so{o_.api_key, o_.complete_dir, o_.categories};
    HandleSabApi(so, server_->deps_.importer, server_->urls_.get(), std::move(params), std::move(files),
                 [self = shared_from_this()](SabReply r) {
                   self->Post([self, r = std::move(r)] {
                     if (self->state_ == State::kClosed) return;
                     Reply rep;
                     rep.status = r.status;
                     rep.headers.emplace_back("Content-Type", "application/json");
                     rep.body = std::move(r.body);
                     self->SendForRequest(std::move(rep));
                   });
                 });
  }

  FrontendServer* const server_;
  const Options& o_;
  std::shared_ptr<asio::io_context> ioc_;  // keeps the context valid for late posts
  tcp::socket socket_;
  asio::steady_timer timer_;
  const uint64_t id_;
  uint64_t timer_gen_ = 0;
  State state_ = State::kIdle;
  bool drain_ = false;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> req_;
  bool keep_alive_ = true;
  std::string method_;
  std::string client_;  // remote IP address
  std::string path_;
  std::string query_;
  absl::Time request_start_;
  std::unique_ptr<Stream> stream_;
  uint64_t stream_gen_ = 0;
  int status_ = 200;
  int64_t last_end_ = -1;
  bool watching_ = false;
  bool response_done_ = false;
  char discard_[4096];
  int linger_reads_ = 0;
  // Orders SendFromAnyThread (any thread) against closing the socket (the
  // strand), so a send never reaches a closed or reused descriptor.
  absl::Mutex fd_mu_;
  bool fd_open_ ABSL_GUARDED_BY(fd_mu_) = true;
};

// ---------------------------------------------------------------------------
// FrontendServer

absl::StatusOr<std::unique_ptr<FrontendServer>> FrontendServer::Create(const Options& options, Deps deps) {
  if (deps.fetcher == nullptr || deps.catalog == nullptr || deps.importer == nullptr) {
    return absl::InvalidArgumentError("FrontendServer needs a segment fetcher, a catalog client and an importer client");
  }
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("frontend port ", options.port, " is out of range"));
  }
  for (const auto& u : options.webdav_users) {
    if (u.username.empty() || u.password_sha256.size() != 64) {
      return absl::InvalidArgumentError(
          absl::StrCat("webdav user '", u.username, "' needs a name and a 64-hex-digit password_sha256"));
    }
  }
  NzbUrlClient::Options uo;
  uo.max_bytes = std::max<size_t>(1, options.max_upload_bytes);
  uo.timeout = options.addurl_timeout;
  uo.max_redirects = options.addurl_max_redirects;
  uo.ca_file = options.addurl_ca_file;
  auto urls = NzbUrlClient::Create(uo);
  if (!urls.ok()) return urls.status();
  return std::unique_ptr<FrontendServer>(new FrontendServer(options, deps, std::move(*urls)));
}

FrontendServer::FrontendServer(const Options& options, Deps deps, std::unique_ptr<NzbUrlClient> urls)
    : options_(options),
      deps_(deps),
      metrics_(deps.metrics != nullptr ? deps.metrics : &default_metrics_),
      budget_(options.stream_memory_limit),
      closers_(std::max(1, options.closer_threads)),
      files_(deps.fetcher, options.cached_files, options.lru_segments_per_file, metrics_,
             options.missing_segment_ttl, &budget_),
      streams_(StreamRegistry::Options{options.recent_streams, options.recent_streams_ttl}),
      classifier_(ReadClassifier::Options{options.probe_max_bytes, options.probe_sequential_window}),
      urls_(std::move(urls)),
      ioc_(std::make_shared<asio::io_context>(std::max(1, options.io_threads))) {
  // One limit for every decoded segment held (F11): read-ahead evicts cached
  // segments before its windows shrink.
  budget_.SetReclaimer([this](int64_t n) { return files_.Reclaim(n); });
}

FrontendServer::~FrontendServer() { Shutdown(absl::ZeroDuration()); }

absl::Status FrontendServer::Start() {
  {
    absl::MutexLock lock(&mu_);
    if (started_) return absl::FailedPreconditionError("FrontendServer already started");
    started_ = true;
  }
  beast::error_code ec;
  auto addr = asio::ip::make_address(options_.listen_address, ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("bad listen address '", options_.listen_address, "': ", ec.message()));
  }
  acceptor_ = std::make_unique<Acceptor>(*ioc_);
  tcp::endpoint ep(addr, static_cast<unsigned short>(options_.port));
  auto& a = acceptor_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.listen_address, ":", options_.port, ": ",
                                               ec.message()));
  }
  port_ = a.local_endpoint().port();
  DoAccept();
  for (int i = 0; i < std::max(1, options_.io_threads); ++i) {
    threads_.emplace_back([ioc = ioc_] {
      // A handler that throws (Beast throws length_error/bad_alloc on hostile
      // input it does not bound itself) costs that connection, not the process;
      // its timer closes the socket.
      while (true) {
        try {
          ioc->run();
          return;
        } catch (const std::exception& e) {
          log::Error("http handler threw", {{"what", e.what()}});
        }
      }
    });
  }
  return absl::OkStatus();
}

void FrontendServer::DoAccept() {
  acceptor_->acceptor.async_accept(asio::make_strand(*ioc_), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_->acceptor.is_open()) return;
    if (!ec) {
      bool reject = draining_.load();
      std::shared_ptr<Session> s;
      {
        absl::MutexLock lock(&mu_);
        if (options_.max_connections > 0 && static_cast<int>(sessions_.size()) >= options_.max_connections) {
          reject = true;
        }
        if (!reject) {
          uint64_t id = next_session_id_++;
          s = std::make_shared<Session>(this, ioc_, std::move(socket), id);
          sessions_[id] = s;
        }
      }
      if (reject) {
        metrics_->ConnectionRejected();
        beast::error_code ignored;
        socket.close(ignored);
      } else {
        s->Start();
      }
    }
    DoAccept();
  });
}

void FrontendServer::Unregister(uint64_t id) {
  absl::MutexLock lock(&mu_);
  sessions_.erase(id);
}

int FrontendServer::open_connections() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(sessions_.size());
}

void FrontendServer::Shutdown(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    if (!started_) return;
  }
  draining_.store(true);
  if (acceptor_ != nullptr) {
    asio::post(acceptor_->acceptor.get_executor(), [this] {
      beast::error_code ec;
      acceptor_->acceptor.close(ec);
    });
  }
  auto each = [this](auto fn) {
    std::vector<std::shared_ptr<Session>> live;
    {
      absl::MutexLock lock(&mu_);
      for (auto& [id, w] : sessions_) {
        if (auto s = w.lock()) live.push_back(std::move(s));
      }
    }
    for (auto& s : live) fn(*s);
  };
  each([](Session& s) { s.Drain(); });
  absl::Condition none_left(
      +[](FrontendServer* s) ABSL_NO_THREAD_SAFETY_ANALYSIS { return s->sessions_.empty(); }, this);
  {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(none_left, grace);
  }
  each([](Session& s) { s.ForceClose(); });
  // Pending addurl downloads end now (CANCELLED); their sessions are closed.
  urls_->Shutdown();
  {
    // Closed sessions go away once their pending handlers ran; bounded wait.
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(none_left, absl::Seconds(2));
  }
  if (acceptor_ != nullptr) acceptor_->work.reset();
  ioc_->stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace nzbmesh::frontend
