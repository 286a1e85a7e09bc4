#include "services/frontend/nzb_url_client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <optional>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/log/log.h"

namespace nzbmesh::frontend {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

namespace {

std::string DefaultPort(absl::string_view scheme) { return scheme == "https" ? "443" : "80"; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = absl::ascii_tolower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// %XX-decodes `s` ('+' stays '+'); invalid escapes are kept as they are.
std::string PercentDecode(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
bool IsScheme(absl::string_view s) {
  if (s.empty() || !absl::ascii_isalpha(s[0])) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return true;
}

// The scheme of `url` when it has one ("ftp" of "ftp://x"), else "".
std::string SchemeOf(absl::string_view url) {
  size_t colon = url.find(':');
  size_t delim = url.find_first_of("/?#");
  if (colon == absl::string_view::npos || (delim != absl::string_view::npos && delim < colon)) return "";
  absl::string_view s = url.substr(0, colon);
  return IsScheme(s) ? absl::AsciiStrToLower(s) : "";
}

bool IsRedirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

}  // namespace

std::string HttpUrl::Redacted() const {
  std::string h = ipv6 ? absl::StrCat("[", host, "]") : host;
  std::string p = port == DefaultPort(scheme) ? "" : absl::StrCat(":", port);
  return absl::StrCat(scheme, "://", h, p, target.substr(0, target.find('?')));
}

absl::StatusOr<HttpUrl> ParseHttpUrl(absl::string_view url) {
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("the URL contains whitespace or control characters");
    }
  }
  HttpUrl u;
  u.scheme = SchemeOf(url);
  if (u.scheme.empty()) return absl::InvalidArgumentError("not an absolute http(s) URL");
  if (u.scheme != "http" && u.scheme != "https") {
    return absl::InvalidArgumentError(absl::StrCat("unsupported URL scheme '", u.scheme, "' (only http and https)"));
  }
  absl::string_view rest = url.substr(u.scheme.size() + 1);
  if (!absl::ConsumePrefix(&rest, "//")) return absl::InvalidArgumentError("not an absolute http(s) URL");
  size_t auth_end = rest.find_first_of("/?#");
  absl::string_view authority = rest.substr(0, auth_end);
  absl::string_view tail = auth_end == absl::string_view::npos ? "" : rest.substr(auth_end);
  if (size_t at = authority.rfind('@'); at != absl::string_view::npos) {
    u.userinfo = PercentDecode(authority.substr(0, at));
    authority = authority.substr(at + 1);
  }
  absl::string_view port;
  if (absl::StartsWith(authority, "[")) {
    size_t close = authority.find(']');
    if (close == absl::string_view::npos) return absl::InvalidArgumentError("the URL has a malformed IPv6 host");
    u.host = std::string(authority.substr(1, close - 1));
    u.ipv6 = true;
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty() && !absl::ConsumePrefix(&after, ":")) {
      return absl::InvalidArgumentError("the URL has a malformed IPv6 host");
    }
    port = after;
  } else {
    size_t colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != absl::string_view::npos) port = authority.substr(colon + 1);
  }
  if (u.host.empty()) return absl::InvalidArgumentError("the URL has no host");
  int port_number = 0;
  if (port.empty()) {
    u.port = DefaultPort(u.scheme);
  } else if (!absl::SimpleAtoi(port, &port_number) || port_number < 1 || port_number > 65535 ||
             port.find_first_not_of("0123456789") != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("the URL has a bad port '", port, "'"));
  } else {
    u.port = absl::StrCat(port_number);
  }
  tail = tail.substr(0, tail.find('#'));
  if (tail.empty()) {
    u.target = "/";
  } else if (tail[0] == '?') {
    u.target = absl::StrCat("/", tail);
  } else {
    u.target = std::string(tail);
  }
  return u;
}

absl::StatusOr<HttpUrl> ResolveLocation(const HttpUrl& base, absl::string_view location) {
  location = absl::StripAsciiWhitespace(location);
  if (location.empty()) return absl::InvalidArgumentError("empty Location");
  if (absl::StartsWith(location, "//")) return ParseHttpUrl(absl::StrCat(base.scheme, ":", location));
  if (!SchemeOf(location).empty()) return ParseHttpUrl(location);
  for (char c : location) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("the Location contains whitespace or control characters");
    }
  }
  HttpUrl u = base;
  location = location.substr(0, location.find('#'));
  if (absl::StartsWith(location, "/")) {
    u.target = std::string(location);
  } else if (absl::StartsWith(location, "?")) {
    u.target = absl::StrCat(base.target.substr(0, base.target.find('?')), location);
  } else {
    std::string path = base.target.substr(0, base.target.find('?'));
    u.target = absl::StrCat(path.substr(0, path.rfind('/') + 1), location);
  }
  if (u.target.empty()) u.target = "/";
  return u;
}

std::string ContentDispositionFilename(absl::string_view header) {
  // Split into ;-separated parameters, honouring quoted strings.
  std::vector<std::pair<std::string, std::string>> params;
  size_t i = 0;
  while (i < header.size()) {
    size_t eq = header.find_first_of("=;", i);
    if (eq == absl::string_view::npos) break;
    std::string name = absl::AsciiStrToLower(absl::StripAsciiWhitespace(header.substr(i, eq - i)));
    if (header[eq] == ';') {  // a bare token such as "attachment"
      i = eq + 1;
      continue;
    }
    size_t v = eq + 1;
    while (v < header.size() && header[v] == ' ') ++v;
    std::string value;
    if (v < header.size() && header[v] == '"') {
      for (++v; v < header.size() && header[v] != '"'; ++v) {
        if (header[v] == '\\' && v + 1 < header.size()) ++v;
        value.push_back(header[v]);
      }
      size_t semi = header.find(';', v);
      i = semi == absl::string_view::npos ? header.size() : semi + 1;
    } else {
      size_t semi = header.find(';', v);
      value = std::string(absl::StripAsciiWhitespace(header.substr(v, semi == absl::string_view::npos ? semi : semi - v)));
      i = semi == absl::string_view::npos ? header.size() : semi + 1;
    }
    params.emplace_back(std::move(name), std::move(value));
  }
  std::string name;
  for (const auto& [k, v] : params) {
    if (k == "filename" && name.empty()) name = v;
  }
  for (const auto& [k, v] : params) {
    if (k != "filename*") continue;
    // RFC 5987: charset'language'percent-encoded
    size_t q1 = v.find('\'');
    size_t q2 = q1 == std::string::npos ? std::string::npos : v.find('\'', q1 + 1);
    if (q2 != std::string::npos) name = PercentDecode(absl::string_view(v).substr(q2 + 1));
  }
  size_t slash = name.find_last_of("/\\");
  if (slash != std::string::npos) name = name.substr(slash + 1);
  std::string clean;
  for (char c : name) {
    if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) clean.push_back(c);
  }
  return clean == "." || clean == ".." ? "" : clean;
}

// ---------------------------------------------------------------------------
// One fetch: resolve, connect, (TLS), request, headers, body; redirects
// start the next hop. Every member runs on strand_.

struct NzbUrlClient::WorkGuard {
  explicit WorkGuard(asio::io_context& ioc) : guard(asio::make_work_guard(ioc)) {}
  asio::executor_work_guard<asio::io_context::executor_type> guard;
};

class NzbUrlClient::Op : public std::enable_shared_from_this<Op> {
 public:
  Op(NzbUrlClient* client, uint64_t id, HttpUrl url, Callback done)
      : client_(client),
        o_(client->options_),
        id_(id),
        strand_(asio::make_strand(*client->ioc_)),
        resolver_(strand_),
        socket_(strand_),
        timer_(strand_),
        url_(std::move(url)),
        done_(std::move(done)) {}

  void Start() {
    asio::dispatch(strand_, [self = shared_from_this()] {
      if (self->finished_) return;  // cancelled before it started
      self->timer_.expires_after(absl::ToChronoNanoseconds(self->o_.timeout));
      self->timer_.async_wait([self](beast::error_code ec) {
        if (ec) return;
        self->Finish(absl::DeadlineExceededError(
            absl::StrCat("no complete answer within ", absl::FormatDuration(self->o_.timeout))));
      });
      self->Hop();
    });
  }

  void Cancel() {
    asio::dispatch(strand_, [self = shared_from_this()] {
      self->Finish(absl::CancelledError("the frontend is shutting down"));
    });
  }

 private:
  void Hop() {
    if (finished_) return;
    parser_.emplace();
    parser_->header_limit(64 * 1024);
    parser_->body_limit(o_.max_bytes);
    buffer_.clear();
    resolver_.async_resolve(url_.host, url_.port,
                            [self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type results) {
                              if (self->finished_) return;
                              if (ec) {
                                self->Finish(absl::UnavailableError(
                                    absl::StrCat("cannot resolve ", self->url_.host, ": ", ec.message())));
                                return;
                              }
                              asio::async_connect(self->socket_, results,
                                                  [self](beast::error_code ec, const tcp::endpoint&) {
                                                    self->OnConnect(ec);
                                                  });
                            });
  }

  void OnConnect(beast::error_code ec) {
    if (finished_) return;
    if (ec) {
      Finish(absl::UnavailableError(absl::StrCat("cannot connect to ", url_.host, ":", url_.port, ": ", ec.message())));
      return;
    }
    if (url_.scheme != "https") {
      Exchange(socket_);
      return;
    }
    tls_.emplace(socket_, *client_->tls_);
    // OpenSSL checks the chain and that the certificate names this host (an
    // IP literal against its IP SANs); SNI only for names (RFC 6066 §3).
    SSL* native = tls_->native_handle();
    X509_VERIFY_PARAM* param = SSL_get0_param(native);
    beast::error_code not_ip;
    asio::ip::make_address(url_.host, not_ip);
    if (not_ip) {
      SSL_set_tlsext_host_name(native, url_.host.c_str());
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      X509_VERIFY_PARAM_set1_host(param, url_.host.c_str(), 0);
    } else {
      X509_VERIFY_PARAM_set1_ip_asc(param, url_.host.c_str());
    }
    tls_->set_verify_mode(ssl::verify_peer);
    tls_->async_handshake(ssl::stream_base::client, [self = shared_from_this()](beast::error_code ec) {
      if (self->finished_) return;
      if (ec) {
        std::string why = ec.message();
        long verify = SSL_get_verify_result(self->tls_->native_handle());
        if (verify != X509_V_OK) absl::StrAppend(&why, " (", X509_verify_cert_error_string(verify), ")");
        self->Finish(absl::UnavailableError(absl::StrCat("TLS handshake with ", self->url_.host, " failed: ", why)));
        return;
      }
      self->Exchange(*self->tls_);
    });
  }

  template <typename Stream>
  void Exchange(Stream& stream) {
    req_ = {};
    req_.version(11);
    req_.method(http::verb::get);
    req_.target(url_.target);
    std::string host = url_.ipv6 ? absl::StrCat("[", url_.host, "]") : url_.host;
    if (url_.port != DefaultPort(url_.scheme)) absl::StrAppend(&host, ":", url_.port);
    req_.set(http::field::host, host);
    req_.set(http::field::user_agent, o_.user_agent);
    req_.set(http::field::accept, "application/x-nzb, */*;q=0.5");
    req_.set(http::field::accept_encoding, "identity");
    req_.set(http::field::connection, "close");
    if (!url_.userinfo.empty()) req_.set(http::field::authorization, "Basic " + absl::Base64Escape(url_.userinfo));
    http::async_write(stream, req_, [self = shared_from_this(), &stream](beast::error_code ec, size_t) {
      if (self->finished_) return;
      if (ec) {
        self->Finish(absl::UnavailableError(absl::StrCat("cannot send the request: ", ec.message())));
        return;
      }
      http::async_read_header(stream, self->buffer_, *self->parser_,
                              [self, &stream](beast::error_code ec, size_t) { self->OnHeader(stream, ec); });
    });
  }

  absl::Status ReadError(beast::error_code ec) const {
    if (ec == http::error::body_limit) {
      return absl::ResourceExhaustedError(absl::StrCat("the NZB is larger than ", o_.max_bytes, " bytes"));
    }
    return absl::UnavailableError(absl::StrCat("reading the answer failed: ", ec.message()));
  }

  template <typename Stream>
  void OnHeader(Stream& stream, beast::error_code ec) {
    if (finished_) return;
    if (ec) {
      Finish(ReadError(ec));
      return;
    }
    const auto& res = parser_->get();
    const int status = static_cast<int>(res.result_int());
    if (IsRedirect(status)) {
      std::string location(res[http::field::location]);
      if (location.empty()) {
        Finish(absl::FailedPreconditionError(absl::StrCat("HTTP ", status, " without a Location")));
        return;
      }
      if (++redirects_ > o_.max_redirects) {
        Finish(absl::FailedPreconditionError(absl::StrCat("more than ", o_.max_redirects, " redirects")));
        return;
      }
      auto next = ResolveLocation(url_, location);
      if (!next.ok()) {
        Finish(absl::InvalidArgumentError(absl::StrCat("redirected to a bad URL: ", next.status().message())));
        return;
      }
      CloseSocket();
      tls_.reset();  // nothing is pending on it: the header read completed
      url_ = std::move(*next);
      Hop();
      return;
    }
    if (status < 200 || status > 299) {
      std::string text = absl::StrCat("HTTP ", status, " ", std::string(http::obsolete_reason(res.result())));
      Finish(status == 404 || status == 410 ? absl::NotFoundError(text) : absl::FailedPreconditionError(text));
      return;
    }
    if (parser_->is_done()) {
      OnBody(beast::error_code{});
      return;
    }
    http::async_read(stream, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(beast::error_code ec) {
    if (finished_) return;
    // A TLS peer that closes without close_notify after a complete message is fine.
    if (ec == ssl::error::stream_truncated && parser_->is_done()) ec = {};
    if (ec) {
      Finish(ReadError(ec));
      return;
    }
    Result r;
    r.body = std::move(parser_->get().body());
    r.filename = ContentDispositionFilename(std::string(parser_->get()[http::field::content_disposition]));
    if (r.body.empty()) {
      Finish(absl::FailedPreconditionError("the server answered with an empty body"));
      return;
    }
    r.url = url_;
    Finish(std::move(r));
  }

  // Closing the socket completes pending operations with operation_aborted;
  // the TLS stream stays alive until they ran (they reference it).
  void CloseSocket() {
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  // Ends the fetch once: stops the timer and the connection, runs done_.
  void Finish(absl::StatusOr<Result> r) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    resolver_.cancel();
    CloseSocket();
    client_->Forget(id_);
    Callback done = std::move(done_);
    done(std::move(r));
  }

  NzbUrlClient* const client_;
  const Options& o_;
  const uint64_t id_;
  asio::strand<asio::io_context::executor_type> strand_;
  tcp::resolver resolver_;
  tcp::socket socket_;
  std::optional<ssl::stream<tcp::socket&>> tls_;
  asio::steady_timer timer_;
  HttpUrl url_;
  Callback done_;
  beast::flat_buffer buffer_;
  http::request<http::empty_body> req_;
  std::optional<http::response_parser<http::string_body>> parser_;
  int redirects_ = 0;
  bool finished_ = false;
};

// ---------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<NzbUrlClient>> NzbUrlClient::Create(const Options& options) {
  if (options.max_bytes == 0) return absl::InvalidArgumentError("addurl: the NZB size cap must be at least 1 byte");
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("addurl_timeout must be positive");
  }
  if (options.max_redirects < 0 || options.max_redirects > 5) {
    return absl::InvalidArgumentError(
        absl::StrCat("addurl_max_redirects must be between 0 and 5, not ", options.max_redirects));
  }
  std::unique_ptr<NzbUrlClient> c(new NzbUrlClient(options));
  beast::error_code ec;
  c->tls_->set_default_verify_paths(ec);
  if (ec) log::Warning("addurl: no system CA store; https URLs need addurl_ca_file", {{"error", ec.message()}});
  if (!options.ca_file.empty()) {
    c->tls_->load_verify_file(options.ca_file, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("addurl_ca_file '", options.ca_file, "' cannot be loaded: ", ec.message()));
    }
  }
  c->work_ = std::make_unique<WorkGuard>(*c->ioc_);
  c->thread_ = std::thread([ioc = c->ioc_.get()] {
    while (true) {
      try {
        ioc->run();
        return;
      } catch (const std::exception& e) {
        log::Error("addurl handler threw", {{"what", e.what()}});
      }
    }
  });
  return c;
}

NzbUrlClient::NzbUrlClient(const Options& options)
    : options_(options),
      ioc_(std::make_unique<asio::io_context>(1)),
      tls_(std::make_unique<ssl::context>(ssl::context::tls_client)) {}

NzbUrlClient::~NzbUrlClient() { Shutdown(); }

void NzbUrlClient::Fetch(const std::string& url, Callback done) {
  auto parsed = ParseHttpUrl(url);
  if (!parsed.ok()) {
    done(parsed.status());
    return;
  }
  std::shared_ptr<Op> op;
  {
    absl::MutexLock lock(&mu_);
    if (!stopped_) {
      uint64_t id = next_id_++;
      op = std::make_shared<Op>(this, id, std::move(*parsed), std::move(done));
      ops_[id] = op;
    }
  }
  if (op == nullptr) {
    done(absl::CancelledError("the frontend is shutting down"));
    return;
  }
  op->Start();
}

void NzbUrlClient::Forget(uint64_t id) {
  absl::MutexLock lock(&mu_);
  ops_.erase(id);
}

int NzbUrlClient::in_flight() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(ops_.size());
}

void NzbUrlClient::Shutdown() {
  std::vector<std::shared_ptr<Op>> live;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    for (auto& [id, w] : ops_) {
      if (auto op = w.lock()) live.push_back(std::move(op));
    }
  }
  for (auto& op : live) op->Cancel();
  live.clear();
  work_.reset();
  if (thread_.joinable()) thread_.join();
}

}  // namespace nzbmesh::frontend
