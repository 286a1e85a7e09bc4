#include "tests/fakes/nntp_server/nntp_server.h"

#include "common/strings/escape.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/yenc/yenc.h"

namespace nzbmesh::testing {
namespace {

std::string StripBrackets(absl::string_view id) {
  if (id.size() >= 2 && id.front() == '<' && id.back() == '>') id = id.substr(1, id.size() - 2);
  return std::string(id);
}

std::string OpenSslErrors() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

// Flips one decoded byte inside the first data line; the yEnc stays valid.
std::string CorruptBody(std::string body) {
  size_t pos = 0;
  while (pos < body.size() && body.compare(pos, 2, "=y") == 0) {
    size_t nl = body.find('\n', pos);
    if (nl == std::string::npos) return body;
    pos = nl + 1;
  }
  size_t eol = body.find('\r', pos);
  if (eol == std::string::npos) eol = body.size();
  for (size_t i = pos + 1; i + 1 < eol; ++i) {
    if (body[i] == '=' || body[i - 1] == '=') continue;
    for (int bit : {1, 2, 4, 8}) {
      char d = static_cast<char>(body[i] ^ bit);
      if (d != '\0' && d != '\r' && d != '\n' && d != '=' && d != '.' && d != '\t' && d != ' ') {
        body[i] = d;
        return body;
      }
    }
  }
  return body;
}

// Applies a Fault::Yenc to a wire-form article body (CRLF lines, dot-stuffed,
// ending in the =yend line). Bodies without =yend are returned unchanged.
std::string DamageYenc(std::string body, FakeNntpServer::Fault::Yenc mode) {
  using Yenc = FakeNntpServer::Fault::Yenc;
  const size_t yend = body.rfind("\r\n=yend");
  if (mode == Yenc::kIntact || yend == std::string::npos) return body;
  const size_t yend_line = yend + 2;
  switch (mode) {
    case Yenc::kNoYend:
      body.erase(yend_line);
      break;
    case Yenc::kShortPart: {
      // The data line before =yend (it starts after the previous CRLF).
      const size_t prev = body.rfind("\r\n", yend - 1);
      const size_t start = prev == std::string::npos ? 0 : prev + 2;
      if (body.compare(start, 2, "=y") != 0) body.erase(start, yend_line - start);
      break;
    }
    case Yenc::kWrongSize: {
      const size_t key = body.find(" size=", yend_line);
      if (key == std::string::npos) break;
      const size_t digits = key + 6;
      size_t end = digits;
      while (end < body.size() && body[end] >= '0' && body[end] <= '9') ++end;
      int64_t size = 0;
      if (!absl::SimpleAtoi(absl::string_view(body).substr(digits, end - digits), &size)) break;
      body.replace(digits, end - digits, absl::StrCat(size + 1));
      break;
    }
    case Yenc::kIntact:
      break;
  }
  return body;
}

int PollMs(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return -1;
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(std::min<int64_t>(
      absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))), 1 << 30));
}

}  // namespace

struct FakeNntpServer::Article {
  std::string body;  // wire form: CRLF lines, dot-stuffed, no terminator
};

struct FakeNntpServer::Command {
  std::string verb;        // upper case, two words for MODE/AUTHINFO
  std::string arg;
  std::string message_id;  // without <>
  bool article = false;    // BODY/STAT/ARTICLE/HEAD by message-id
  absl::Time received;
};

struct FakeNntpServer::Conn {
  int id = 0;
  int fd = -1;       // closed under the server's mu_
  int wake_fd = -1;  // eventfd, written by WakeAll() under mu_
  SSL* ssl = nullptr;
  bool reject = false;
  std::thread thread;
  std::atomic<bool> finished{false};
  int in_flight = 0;  // guarded by the server's mu_
  // Connection-thread state.
  std::string in;
  std::deque<Command> queue;
  bool hold_reading = false;  // STARTTLS received: the next bytes are TLS
  bool eof = false;
  bool broken = false;
  bool authed = false;
  bool user_given = false;
  std::string user;
  bool mode_reader = false;
};

// --- Gate ---

void FakeNntpServer::Gate::Release(int n) {
  {
    absl::MutexLock lock(&mu_);
    permits_ += n;
  }
  server_->WakeAll();
}

void FakeNntpServer::Gate::ReleaseAll() {
  {
    absl::MutexLock lock(&mu_);
    open_ = true;
  }
  server_->WakeAll();
}

int FakeNntpServer::Gate::waiting() const {
  absl::MutexLock lock(&mu_);
  return waiting_;
}

int FakeNntpServer::Gate::passed() const {
  absl::MutexLock lock(&mu_);
  return passed_;
}

void FakeNntpServer::Gate::Enter() {
  {
    absl::MutexLock lock(&mu_);
    ++waiting_;
  }
  absl::MutexLock lock(&server_->mu_);
  server_->Notify();
}

bool FakeNntpServer::Gate::TryPass() {
  absl::MutexLock lock(&mu_);
  if (open_) return true;
  if (permits_ > 0) {
    --permits_;
    return true;
  }
  return false;
}

void FakeNntpServer::Gate::Leave() {
  {
    absl::MutexLock lock(&mu_);
    --waiting_;
    ++passed_;
  }
  absl::MutexLock lock(&server_->mu_);
  server_->Notify();
}

// --- Lifecycle ---

FakeNntpServer::FakeNntpServer(const Options& options)
    : options_(options), connection_limit_(options.max_connections_before_502) {}

FakeNntpServer::~FakeNntpServer() {
  Stop();
  if (ssl_ctx_ != nullptr) SSL_CTX_free(ssl_ctx_);
}

absl::StatusOr<std::unique_ptr<FakeNntpServer>> FakeNntpServer::Start(const Options& options) {
  signal(SIGPIPE, SIG_IGN);  // OpenSSL writes with write(2)
  std::unique_ptr<FakeNntpServer> s(new FakeNntpServer(options));
  if (options.tls || options.starttls) {
    if (options.cert_file.empty() || options.key_file.empty()) {
      return absl::InvalidArgumentError("FakeNntpServer: TLS needs cert_file and key_file");
    }
    ERR_clear_error();
    s->ssl_ctx_ = SSL_CTX_new(TLS_server_method());
    if (s->ssl_ctx_ == nullptr ||
        SSL_CTX_use_certificate_chain_file(s->ssl_ctx_, options.cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(s->ssl_ctx_, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(s->ssl_ctx_) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("FakeNntpServer: bad TLS certificate/key (", options.cert_file, ", ",
                       options.key_file, "): ", OpenSslErrors()));
    }
  }
  s->listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s->listen_fd_ < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  int one = 1;
  setsockopt(s->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(options.port));
  if (bind(s->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(s->listen_fd_, 1024) != 0) {
    return absl::InternalError(
        absl::StrCat("bind/listen on 127.0.0.1:", options.port, ": ", strerror(errno)));
  }
  socklen_t len = sizeof(addr);
  getsockname(s->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  s->port_ = ntohs(addr.sin_port);
  s->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  s->accept_thread_ = std::thread([p = s.get()] { p->AcceptLoop(); });
  return s;
}

void FakeNntpServer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    for (auto& c : conns_) {
      if (!c->finished.load() && c->fd >= 0) shutdown(c->fd, SHUT_RDWR);
    }
    Notify();
  }
  WakeAll();
  uint64_t one = 1;
  (void)!write(stop_fd_, &one, sizeof(one));
  if (accept_thread_.joinable()) accept_thread_.join();
  std::vector<std::unique_ptr<Conn>> conns;
  {
    absl::MutexLock lock(&mu_);
    conns.swap(conns_);
  }
  for (auto& c : conns) {
    if (c->thread.joinable()) c->thread.join();
  }
  close(listen_fd_);
  close(stop_fd_);
  absl::MutexLock lock(&mu_);
  stopped_ = true;
}

void FakeNntpServer::Notify() {
  ++version_;
  changed_.SignalAll();
}

void FakeNntpServer::WakeAll() {
  absl::MutexLock lock(&mu_);
  for (auto& c : conns_) {
    if (!c->finished.load() && c->wake_fd >= 0) {
      uint64_t one = 1;
      (void)!write(c->wake_fd, &one, sizeof(one));
    }
  }
  Notify();
}

void FakeNntpServer::ReapFinished() {
  auto it = std::remove_if(conns_.begin(), conns_.end(), [](std::unique_ptr<Conn>& c) {
    if (!c->finished.load()) return false;
    // The thread set `finished` as its last step under mu_; it needs no lock
    // to return.
    if (c->thread.joinable()) c->thread.join();
    return true;
  });
  conns_.erase(it, conns_.end());
}

void FakeNntpServer::SetConnectionLimit(int k) {
  absl::MutexLock lock(&mu_);
  connection_limit_ = k;
}

void FakeNntpServer::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    int rc = poll(fds, 2, -1);
    if (rc < 0 && errno == EINTR) continue;
    if (fds[1].revents != 0) return;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    absl::MutexLock lock(&mu_);
    ReapFinished();
    if (stopping_) {
      close(fd);
      return;
    }
    auto c = std::make_unique<Conn>();
    c->id = ++next_conn_id_;
    c->fd = fd;
    c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ++connections_accepted_;
    ++current_connections_;
    max_concurrent_connections_ = std::max(max_concurrent_connections_, current_connections_);
    if (connection_limit_ > 0 && served_connections_ >= connection_limit_) {
      c->reject = true;
      ++connections_rejected_;
    } else {
      ++served_connections_;
    }
    Conn* raw = c.get();
    c->thread = std::thread([this, raw] { Serve(raw); });
    conns_.push_back(std::move(c));
    Notify();
  }
}

// --- Connection I/O ---

void FakeNntpServer::ReadCommands(Conn* c) {
  if (c->hold_reading || c->eof || c->broken) return;
  char buf[64 << 10];
  while (true) {
    if (c->ssl != nullptr) {
      size_t n = 0;
      ERR_clear_error();
      int rc = SSL_read_ex(c->ssl, buf, sizeof(buf), &n);
      if (rc == 1) {
        c->in.append(buf, n);
        continue;
      }
      int err = SSL_get_error(c->ssl, rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) break;
      if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0)) {
        c->eof = true;
      } else {
        c->broken = true;
      }
      ERR_clear_error();
      break;
    }
    ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
    if (n > 0) {
      c->in.append(buf, n);
      continue;
    }
    if (n == 0) {
      c->eof = true;
    } else if (errno == EINTR) {
      continue;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
      c->broken = true;
    }
    break;
  }
  ParseCommands(c);
}

void FakeNntpServer::ParseCommands(Conn* c) {
  size_t pos = 0;
  while (!c->hold_reading) {
    size_t nl = c->in.find('\n', pos);
    if (nl == std::string::npos) break;
    absl::string_view line(c->in.data() + pos, nl - pos);
    pos = nl + 1;
    line = absl::StripSuffix(line, "\r");
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    Command cmd;
    size_t sp = line.find(' ');
    cmd.verb = absl::AsciiStrToUpper(line.substr(0, sp));
    absl::string_view rest =
        sp == absl::string_view::npos ? absl::string_view() : absl::StripLeadingAsciiWhitespace(line.substr(sp));
    if (cmd.verb == "MODE" || cmd.verb == "AUTHINFO") {
      size_t sp2 = rest.find(' ');
      absl::StrAppend(&cmd.verb, " ", absl::AsciiStrToUpper(rest.substr(0, sp2)));
      rest = sp2 == absl::string_view::npos ? absl::string_view()
                                            : absl::StripLeadingAsciiWhitespace(rest.substr(sp2));
    }
    cmd.arg = std::string(rest);
    if ((cmd.verb == "BODY" || cmd.verb == "STAT" || cmd.verb == "ARTICLE" || cmd.verb == "HEAD") &&
        !rest.empty() && rest.front() == '<') {
      cmd.article = true;
      cmd.message_id = StripBrackets(rest);
    }
    {
      absl::MutexLock lock(&mu_);
      // Stamped under the lock so the log's order is also its time order.
      cmd.received = absl::Now();
      ++total_commands_;
      log_.push_back(CommandRecord{cmd.received, c->id, cmd.verb, cmd.message_id});
      if (cmd.article) {
        ++in_flight_;
        ++c->in_flight;
        max_in_flight_ = std::max(max_in_flight_, in_flight_);
        max_in_flight_per_connection_ = std::max(max_in_flight_per_connection_, c->in_flight);
        if (cmd.verb != "HEAD") ++calls_[cmd.message_id];
      }
      Notify();
    }
    if (cmd.verb == "STARTTLS") c->hold_reading = true;
    c->queue.push_back(std::move(cmd));
  }
  c->in.erase(0, pos);
}

FakeNntpServer::Poll FakeNntpServer::PollOnce(Conn* c, absl::Time deadline, bool want_write,
                                              bool* writable) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return Poll::kClosed;
  }
  // Commands that arrived since the caller last looked count as progress:
  // return so it re-checks its condition instead of blocking in poll().
  const size_t queued = c->queue.size();
  ReadCommands(c);
  if (c->eof || c->broken) return Poll::kClosed;
  if (c->queue.size() != queued) return Poll::kOk;
  const bool reading = !c->hold_reading;
  pollfd fds[2] = {{c->fd, static_cast<short>((reading ? POLLIN : 0) | (want_write ? POLLOUT : 0)), 0},
                   {c->wake_fd, POLLIN, 0}};
  int rc = poll(fds, 2, PollMs(deadline));
  if (rc < 0 && errno != EINTR) {
    c->broken = true;
    return Poll::kClosed;
  }
  if (fds[1].revents & POLLIN) {
    uint64_t v;
    (void)!read(c->wake_fd, &v, sizeof(v));
  }
  if ((fds[0].revents & POLLOUT) && writable != nullptr) *writable = true;
  if ((fds[0].revents & (POLLERR | POLLNVAL)) ||
      ((fds[0].revents & POLLHUP) && !(fds[0].revents & POLLIN))) {
    c->broken = true;
    return Poll::kClosed;
  }
  ReadCommands(c);
  if (c->eof || c->broken) return Poll::kClosed;
  return Poll::kOk;
}

bool FakeNntpServer::WaitUntil(Conn* c, absl::Time t) {
  while (absl::Now() < t) {
    if (PollOnce(c, t, false, nullptr) == Poll::kClosed) return false;
  }
  return true;
}

// Writes `data` fully (reading commands while the socket is full).
bool FakeNntpServer::SendRaw(Conn* c, absl::string_view data) {
  size_t off = 0;
  while (off < data.size()) {
    if (c->broken) return false;
    ssize_t n;
    if (c->ssl != nullptr) {
      size_t w = 0;
      ERR_clear_error();
      int rc = SSL_write_ex(c->ssl, data.data() + off, data.size() - off, &w);
      if (rc == 1) {
        n = static_cast<ssize_t>(w);
      } else {
        int err = SSL_get_error(c->ssl, rc);
        if (err != SSL_ERROR_WANT_WRITE && err != SSL_ERROR_WANT_READ) {
          ERR_clear_error();
          c->broken = true;
          return false;
        }
        n = -1;
        errno = EAGAIN;
      }
    } else {
      n = send(c->fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    }
    if (n > 0) {
      off += n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      c->broken = true;
      return false;
    }
    bool writable = false;
    while (!writable) {
      if (PollOnce(c, absl::InfiniteFuture(), true, &writable) == Poll::kClosed) return false;
    }
  }
  return true;
}

bool FakeNntpServer::TlsAccept(Conn* c) {
  c->ssl = SSL_new(ssl_ctx_);
  SSL_set_fd(c->ssl, c->fd);
  SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (true) {
    ERR_clear_error();
    int rc = SSL_accept(c->ssl);
    if (rc == 1) return true;
    int err = SSL_get_error(c->ssl, rc);
    ERR_clear_error();
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) return false;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return false;
    }
    if (absl::Now() >= deadline) return false;
    pollfd fds[2] = {{c->fd, static_cast<short>(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT), 0},
                     {c->wake_fd, POLLIN, 0}};
    poll(fds, 2, PollMs(deadline));
    if (fds[1].revents & POLLIN) {
      uint64_t v;
      (void)!read(c->wake_fd, &v, sizeof(v));
    }
  }
}

void FakeNntpServer::FinishCommand(Conn* c, const Command& cmd) {
  absl::MutexLock lock(&mu_);
  if (cmd.article) {
    --in_flight_;
    --c->in_flight;
  }
  Notify();
}

void FakeNntpServer::Serve(Conn* c) {
  bool ok = true;
  if (options_.tls) ok = TlsAccept(c);
  if (ok && c->reject) {
    SendRaw(c, "502 too many connections\r\n");
    ok = false;
  }
  if (ok) {
    const int code = options_.greeting_code;
    std::string greeting =
        code == 200   ? "200 nzbmesh fake news server ready (posting allowed)\r\n"
        : code == 201 ? "201 nzbmesh fake news server ready (no posting)\r\n"
        : code == 400 ? "400 service temporarily unavailable\r\n"
        : code == 502 ? "502 too many connections\r\n"
                      : absl::StrCat(code, " fake greeting\r\n");
    ok = SendRaw(c, greeting) && (code == 200 || code == 201);
  }
  while (ok) {
    while (c->queue.empty()) {
      if (PollOnce(c, absl::InfiniteFuture(), false, nullptr) == Poll::kClosed) {
        ok = false;
        break;
      }
    }
    if (!ok) break;
    Command cmd = c->queue.front();
    ok = Answer(c, cmd);
    c->queue.pop_front();
    FinishCommand(c, cmd);
  }
  if (c->ssl != nullptr) {
    SSL_free(c->ssl);
    c->ssl = nullptr;
  }
  absl::MutexLock lock(&mu_);
  for (const Command& cmd : c->queue) {
    if (cmd.article) --in_flight_;
  }
  c->in_flight = 0;
  close(c->fd);
  c->fd = -1;
  close(c->wake_fd);
  c->wake_fd = -1;
  --current_connections_;
  if (!c->reject) --served_connections_;
  c->finished.store(true);
  Notify();
}

bool FakeNntpServer::Answer(Conn* c, Command& cmd) {
  int fail = 0;
  {
    absl::MutexLock lock(&mu_);
    std::swap(fail, fail_next_command_);
  }
  if (fail != 0) {
    SendRaw(c, absl::StrCat(fail, fail == 400 ? " service discontinued\r\n" : " session terminated\r\n"));
    return false;
  }
  const std::string& v = cmd.verb;
  if (cmd.article) return AnswerArticle(c, cmd);
  if (v == "BODY" || v == "STAT" || v == "ARTICLE" || v == "HEAD") {
    return SendRaw(c, "501 only <message-id> arguments are supported\r\n");
  }
  if (v == "QUIT") {
    SendRaw(c, "205 bye\r\n");
    return false;
  }
  if (v == "CAPABILITIES") {
    std::string caps = "101 capability list follows\r\nVERSION 2\r\nREADER\r\n";
    if (options_.require_auth && !c->authed) caps += "AUTHINFO USER\r\n";
    if (options_.starttls && c->ssl == nullptr && ssl_ctx_ != nullptr) caps += "STARTTLS\r\n";
    caps += "IMPLEMENTATION nzbmesh-fake-nntp\r\n.\r\n";
    return SendRaw(c, caps);
  }
  if (v == "MODE READER") {
    c->mode_reader = true;
    return SendRaw(c, "200 reader mode, posting allowed\r\n");
  }
  if (v == "DATE") {
    return SendRaw(c, absl::StrCat("111 ", absl::FormatTime("%Y%m%d%H%M%S", absl::Now(),
                                                            absl::UTCTimeZone()),
                                   "\r\n"));
  }
  if (v == "GROUP") {
    if (cmd.arg != options_.group) return SendRaw(c, "411 no such newsgroup\r\n");
    size_t n;
    {
      absl::MutexLock lock(&mu_);
      n = articles_.size();
    }
    return SendRaw(c, absl::StrCat("211 ", n, " ", n > 0 ? 1 : 0, " ", n, " ", options_.group,
                                   "\r\n"));
  }
  if (v == "STARTTLS") {
    if (!options_.starttls || options_.tls || ssl_ctx_ == nullptr || c->ssl != nullptr) {
      c->hold_reading = false;
      return SendRaw(c, "502 STARTTLS not available\r\n");
    }
    if (!SendRaw(c, "382 continue with TLS negotiation\r\n")) return false;
    c->in.clear();
    if (!TlsAccept(c)) return false;
    c->hold_reading = false;
    return true;
  }
  if (v == "AUTHINFO USER") {
    if (options_.auth_reply_code != 0) {
      const int code = options_.auth_reply_code;
      SendRaw(c, absl::StrCat(code, code == 502 ? " too many connections for this user\r\n"
                                                : " authentication rejected\r\n"));
      return code != 502 && code != 400;
    }
    c->user = cmd.arg;
    c->user_given = true;
    return SendRaw(c, "381 password required\r\n");
  }
  if (v == "AUTHINFO PASS") {
    if (!c->user_given) return SendRaw(c, "482 authentication commands issued out of sequence\r\n");
    c->user_given = false;
    if (options_.username.empty() ||
        (c->user == options_.username && cmd.arg == options_.password)) {
      c->authed = true;
      return SendRaw(c, "281 authentication accepted\r\n");
    }
    return SendRaw(c, "481 authentication failed\r\n");
  }
  return SendRaw(c, "500 unknown command\r\n");
}

bool FakeNntpServer::AnswerArticle(Conn* c, Command& cmd) {
  if (options_.require_auth && !c->authed) return SendRaw(c, "480 authentication required\r\n");
  if (options_.require_mode_reader && !c->mode_reader) return SendRaw(c, "401 MODE-READER\r\n");
  bool has_fault = false;
  const Fault f = LookupFault(cmd.message_id, &has_fault);
  if (Gate* g = LookupGate(cmd.message_id); g != nullptr) {
    g->Enter();
    bool open = true;
    while (!g->TryPass()) {
      if (PollOnce(c, absl::InfiniteFuture(), false, nullptr) == Poll::kClosed) {
        open = false;
        break;
      }
    }
    g->Leave();
    if (!open) return false;
  }
  if (!WaitUntil(c, cmd.received + f.latency)) return false;
  if (f.stall || f.stall_after_bytes == 0) {
    while (PollOnce(c, absl::InfiniteFuture(), false, nullptr) != Poll::kClosed) {
    }
    return false;
  }
  if (f.close_with_code != 0) {
    SendRaw(c, absl::StrCat(f.close_with_code, " service discontinued\r\n"));
    return false;
  }
  if (f.drop_after_bytes == 0) return false;

  std::shared_ptr<const Article> article;
  {
    absl::MutexLock lock(&mu_);
    auto it = articles_.find(cmd.message_id);
    if (it != articles_.end()) article = it->second;
  }
  std::string status;
  std::string headers;
  std::string corrupted;
  absl::string_view body;
  const std::string bracketed = absl::StrCat("<", cmd.message_id, ">");
  if (!f.raw_reply.empty()) {
    status = f.raw_reply;
  } else if (article == nullptr || f.missing || f.missing_423) {
    status = f.missing_423 ? "423 no article with that number\r\n" : "430 no such article\r\n";
  } else if (cmd.verb == "STAT") {
    status = absl::StrCat("223 0 ", bracketed, "\r\n");
  } else {
    const int code = cmd.verb == "BODY" ? 222 : cmd.verb == "ARTICLE" ? 220 : 221;
    status = absl::StrCat(code, " 0 ", bracketed, "\r\n");
    if (cmd.verb != "BODY") {
      headers = absl::StrCat("Message-ID: ", bracketed, "\r\nNewsgroups: ", options_.group,
                             "\r\nFrom: nzbmesh test <test@nzbmesh.test>\r\nSubject: ",
                             cmd.message_id, "\r\n");
      if (cmd.verb == "ARTICLE") headers += "\r\n";
    }
    if (cmd.verb != "HEAD") {
      if (f.corrupt || f.yenc != Fault::Yenc::kIntact) {
        corrupted = DamageYenc(f.corrupt ? CorruptBody(article->body) : article->body, f.yenc);
        body = corrupted;
      } else {
        body = article->body;
      }
    }
    absl::StrAppend(&headers, "");
  }
  const bool multi = !body.empty() || !headers.empty();
  const absl::string_view pieces[] = {status, headers, body, multi && !f.no_terminator ? ".\r\n" : ""};
  const absl::Time start = absl::Now();
  int64_t sent = 0;
  for (absl::string_view piece : pieces) {
    while (!piece.empty()) {
      size_t n = piece.size();
      if (f.drop_after_bytes >= 0) {
        n = std::min<int64_t>(n, f.drop_after_bytes - sent);
        if (n == 0) return false;  // close mid-reply
      }
      if (f.stall_after_bytes >= 0) {
        n = std::min<int64_t>(n, f.stall_after_bytes - sent);
        if (n == 0) {
          while (PollOnce(c, absl::InfiniteFuture(), false, nullptr) != Poll::kClosed) {
          }
          return false;
        }
      }
      if (f.bytes_per_second > 0) {
        n = std::min<int64_t>(n, std::max<int64_t>(1, f.bytes_per_second / 100));
        const absl::Time due = start + absl::Seconds(static_cast<double>(sent) / f.bytes_per_second);
        if (!WaitUntil(c, due)) return false;
      }
      if (!SendRaw(c, piece.substr(0, n))) return false;
      sent += n;
      piece.remove_prefix(n);
    }
  }
  if (f.drop_after_bytes >= 0) return false;
  if (multi && f.no_terminator) {  // the reply never ends: silent until the peer closes
    while (PollOnce(c, absl::InfiniteFuture(), false, nullptr) != Poll::kClosed) {
    }
    return false;
  }
  return true;
}

// --- Store, faults, gates ---

void FakeNntpServer::PostArticle(std::string message_id, std::string body) {
  auto a = std::make_shared<Article>();
  a->body = std::move(body);
  absl::MutexLock lock(&mu_);
  articles_[StripBrackets(message_id)] = std::move(a);
}

void FakeNntpServer::PostYencArticle(std::string message_id, absl::string_view data,
                                     absl::string_view name) {
  yenc::EncodeOptions o;
  o.name = std::string(name);
  o.dot_stuff = true;
  PostArticle(std::move(message_id), yenc::EncodePart(data, o));
}

FakeNntpServer::PostedFile FakeNntpServer::PostFile(absl::string_view name, absl::string_view data,
                                                    int64_t part_size,
                                                    absl::string_view message_id_prefix) {
  PostedFile file;
  file.name = std::string(name);
  file.size = static_cast<int64_t>(data.size());
  file.crc32 = yenc::Crc32Update(0, data.data(), data.size());
  if (part_size <= 0) part_size = 768000;
  const int64_t total = std::max<int64_t>(1, (file.size + part_size - 1) / part_size);
  for (int64_t i = 0; i < total; ++i) {
    Segment seg;
    seg.number = static_cast<int>(i + 1);
    seg.offset = i * part_size;
    seg.size = std::min<int64_t>(part_size, file.size - seg.offset);
    seg.message_id = absl::StrCat(message_id_prefix, ".", seg.number, "@nzbmesh.test");
    absl::string_view chunk = data.substr(seg.offset, seg.size);
    seg.crc32 = yenc::Crc32Update(0, chunk.data(), chunk.size());
    yenc::EncodeOptions o;
    o.name = file.name;
    o.part = seg.number;
    o.total = total;
    o.file_size = file.size;
    o.begin = seg.offset + 1;
    o.dot_stuff = true;
    o.include_file_crc = i + 1 == total;
    o.file_crc32 = file.crc32;
    std::string body = yenc::EncodePart(chunk, o);
    seg.bytes = static_cast<int64_t>(body.size());
    PostArticle(seg.message_id, std::move(body));
    file.segments.push_back(std::move(seg));
  }
  return file;
}

void FakeNntpServer::RemoveArticle(absl::string_view message_id) {
  absl::MutexLock lock(&mu_);
  articles_.erase(StripBrackets(message_id));
}

bool FakeNntpServer::HasArticle(absl::string_view message_id) const {
  absl::MutexLock lock(&mu_);
  return articles_.contains(StripBrackets(message_id));
}

void FakeNntpServer::SetFault(absl::string_view message_id, const Fault& fault) {
  absl::MutexLock lock(&mu_);
  faults_[StripBrackets(message_id)] = fault;
}

void FakeNntpServer::SetDefaultFault(const Fault& fault) {
  absl::MutexLock lock(&mu_);
  default_fault_ = fault;
  has_default_fault_ = true;
}

void FakeNntpServer::ClearFaults() {
  absl::MutexLock lock(&mu_);
  faults_.clear();
  has_default_fault_ = false;
  default_fault_ = Fault();
}

void FakeNntpServer::FailNextCommand(int code) {
  absl::MutexLock lock(&mu_);
  fail_next_command_ = code;
}

void FakeNntpServer::DropAllConnections() {
  absl::MutexLock lock(&mu_);
  for (auto& c : conns_) {
    if (!c->finished.load() && c->fd >= 0) shutdown(c->fd, SHUT_RDWR);
  }
}

FakeNntpServer::Fault FakeNntpServer::LookupFault(const std::string& id, bool* found) {
  absl::MutexLock lock(&mu_);
  *found = false;
  auto consume = [&](Fault& f) {
    Fault copy = f;
    *found = true;
    if (f.times > 0) --f.times;
    return copy;
  };
  auto it = faults_.find(id);
  if (it != faults_.end()) {
    Fault f = consume(it->second);
    if (it->second.times == 0) faults_.erase(it);
    return f;
  }
  if (has_default_fault_) {
    Fault f = consume(default_fault_);
    if (default_fault_.times == 0) has_default_fault_ = false;
    return f;
  }
  return Fault();
}

FakeNntpServer::Gate* FakeNntpServer::AddGate(absl::string_view message_id) {
  absl::MutexLock lock(&mu_);
  gates_.push_back(std::unique_ptr<Gate>(new Gate(this, StripBrackets(message_id))));
  active_gates_.push_back(gates_.back().get());
  return gates_.back().get();
}

void FakeNntpServer::ClearGates() {
  std::vector<Gate*> gates;
  {
    absl::MutexLock lock(&mu_);
    gates.swap(active_gates_);
  }
  for (Gate* g : gates) g->ReleaseAll();
}

FakeNntpServer::Gate* FakeNntpServer::LookupGate(const std::string& id) {
  absl::MutexLock lock(&mu_);
  Gate* any = nullptr;
  for (Gate* g : active_gates_) {
    if (g->message_id() == id) return g;
    if (g->message_id().empty() && any == nullptr) any = g;
  }
  return any;
}

// --- Counters ---

int FakeNntpServer::max_concurrent_connections() const {
  absl::MutexLock lock(&mu_);
  return max_concurrent_connections_;
}
int FakeNntpServer::current_connections() const {
  absl::MutexLock lock(&mu_);
  return current_connections_;
}
int FakeNntpServer::connections_accepted() const {
  absl::MutexLock lock(&mu_);
  return connections_accepted_;
}
int FakeNntpServer::connections_rejected() const {
  absl::MutexLock lock(&mu_);
  return connections_rejected_;
}
int FakeNntpServer::in_flight() const {
  absl::MutexLock lock(&mu_);
  return in_flight_;
}
int FakeNntpServer::max_in_flight() const {
  absl::MutexLock lock(&mu_);
  return max_in_flight_;
}
int FakeNntpServer::max_in_flight_per_connection() const {
  absl::MutexLock lock(&mu_);
  return max_in_flight_per_connection_;
}
int FakeNntpServer::calls(absl::string_view message_id) const {
  absl::MutexLock lock(&mu_);
  auto it = calls_.find(StripBrackets(message_id));
  return it == calls_.end() ? 0 : it->second;
}
int64_t FakeNntpServer::total_commands() const {
  absl::MutexLock lock(&mu_);
  return total_commands_;
}
std::vector<FakeNntpServer::CommandRecord> FakeNntpServer::command_log() const {
  absl::MutexLock lock(&mu_);
  return log_;
}

std::vector<int> FakeNntpServer::open_connection_ids() const {
  absl::MutexLock lock(&mu_);
  std::vector<int> ids;
  for (const auto& c : conns_) {
    if (!c->finished.load()) ids.push_back(c->id);
  }
  return ids;
}

void FakeNntpServer::ResetCounters() {
  absl::MutexLock lock(&mu_);
  max_concurrent_connections_ = current_connections_;
  connections_accepted_ = 0;
  connections_rejected_ = 0;
  max_in_flight_ = in_flight_;
  max_in_flight_per_connection_ = 0;
  for (auto& c : conns_) {
    if (!c->finished.load()) max_in_flight_per_connection_ = std::max(max_in_flight_per_connection_, c->in_flight);
  }
  calls_.clear();
  total_commands_ = 0;
  log_.clear();
  Notify();
}

bool FakeNntpServer::WaitFor(const std::function<bool()>& cond, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int64_t v;
    {
      absl::MutexLock lock(&mu_);
      v = version_;
    }
    if (cond()) return true;
    const absl::Time now = absl::Now();
    if (now >= deadline) return false;
    // Server events wake us at once; the short cap covers conditions that
    // depend on state outside the server (the client side).
    absl::MutexLock lock(&mu_);
    if (version_ == v) changed_.WaitWithDeadline(&mu_, std::min(deadline, now + absl::Milliseconds(5)));
  }
}

// --- NZB ---

std::string MakeNzb(const std::vector<FakeNntpServer::PostedFile>& files, const NzbOptions& options) {
  std::string out =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<!DOCTYPE nzb PUBLIC \"-//newzBin//DTD NZB 1.1//EN\" "
      "\"http://www.newzbin.com/DTD/nzb/nzb-1.1.dtd\">\n"
      "<nzb xmlns=\"http://www.newzbin.com/DTD/2003/nzb\">\n";
  if (!options.meta.empty()) {
    out += " <head>\n";
    for (const auto& [k, v] : options.meta) {
      absl::StrAppend(&out, "  <meta type=\"", XmlEscape(k), "\">", XmlEscape(v), "</meta>\n");
    }
    out += " </head>\n";
  }
  for (const auto& f : files) {
    const std::string subject = absl::StrCat(options.subject_prefix, "\"", f.name, "\" yEnc (1/",
                                             f.segments.size(), ")");
    absl::StrAppend(&out, " <file poster=\"", XmlEscape(options.poster), "\" date=\"", options.date,
                    "\" subject=\"", XmlEscape(subject), "\">\n  <groups>\n");
    for (const auto& g : options.groups) absl::StrAppend(&out, "   <group>", XmlEscape(g), "</group>\n");
    out += "  </groups>\n  <segments>\n";
    for (const auto& s : f.segments) {
      absl::StrAppend(&out, "   <segment bytes=\"", s.bytes, "\" number=\"", s.number, "\">",
                      XmlEscape(s.message_id), "</segment>\n");
    }
    out += "  </segments>\n </file>\n";
  }
  out += "</nzb>\n";
  return out;
}

}  // namespace nzbmesh::testing
