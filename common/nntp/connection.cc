#include "common/nntp/connection.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/nntp/reply.h"
#include "common/status/status_macros.h"

namespace nzbmesh::nntp {
namespace {

// Read buffer size: large reads keep syscalls per article low (a 768 KB
// article is 3-4 reads on loopback).
constexpr size_t kReadBufferSize = 256 << 10;
// Data lines of HEAD/CAPABILITIES replies.
constexpr size_t kMaxTextLineLength = 64 << 10;

absl::Status ConnectionLimitError(std::string message) {
  absl::Status s = absl::ResourceExhaustedError(std::move(message));
  s.SetPayload(kConnectionLimitPayload, absl::Cord("1"));
  return s;
}

std::string ErrnoText(int err) { return std::string(strerror(err)); }

// OpenSSL's error queue as text (and cleared).
std::string OpenSslErrors() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no OpenSSL error detail" : out;
}

void IgnoreSigpipeOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction old {};
    if (sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) {
      signal(SIGPIPE, SIG_IGN);
    }
  });
}

bool IsIpLiteral(const std::string& host) {
  in6_addr a6;
  in_addr a4;
  return inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

// Client SSL_CTXs, one per (verify, CA file), kept for the process lifetime
// so a dial does not reload the trust store.
absl::StatusOr<SSL_CTX*> ClientContext(bool verify, const std::string& ca_file) {
  static absl::Mutex mu(absl::kConstInit);
  static auto* contexts = new std::map<std::pair<bool, std::string>, SSL_CTX*>();
  absl::MutexLock lock(&mu);
  auto key = std::make_pair(verify, verify ? ca_file : std::string());
  auto it = contexts->find(key);
  if (it != contexts->end()) return it->second;
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new failed: " + OpenSslErrors());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) ERR_clear_error();
    if (!ca_file.empty() && SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
      std::string err = OpenSslErrors();
      SSL_CTX_free(ctx);
      return absl::FailedPreconditionError(
          absl::StrCat("cannot load tls_ca_file \"", ca_file, "\": ", err,
                       "; point it at a PEM CA certificate"));
    }
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  contexts->emplace(key, ctx);
  return ctx;
}

std::string BracketId(absl::string_view id) {
  if (!id.empty() && id.front() == '<' && id.back() == '>') return std::string(id);
  return absl::StrCat("<", id, ">");
}

}  // namespace

bool IsArticleMissing(const absl::Status& s) { return s.code() == absl::StatusCode::kNotFound; }
bool IsConnectionLimit(const absl::Status& s) {
  return s.code() == absl::StatusCode::kResourceExhausted &&
         s.GetPayload(kConnectionLimitPayload).has_value();
}
bool IsTimeout(const absl::Status& s) { return s.code() == absl::StatusCode::kDeadlineExceeded; }

Connection::Connection(const ConnectionOptions& options)
    : options_(options),
      first_byte_timeout_(options.first_byte_timeout),
      peer_(absl::StrCat(options.host, ":", options.port)),
      rbuf_(new char[kReadBufferSize]),
      decoder_(yenc::ArticleDecoder::Options{yenc::ArticleDecoder::Mode::kNntp,
                                             yenc::Kernel::kAuto, options.max_body_bytes}) {}

Connection::~Connection() {
  CloseSocket();
  if (int w = wake_fd_.load(); w >= 0) close(w);
}

void Connection::SetSendHook(std::function<void()> hook) {
  send_hook_ = std::move(hook);
  if (send_hook_ && wake_fd_.load() < 0) wake_fd_.store(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
}

void Connection::Wake() {
  const int w = wake_fd_.load(std::memory_order_acquire);
  if (w < 0) return;
  const uint64_t one = 1;
  (void)!write(w, &one, sizeof one);  // a full counter is still a wake-up
}

void Connection::RunSendHook() {
  if (!send_hook_ || !hook_allowed_ || in_hook_) return;
  in_hook_ = true;
  std::string answering = std::move(current_);  // Flush() renames current_
  send_hook_();
  current_ = std::move(answering);
  in_hook_ = false;
}

namespace {
// Allows the send hook for the duration of one ReadBody()/ReadStat().
class HookWindow {
 public:
  explicit HookWindow(bool* allowed) : allowed_(allowed) { *allowed_ = true; }
  ~HookWindow() { *allowed_ = false; }
  HookWindow(const HookWindow&) = delete;
  HookWindow& operator=(const HookWindow&) = delete;

 private:
  bool* const allowed_;
};
}  // namespace

void Connection::CloseSocket() {
  absl::MutexLock lock(&fd_mu_);
  if (closed_) return;
  closed_ = true;
  if (ssl_ != nullptr) {
    SSL_free(ssl_);
    ssl_ = nullptr;
  }
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

void Connection::Interrupt() {
  absl::MutexLock lock(&fd_mu_);
  interrupted_.store(true);
  if (!closed_ && fd_ >= 0) shutdown(fd_, SHUT_RDWR);
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Dial(const ConnectionOptions& options) {
  if (options.host.empty()) return absl::InvalidArgumentError("ConnectionOptions.host is empty");
  if (options.port <= 0 || options.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("ConnectionOptions.port ", options.port,
                                                   " is out of range"));
  }
  IgnoreSigpipeOnce();
  std::unique_ptr<Connection> c(new Connection(options));
  c->dial_deadline_ = absl::Now() + options.dial_timeout;
  NZB_RETURN_IF_ERROR(c->Connect());
  if (options.tls == TlsMode::kImplicit) NZB_RETURN_IF_ERROR(c->TlsHandshake());
  NZB_RETURN_IF_ERROR(c->Greeting());
  if (options.tls == TlsMode::kStartTls) {
    std::string text;
    NZB_ASSIGN_OR_RETURN(int code, c->RoundTrip("STARTTLS", "STARTTLS\r\n", &text));
    if (code != 382) {
      return c->Fail(absl::FailedPreconditionError(
          absl::StrCat("STARTTLS refused by ", c->peer_, ": ", code, " ", QuoteForError(text),
                       "; use tls=kImplicit (usually port 563) or kNone")));
    }
    if (c->rpos_ != c->rend_) {
      return c->Fail(absl::InternalError(
          absl::StrCat(c->peer_, " sent data after 382 before the TLS handshake")));
    }
    NZB_RETURN_IF_ERROR(c->TlsHandshake());
  }
  if (!options.username.empty()) NZB_RETURN_IF_ERROR(c->Authenticate());
  if (options.mode_reader) NZB_RETURN_IF_ERROR(c->ModeReader());
  c->dial_deadline_ = absl::InfiniteFuture();
  return c;
}

absl::Status Connection::Connect() {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = absl::StrCat(options_.port);
  int rc = getaddrinfo(options_.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    return Fail(absl::UnavailableError(
        absl::StrCat("cannot resolve ", peer_, ": ", gai_strerror(rc))));
  }
  std::string errors;
  absl::Status last = absl::UnavailableError("no addresses");
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last = absl::UnavailableError(absl::StrCat("socket(): ", ErrnoText(errno)));
      continue;
    }
    {
      absl::MutexLock lock(&fd_mu_);
      fd_ = fd;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
    if (errno == EINPROGRESS) {
      absl::Status w = WaitFd(/*for_write=*/true, dial_deadline_, false);
      if (w.ok()) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == 0) break;
        last = absl::UnavailableError(
            absl::StrCat("connect to ", peer_, " failed: ", ErrnoText(err)));
      } else {
        last = w;
        if (IsTimeout(w) || w.code() == absl::StatusCode::kCancelled) {
          freeaddrinfo(res);
          return Fail(IsTimeout(w) ? absl::DeadlineExceededError(absl::StrCat(
                                         "connect to ", peer_, " timed out (dial_timeout ",
                                         absl::FormatDuration(options_.dial_timeout), ")"))
                                   : w);
        }
      }
    } else {
      last = absl::UnavailableError(
          absl::StrCat("connect to ", peer_, " failed: ", ErrnoText(errno)));
    }
    absl::MutexLock lock(&fd_mu_);
    close(fd);
    fd_ = -1;
  }
  freeaddrinfo(res);
  int fd;
  {
    absl::MutexLock lock(&fd_mu_);
    fd = fd_;
  }
  if (fd < 0) return Fail(last);
  return absl::OkStatus();
}

absl::Status Connection::TlsHandshake() {
  NZB_ASSIGN_OR_RETURN(SSL_CTX * ctx, ClientContext(options_.tls_verify, options_.tls_ca_file));
  ERR_clear_error();
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) return Fail(absl::InternalError("SSL_new failed: " + OpenSslErrors()));
  {
    absl::MutexLock lock(&fd_mu_);
    ssl_ = ssl;
  }
  SSL_set_fd(ssl, fd_);
  SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  const bool ip = IsIpLiteral(options_.host);
  if (!ip) SSL_set_tlsext_host_name(ssl, options_.host.c_str());
  if (options_.tls_verify) {
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), options_.host.c_str())
                : SSL_set1_host(ssl, options_.host.c_str());
    if (ok != 1) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("cannot verify TLS host name \"", options_.host, "\": ", OpenSslErrors())));
    }
  }
  while (true) {
    ERR_clear_error();
    int rc = SSL_connect(ssl);
    if (rc == 1) return absl::OkStatus();
    int err = SSL_get_error(ssl, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      absl::Status w = WaitFd(err == SSL_ERROR_WANT_WRITE, dial_deadline_, false);
      if (!w.ok()) {
        if (IsTimeout(w)) {
          return Fail(absl::DeadlineExceededError(
              absl::StrCat("TLS handshake with ", peer_, " timed out (dial_timeout ",
                           absl::FormatDuration(options_.dial_timeout), ")")));
        }
        return Fail(w);
      }
      continue;
    }
    long verify = SSL_get_verify_result(ssl);
    if (options_.tls_verify && verify != X509_V_OK) {
      ERR_clear_error();
      return Fail(absl::FailedPreconditionError(absl::StrCat(
          "TLS certificate verification failed for ", peer_, ": ",
          X509_verify_cert_error_string(verify),
          "; pass the server's CA in tls_ca_file, or set tls_verify=false to skip verification")));
    }
    if (interrupted_.load()) return Fail(absl::CancelledError("connection interrupted"));
    std::string detail = err == SSL_ERROR_SYSCALL && errno != 0 ? ErrnoText(errno)
                         : err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_SYSCALL
                             ? std::string("connection closed by peer")
                             : OpenSslErrors();
    return Fail(absl::UnavailableError(
        absl::StrCat("TLS handshake with ", peer_, " failed: ", detail)));
  }
}

absl::Status Connection::Greeting() {
  current_ = "greeting";
  absl::string_view line;
  NZB_RETURN_IF_ERROR(ReadLine(&line, /*first_of_reply=*/true, kMaxStatusLineLength));
  absl::StatusOr<StatusLine> st = ParseStatusLine(line);
  if (!st.ok()) return Fail(absl::InternalError(absl::StrCat("greeting from ", peer_, ": ", st.status().message())));
  greeting_ = std::string(line);
  if (st->code == 200 || st->code == 201) return absl::OkStatus();
  if (st->code == 400 || st->code == 502) {
    return Fail(ConnectionLimitError(absl::StrCat(
        peer_, " refused the connection at greeting: ", QuoteForError(greeting_),
        " (connection limit or service unavailable; retry later with fewer connections)")));
  }
  return Fail(absl::UnavailableError(
      absl::StrCat("unexpected greeting from ", peer_, ": ", QuoteForError(greeting_))));
}

absl::Status Connection::Authenticate() {
  std::string text;
  NZB_ASSIGN_OR_RETURN(int code, RoundTrip("AUTHINFO USER",
                                           absl::StrCat("AUTHINFO USER ", options_.username, "\r\n"),
                                           &text));
  if (code == 381) {
    NZB_ASSIGN_OR_RETURN(code, RoundTrip("AUTHINFO PASS",
                                         absl::StrCat("AUTHINFO PASS ", options_.password, "\r\n"),
                                         &text));
  }
  if (code == 281) return absl::OkStatus();
  const std::string reply = absl::StrCat(code, " ", QuoteForError(text));
  if (code == 502) {
    return Fail(ConnectionLimitError(absl::StrCat(
        peer_, " refused AUTHINFO for user \"", options_.username, "\": ", reply,
        " (connection limit reached or account blocked)")));
  }
  return Fail(absl::UnauthenticatedError(
      absl::StrCat("AUTHINFO for user \"", options_.username, "\" rejected by ", peer_, ": ",
                   reply, code == 481   ? " (wrong user name or password)"
                          : code == 482 ? " (authentication out of sequence)"
                                        : "")));
}

absl::Status Connection::ModeReader() {
  std::string text;
  mode_reader_sent_ = true;
  NZB_ASSIGN_OR_RETURN(int code, RoundTrip("MODE READER", "MODE READER\r\n", &text));
  if (code == 200 || code == 201) return absl::OkStatus();
  return Fail(absl::UnavailableError(
      absl::StrCat("MODE READER refused by ", peer_, ": ", code, " ", QuoteForError(text))));
}

absl::StatusOr<int> Connection::RoundTrip(absl::string_view verb, absl::string_view line,
                                          std::string* text) {
  NZB_RETURN_IF_ERROR(CheckUsable());
  if (!pending_.empty() || !wbuf_.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        verb, " needs an idle connection but ", pending_.size(), " command(s) are outstanding"));
  }
  current_ = std::string(verb);
  NZB_RETURN_IF_ERROR(WriteAll(line));
  absl::string_view reply;
  NZB_RETURN_IF_ERROR(ReadLine(&reply, true, kMaxStatusLineLength));
  absl::StatusOr<StatusLine> st = ParseStatusLine(reply);
  if (!st.ok()) {
    return Fail(absl::InternalError(
        absl::StrCat("reply to ", verb, " from ", peer_, ": ", st.status().message())));
  }
  *text = std::string(st->text);
  return st->code;
}

// --- Commands ---

void Connection::Enqueue(absl::string_view verb, absl::string_view message_id) {
  Pending p;
  p.verb = std::string(verb);
  p.arg = BracketId(message_id);
  absl::StrAppend(&wbuf_, verb, " ", p.arg, "\r\n");
  pending_.push_back(std::move(p));
  ++visible_outstanding_;
}

void Connection::SendBody(absl::string_view message_id) { Enqueue("BODY", message_id); }
void Connection::SendStat(absl::string_view message_id) { Enqueue("STAT", message_id); }
void Connection::SendArticle(absl::string_view message_id) { Enqueue("ARTICLE", message_id); }
void Connection::SendHead(absl::string_view message_id) { Enqueue("HEAD", message_id); }

absl::Status Connection::Flush() {
  NZB_RETURN_IF_ERROR(CheckUsable());
  if (wbuf_.empty()) return absl::OkStatus();
  current_ = "pipelined commands";
  absl::Status s = WriteAll(wbuf_);
  wbuf_.clear();
  return s;
}

absl::Status Connection::Date() {
  std::string text;
  NZB_ASSIGN_OR_RETURN(int code, RoundTrip("DATE", "DATE\r\n", &text));
  if (code == 111) return absl::OkStatus();
  return Unexpected("DATE", code, text);
}

absl::StatusOr<std::vector<std::string>> Connection::Capabilities() {
  std::string text;
  NZB_ASSIGN_OR_RETURN(int code, RoundTrip("CAPABILITIES", "CAPABILITIES\r\n", &text));
  if (code != 101) return Unexpected("CAPABILITIES", code, text);
  std::vector<std::string> lines;
  NZB_RETURN_IF_ERROR(ReadMultiLineLines(&lines));
  return lines;
}

absl::StatusOr<GroupInfo> Connection::Group(absl::string_view name) {
  std::string text;
  NZB_ASSIGN_OR_RETURN(int code, RoundTrip("GROUP", absl::StrCat("GROUP ", name, "\r\n"), &text));
  if (code == 411) {
    return absl::NotFoundError(absl::StrCat("no such newsgroup \"", name, "\" on ", peer_));
  }
  if (code != 211) return Unexpected("GROUP", code, text);
  std::vector<absl::string_view> f = absl::StrSplit(text, ' ', absl::SkipEmpty());
  GroupInfo g;
  if (f.size() < 4 || !absl::SimpleAtoi(f[0], &g.count) || !absl::SimpleAtoi(f[1], &g.low) ||
      !absl::SimpleAtoi(f[2], &g.high)) {
    return Fail(absl::InternalError(
        absl::StrCat("malformed GROUP reply from ", peer_, ": 211 ", QuoteForError(text))));
  }
  g.name = std::string(f[3]);
  return g;
}

void Connection::Quit() {
  bool open;
  {
    absl::MutexLock lock(&fd_mu_);
    open = !closed_ && fd_ >= 0;
  }
  if (open && usable_ && !interrupted_.load()) {
    static constexpr char kQuit[] = "QUIT\r\n";
    if (ssl_ != nullptr) {
      size_t written;
      ERR_clear_error();
      SSL_write_ex(ssl_, kQuit, sizeof(kQuit) - 1, &written);
      ERR_clear_error();
    } else {
      (void)!send(fd_, kQuit, sizeof(kQuit) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
  }
  usable_ = false;
  if (last_error_.empty()) last_error_ = "closed by Quit()";
  CloseSocket();
}

// --- Replies ---

absl::Status Connection::Unexpected(absl::string_view what, int code, absl::string_view text) {
  const std::string msg =
      absl::StrCat("unexpected reply to ", what, " from ", peer_, ": ", code, " ", QuoteForError(text));
  if (code == 400 || code == 502 || code == 205) {
    // The server is closing the connection (service discontinued).
    return Fail(absl::UnavailableError(absl::StrCat(msg, " (server closed the session)")));
  }
  if (code == 480) return Fail(absl::UnauthenticatedError(absl::StrCat(msg, " (authentication required)")));
  // A well-formed single-line reply: the stream is still in sync.
  return absl::InternalError(msg);
}

absl::Status Connection::SkipHiddenReplies() {
  while (!pending_.empty() && pending_.front().hidden) {
    Pending p = std::move(pending_.front());
    pending_.pop_front();
    current_ = absl::StrCat(p.verb, p.arg.empty() ? "" : " ", p.arg);
    absl::string_view line;
    NZB_RETURN_IF_ERROR(ReadLine(&line, true, kMaxStatusLineLength));
    absl::StatusOr<StatusLine> st = ParseStatusLine(line);
    if (!st.ok()) {
      return Fail(absl::InternalError(
          absl::StrCat("reply to ", current_, " from ", peer_, ": ", st.status().message())));
    }
    if (p.verb == "MODE READER") {
      if (st->code != 200 && st->code != 201) {
        return Fail(absl::UnavailableError(absl::StrCat(
            "server asked for MODE READER but refused it: ", st->code, " ", QuoteForError(st->text))));
      }
    } else if (IsMultiLineReply(p.verb, st->code)) {
      NZB_RETURN_IF_ERROR(DrainMultiLine());
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int> Connection::ReadReplyStatus(absl::string_view expected_verb1,
                                                absl::string_view expected_verb2, Pending* cmd,
                                                std::string* text) {
  NZB_RETURN_IF_ERROR(CheckUsable());
  NZB_RETURN_IF_ERROR(SkipHiddenReplies());
  if (pending_.empty()) {
    return absl::FailedPreconditionError(
        expected_verb1.empty()
            ? std::string("DiscardBody with no outstanding command")
            : absl::StrCat("Read", expected_verb1, " with no outstanding ", expected_verb1,
                           " command"));
  }
  if (!expected_verb1.empty() && pending_.front().verb != expected_verb1 &&
      pending_.front().verb != expected_verb2) {
    return absl::FailedPreconditionError(absl::StrCat("Read", expected_verb1,
                                                      " called but the next reply belongs to ",
                                                      pending_.front().verb, " ", pending_.front().arg));
  }
  if (!wbuf_.empty()) NZB_RETURN_IF_ERROR(Flush());
  while (true) {
    Pending& front = pending_.front();
    current_ = absl::StrCat(front.verb, " ", front.arg);
    absl::string_view line;
    NZB_RETURN_IF_ERROR(ReadLine(&line, true, kMaxStatusLineLength));
    absl::StatusOr<StatusLine> st = ParseStatusLine(line);
    if (!st.ok()) {
      pending_.pop_front();
      --visible_outstanding_;
      return Fail(absl::InternalError(
          absl::StrCat("reply to ", current_, " from ", peer_, ": ", st.status().message())));
    }
    if (st->code == 401 && !front.retried && !mode_reader_sent_ &&
        absl::StrContains(absl::AsciiStrToUpper(st->text), "MODE-READER")) {
      // The server wants MODE READER first. Replies to the commands already
      // pipelined behind this one arrive before anything we send now, so
      // mark them hidden (their replies are read and dropped), then send
      // MODE READER and every visible command again, in the same order.
      std::deque<Pending> next;
      std::vector<Pending> retry;
      Pending first = std::move(pending_.front());
      pending_.pop_front();
      first.retried = true;
      retry.push_back(first);
      for (Pending& p : pending_) {
        Pending hidden = p;
        if (!p.hidden) {
          Pending again = p;
          again.retried = true;
          retry.push_back(std::move(again));
        }
        hidden.hidden = true;
        next.push_back(std::move(hidden));
      }
      Pending mode;
      mode.verb = "MODE READER";
      mode.hidden = true;
      next.push_back(mode);
      std::string commands = "MODE READER\r\n";
      for (Pending& p : retry) {
        absl::StrAppend(&commands, p.verb, " ", p.arg, "\r\n");
        next.push_back(std::move(p));
      }
      pending_ = std::move(next);
      mode_reader_sent_ = true;
      NZB_RETURN_IF_ERROR(WriteAll(commands));
      NZB_RETURN_IF_ERROR(SkipHiddenReplies());
      continue;
    }
    *cmd = std::move(front);
    pending_.pop_front();
    --visible_outstanding_;
    *text = std::string(st->text);
    return st->code;
  }
}

absl::StatusOr<BodyInfo> Connection::ReadBody(std::string* out) {
  out->clear();
  HookWindow hook_window(&hook_allowed_);
  Pending cmd;
  std::string text;
  NZB_ASSIGN_OR_RETURN(int code, ReadReplyStatus("BODY", "ARTICLE", &cmd, &text));
  if (code == 430 || code == 423) {
    return absl::NotFoundError(absl::StrCat("article ", cmd.arg, " not found on ", peer_, ": ",
                                            code, " ", QuoteForError(text)));
  }
  if (!IsMultiLineReply(cmd.verb, code)) return Unexpected(current_, code, text);

  last_body_ = BodyInfo();
  decoder_.Reset();
  // The decoder writes straight into *out. resize_and_overwrite grows the
  // string without zero-filling it first: clearing a pooled 1 MiB buffer and
  // resizing it to its capacity cost as much CPU as decoding the article
  // into it. Each round hands the decoder room for the whole unread input
  // (decoded bytes never outnumber encoded ones); a round ends when the
  // article is complete, on an error, or to grow the string (which keeps the
  // bytes produced so far).
  size_t produced = 0;
  // Encoded bytes allowed before the decoder has produced max_body_bytes:
  // yEnc escapes at most every byte, plus headers and lines skipped before
  // =ybegin.
  const int64_t raw_cap = options_.max_body_bytes > 0 ? 2 * options_.max_body_bytes + (1 << 20)
                                                      : INT64_MAX;
  int64_t raw = 0;
  bool need_more = rpos_ == rend_;
  bool finished = false;
  absl::Status failed;
  size_t room = std::max<size_t>(out->capacity(), 64 << 10);
  while (!finished && failed.ok()) {
    out->resize_and_overwrite(room, [&](char* buf, size_t n) {
      while (true) {
        if (need_more) {
          failed = ReadMore(Deadline(options_.stall_timeout), false);
          if (!failed.ok()) return produced;
          need_more = false;
        }
        absl::string_view in(rbuf_.get() + rpos_, rend_ - rpos_);
        if (n - produced < in.size()) {
          room = std::max(produced + in.size(), n * 2);
          return produced;
        }
        absl::StatusOr<yenc::ArticleDecoder::FeedResult> r = decoder_.Feed(in, buf + produced, n - produced);
        if (!r.ok()) {
          if (r.status().code() == absl::StatusCode::kResourceExhausted) {
            failed = Fail(absl::ResourceExhaustedError(absl::StrCat(
                current_, " from ", peer_, " is larger than max_body_bytes (",
                options_.max_body_bytes, "): ", r.status().message())));
          } else {
            failed = Fail(absl::InternalError(absl::StrCat("malformed yEnc in ", current_, " from ",
                                                           peer_, ": ", r.status().message())));
          }
          return produced;
        }
        rpos_ += r->consumed;
        produced += r->produced;
        raw += r->consumed;
        if (decoder_.done()) {
          finished = true;
          return produced;
        }
        // The decoder may hold back a partial escape or line end until more
        // bytes arrive; read more rather than re-feeding the same bytes.
        need_more = true;
        if (raw > raw_cap) {
          failed = Fail(absl::ResourceExhaustedError(
              absl::StrCat(current_, " from ", peer_, " sent more than ", raw_cap,
                           " bytes without ending (max_body_bytes ", options_.max_body_bytes, ")")));
          return produced;
        }
      }
    });
  }
  if (!failed.ok()) return failed;
  if (!decoder_.saw_header()) {
    // Drained to the terminator: the connection is still in sync.
    return absl::InternalError(absl::StrCat("article ", cmd.arg, " from ", peer_,
                                            " is not yEnc encoded (no =ybegin line)"));
  }
  last_body_.header = decoder_.header();
  last_body_.trailer = decoder_.trailer();
  last_body_.crc32 = decoder_.crc32();
  last_body_.decoded_size = decoder_.decoded_bytes();
  last_body_.crc_checked =
      decoder_.saw_trailer() && (decoder_.trailer().has_pcrc32 ||
                                 (decoder_.header().part == 0 && decoder_.trailer().has_crc32));
  absl::Status v = decoder_.Verify();
  if (v.ok()) return last_body_;
  if (v.code() == absl::StatusCode::kDataLoss) {
    return absl::DataLossError(absl::StrCat("article ", cmd.arg, " from ", peer_, ": ", v.message()));
  }
  return absl::InternalError(
      absl::StrCat("article ", cmd.arg, " from ", peer_, ": bad yEnc: ", v.message()));
}

absl::Status Connection::ReadStat() {
  HookWindow hook_window(&hook_allowed_);
  Pending cmd;
  std::string text;
  NZB_ASSIGN_OR_RETURN(int code, ReadReplyStatus("STAT", "", &cmd, &text));
  if (code == 223) return absl::OkStatus();
  if (code == 430 || code == 423) {
    return absl::NotFoundError(absl::StrCat("article ", cmd.arg, " not found on ", peer_, ": ",
                                            code, " ", QuoteForError(text)));
  }
  return Unexpected(current_, code, text);
}

absl::Status Connection::ReadHead(std::string* out) {
  out->clear();
  Pending cmd;
  std::string text;
  NZB_ASSIGN_OR_RETURN(int code, ReadReplyStatus("HEAD", "", &cmd, &text));
  if (code == 430 || code == 423) {
    return absl::NotFoundError(absl::StrCat("article ", cmd.arg, " not found on ", peer_, ": ",
                                            code, " ", QuoteForError(text)));
  }
  if (code != 221) return Unexpected(current_, code, text);
  std::vector<std::string> lines;
  NZB_RETURN_IF_ERROR(ReadMultiLineLines(&lines));
  for (const std::string& l : lines) absl::StrAppend(out, l, "\r\n");
  return absl::OkStatus();
}

absl::Status Connection::DiscardBody(absl::Duration limit) {
  op_deadline_ = absl::Now() + limit;
  Pending cmd;
  std::string text;
  absl::StatusOr<int> code = ReadReplyStatus("", "", &cmd, &text);
  absl::Status s = code.status();
  if (code.ok() && IsMultiLineReply(cmd.verb, *code)) s = DrainMultiLine();
  op_deadline_ = absl::InfiniteFuture();
  return s;
}

absl::Status Connection::DrainMultiLine() {
  TerminatorScanner scanner;
  while (true) {
    if (rpos_ == rend_) NZB_RETURN_IF_ERROR(ReadMore(Deadline(options_.stall_timeout), false));
    rpos_ += scanner.Feed(absl::string_view(rbuf_.get() + rpos_, rend_ - rpos_));
    if (scanner.done()) return absl::OkStatus();
  }
}

absl::Status Connection::ReadMultiLineLines(std::vector<std::string>* lines) {
  while (true) {
    absl::string_view line;
    NZB_RETURN_IF_ERROR(ReadLine(&line, false, kMaxTextLineLength));
    if (line == ".") return absl::OkStatus();
    if (!line.empty() && line[0] == '.') line.remove_prefix(1);
    lines->emplace_back(line);
  }
}

// --- Low-level I/O ---

absl::Status Connection::CheckUsable() const {
  if (usable_) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("NNTP connection to ", peer_, " is unusable: ", last_error_));
}

absl::Status Connection::Fail(absl::Status s) {
  if (usable_) {
    usable_ = false;
    last_error_ = s.ToString();
  }
  return s;
}

absl::Time Connection::Deadline(absl::Duration d) const {
  return std::min({absl::Now() + d, dial_deadline_, op_deadline_});
}

absl::Status Connection::TimeoutError(bool first_byte) const {
  if (dial_deadline_ != absl::InfiniteFuture() && absl::Now() >= dial_deadline_) {
    return absl::DeadlineExceededError(
        absl::StrCat("dial to ", peer_, " timed out during ", current_, " (dial_timeout ",
                     absl::FormatDuration(options_.dial_timeout), ")"));
  }
  if (op_deadline_ != absl::InfiniteFuture() && absl::Now() >= op_deadline_) {
    return absl::DeadlineExceededError(
        absl::StrCat("discarding the reply to ", current_, " from ", peer_,
                     " took longer than its limit"));
  }
  if (writing_) {
    return absl::DeadlineExceededError(
        absl::StrCat("sending ", current_, " to ", peer_, " stalled: socket not writable for ",
                     "stall_timeout ", absl::FormatDuration(options_.stall_timeout)));
  }
  if (first_byte) {
    return absl::DeadlineExceededError(
        absl::StrCat("no reply to ", current_, " from ", peer_, " within first_byte_timeout ",
                     absl::FormatDuration(first_byte_timeout_)));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("reply to ", current_, " from ", peer_, " stalled: no bytes for stall_timeout ",
                   absl::FormatDuration(options_.stall_timeout)));
}

absl::Status Connection::WaitFd(bool for_write, absl::Time deadline, bool first_byte) {
  while (true) {
    if (interrupted_.load()) return Fail(absl::CancelledError("connection interrupted"));
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return Fail(TimeoutError(first_byte));
    pollfd p[2] = {};
    p[0].fd = fd_;
    p[0].events = for_write ? POLLOUT : POLLIN;
    // A read that allows the send hook also wakes for Wake() (B15).
    const int wake = for_write || !hook_allowed_ || in_hook_ || !send_hook_ ? -1 : wake_fd_.load();
    p[1].fd = wake;
    p[1].events = POLLIN;
    const int ms = left == absl::InfiniteDuration()
                       ? -1
                       : static_cast<int>(std::min<int64_t>(
                             absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))),
                             INT32_MAX));
    int rc = poll(p, wake >= 0 ? 2 : 1, ms);
    if (rc > 0 && wake >= 0 && (p[1].revents & POLLIN) != 0) {
      uint64_t count;
      (void)!read(wake, &count, sizeof count);
      RunSendHook();
      if (p[0].revents == 0) continue;  // still waiting for the socket
    }
    if (rc > 0) return absl::OkStatus();  // ready, or error/hangup for the I/O call to report
    if (rc < 0 && errno != EINTR) {
      return Fail(absl::UnavailableError(absl::StrCat("poll on ", peer_, ": ", ErrnoText(errno))));
    }
  }
}

absl::Status Connection::ReadLine(absl::string_view* line, bool first_of_reply, size_t max_len) {
  size_t scanned = 0;
  while (true) {
    const char* begin = rbuf_.get() + rpos_;
    const size_t avail = rend_ - rpos_;
    const void* nl = std::memchr(begin + scanned, '\n', avail - scanned);
    if (nl != nullptr) {
      size_t len = static_cast<const char*>(nl) - begin;
      rpos_ += len + 1;
      if (len > 0 && begin[len - 1] == '\r') --len;
      *line = absl::string_view(begin, len);
      return absl::OkStatus();
    }
    scanned = avail;
    if (avail > max_len) {
      return Fail(absl::InternalError(absl::StrCat(
          "line in reply to ", current_, " from ", peer_, " is longer than ", max_len,
          " bytes: ", QuoteForError(absl::string_view(begin, avail)))));
    }
    const bool first = first_of_reply && avail == 0;
    NZB_RETURN_IF_ERROR(ReadMore(Deadline(first ? first_byte_timeout_
                                                : options_.stall_timeout),
                                 first));
  }
}

absl::Status Connection::ReadMore(absl::Time deadline, bool first_byte) {
  if (rpos_ == rend_) {
    rpos_ = rend_ = 0;
  } else if (rpos_ > 0 && kReadBufferSize - rend_ < (64 << 10)) {
    std::memmove(rbuf_.get(), rbuf_.get() + rpos_, rend_ - rpos_);
    rend_ -= rpos_;
    rpos_ = 0;
  }
  if (rend_ == kReadBufferSize) {
    return Fail(absl::InternalError(absl::StrCat("read buffer full while reading ", current_)));
  }
  char* dst = rbuf_.get() + rend_;
  const size_t room = kReadBufferSize - rend_;
  RunSendHook();  // commands handed over since the last read go out first (B15)
  while (true) {
    if (interrupted_.load()) return Fail(absl::CancelledError("connection interrupted"));
    bool want_write = false;
    if (ssl_ != nullptr) {
      size_t n = 0;
      ERR_clear_error();
      int rc = SSL_read_ex(ssl_, dst, room, &n);
      if (rc == 1) {
        rend_ += n;
        return absl::OkStatus();
      }
      int err = SSL_get_error(ssl_, rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        want_write = err == SSL_ERROR_WANT_WRITE;
      } else {
        if (interrupted_.load()) return Fail(absl::CancelledError("connection interrupted"));
        if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0)) {
          return Fail(absl::UnavailableError(
              absl::StrCat("connection closed by ", peer_, " while reading ", current_)));
        }
        std::string detail = err == SSL_ERROR_SYSCALL ? ErrnoText(errno) : OpenSslErrors();
        return Fail(absl::UnavailableError(
            absl::StrCat("TLS read from ", peer_, " failed while reading ", current_, ": ", detail)));
      }
    } else {
      ssize_t n = recv(fd_, dst, room, 0);
      if (n > 0) {
        rend_ += n;
        // INN does not disable Nagle; keep our ACKs immediate so pipelined
        // small replies are not held back by delayed ACKs.
        int one = 1;
        setsockopt(fd_, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
        return absl::OkStatus();
      }
      if (n == 0) {
        if (interrupted_.load()) return Fail(absl::CancelledError("connection interrupted"));
        return Fail(absl::UnavailableError(
            absl::StrCat("connection closed by ", peer_, " while reading ", current_)));
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        if (interrupted_.load()) return Fail(absl::CancelledError("connection interrupted"));
        return Fail(absl::UnavailableError(absl::StrCat("read from ", peer_, " failed while reading ",
                                                        current_, ": ", ErrnoText(errno))));
      }
    }
    NZB_RETURN_IF_ERROR(WaitFd(want_write, deadline, first_byte));
    if (ssl_ != nullptr) {
      int one = 1;
      setsockopt(fd_, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
    }
  }
}

absl::Status Connection::WriteAll(absl::string_view data) {
  size_t off = 0;
  while (off < data.size()) {
    if (interrupted_.load()) return Fail(absl::CancelledError("connection interrupted"));
    bool want_read = false;
    if (ssl_ != nullptr) {
      size_t n = 0;
      ERR_clear_error();
      int rc = SSL_write_ex(ssl_, data.data() + off, data.size() - off, &n);
      if (rc == 1) {
        off += n;
        continue;
      }
      int err = SSL_get_error(ssl_, rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        want_read = err == SSL_ERROR_WANT_READ;
      } else {
        if (interrupted_.load()) return Fail(absl::CancelledError("connection interrupted"));
        std::string detail = err == SSL_ERROR_SYSCALL ? ErrnoText(errno) : OpenSslErrors();
        return Fail(absl::UnavailableError(
            absl::StrCat("TLS write to ", peer_, " failed sending ", current_, ": ", detail)));
      }
    } else {
      ssize_t n = send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n > 0) {
        off += n;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        if (interrupted_.load()) return Fail(absl::CancelledError("connection interrupted"));
        return Fail(absl::UnavailableError(
            absl::StrCat("write to ", peer_, " failed sending ", current_, ": ", ErrnoText(errno))));
      }
    }
    writing_ = true;
    absl::Status w = WaitFd(!want_read, Deadline(options_.stall_timeout), false);
    writing_ = false;
    NZB_RETURN_IF_ERROR(w);
  }
  return absl::OkStatus();
}

}  // namespace nzbmesh::nntp
