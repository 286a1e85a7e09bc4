// A small HTTP/1.1 origin server for client tests: a real listening socket on
// 127.0.0.1 (port 0), one thread per connection. Routes match the request
// path exactly (query ignored) and send fixed raw bytes, then close; a
// "hang" route reads the request and never answers (until the server stops
// or the client goes away). Counts requests per path; WaitForRequests waits
// on a condition with a deadline. Given a PEM certificate and key it speaks
// HTTPS (OpenSSL, blocking, each read bounded by a 30 s socket timeout; no
// hang routes over TLS).
#ifndef NZBMESH_TESTS_SERVICES_FRONTEND_LOOPBACK_HTTP_SERVER_H_
#define NZBMESH_TESTS_SERVICES_FRONTEND_LOOPBACK_HTTP_SERVER_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace nzbmesh::frontend::testing {

class LoopbackHttpServer {
 public:
  // Plain HTTP, or HTTPS with `cert_file`/`key_file` (PEM); tls_error() says
  // what went wrong loading them.
  explicit LoopbackHttpServer(const std::string& cert_file = "", const std::string& key_file = "") {
    if (!cert_file.empty()) {
      tls_ = SSL_CTX_new(TLS_server_method());
      if (SSL_CTX_use_certificate_chain_file(tls_, cert_file.c_str()) != 1 ||
          SSL_CTX_use_PrivateKey_file(tls_, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        tls_error_ = absl::StrCat("cannot load ", cert_file, " / ", key_file);
      }
    }
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(listen_fd_, 64);
    socklen_t len = sizeof(a);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (pipe(stop_pipe_) != 0) stop_pipe_[0] = stop_pipe_[1] = -1;
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }

  ~LoopbackHttpServer() {
    if (stop_pipe_[1] >= 0) (void)!write(stop_pipe_[1], "x", 1);  // wakes every poll()
    acceptor_.join();
    std::vector<std::thread> conns;
    {
      absl::MutexLock lock(&mu_);
      conns.swap(conns_);
    }
    for (auto& t : conns) t.join();
    close(listen_fd_);
    close(stop_pipe_[0]);
    close(stop_pipe_[1]);
    if (tls_ != nullptr) SSL_CTX_free(tls_);
  }

  const std::string& tls_error() const { return tls_error_; }

  int port() const { return port_; }
  std::string Url(const std::string& path_and_query, const std::string& host = "127.0.0.1") const {
    return absl::StrCat(tls_ != nullptr ? "https://" : "http://", host, ":", port_, path_and_query);
  }

  // GET `path` answers exactly `raw` (status line, headers, body), then closes.
  void Route(const std::string& path, std::string raw) {
    absl::MutexLock lock(&mu_);
    routes_[path] = std::move(raw);
  }
  // A complete response with `status`, extra header lines and `body`.
  static std::string Response(int status, const std::string& reason, const std::string& headers,
                              const std::string& body) {
    return absl::StrCat("HTTP/1.1 ", status, " ", reason, "\r\nContent-Length: ", body.size(), "\r\n", headers,
                        "Connection: close\r\n\r\n", body);
  }
  // GET `path` is read and never answered.
  void Hang(const std::string& path) {
    absl::MutexLock lock(&mu_);
    hang_.push_back(path);
  }

  int requests(const std::string& path) const {
    absl::MutexLock lock(&mu_);
    auto it = counts_.find(path);
    return it == counts_.end() ? 0 : it->second;
  }
  // The request heads received for `path`, in arrival order.
  std::vector<std::string> heads(const std::string& path) const {
    absl::MutexLock lock(&mu_);
    auto it = heads_.find(path);
    return it == heads_.end() ? std::vector<std::string>{} : it->second;
  }
  bool WaitForRequests(const std::string& path, int n, absl::Duration timeout) const {
    struct Arg {
      const LoopbackHttpServer* s;
      const std::string* path;
      int n;
    } arg{this, &path, n};
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(
                                    +[](Arg* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                      auto it = a->s->counts_.find(*a->path);
                                      return it != a->s->counts_.end() && it->second >= a->n;
                                    },
                                    &arg),
                                timeout);
  }

 private:
  // Waits until `fd` is readable; false when the server stops first.
  bool WaitReadable(int fd) const {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    while (true) {
      int r = poll(p, 2, -1);
      if (r < 0) continue;
      if (p[1].revents != 0) return false;
      if (p[0].revents != 0) return true;
    }
  }

  void AcceptLoop() {
    while (WaitReadable(listen_fd_)) {
      int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      absl::MutexLock lock(&mu_);
      conns_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  // HTTPS: handshake, read the head, answer, close. Blocking; bounded by SO_RCVTIMEO.
  void ServeTls(int fd) {
    timeval tv{30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    SSL* ssl = SSL_new(tls_);
    SSL_set_fd(ssl, fd);
    std::string head;
    char buf[4096];
    if (SSL_accept(ssl) == 1) {
      while (head.find("\r\n\r\n") == std::string::npos) {
        int n = SSL_read(ssl, buf, sizeof(buf));
        if (n <= 0) break;
        head.append(buf, static_cast<size_t>(n));
      }
    }
    if (head.find("\r\n\r\n") != std::string::npos) {
      bool hang = false;
      std::string raw = Record(head, &hang);
      SSL_write(ssl, raw.data(), static_cast<int>(raw.size()));
      SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    close(fd);
  }

  // Counts the request and returns the answer of its route.
  std::string Record(const std::string& head, bool* hang) {
    // "GET /path?query HTTP/1.1"
    size_t sp1 = head.find(' ');
    size_t sp2 = head.find(' ', sp1 + 1);
    std::string target = head.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string path = target.substr(0, target.find('?'));
    absl::MutexLock lock(&mu_);
    ++counts_[path];
    heads_[path].push_back(head.substr(0, head.find("\r\n\r\n") + 4));
    for (const auto& h : hang_) *hang |= h == path;
    auto it = routes_.find(path);
    return it != routes_.end() ? it->second : Response(404, "Not Found", "", "no such path\n");
  }

  void Serve(int fd) {
    if (tls_ != nullptr) {
      ServeTls(fd);
      return;
    }
    std::string head;
    char buf[4096];
    while (head.find("\r\n\r\n") == std::string::npos) {
      if (!WaitReadable(fd)) {
        close(fd);
        return;
      }
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) {
        close(fd);
        return;
      }
      head.append(buf, static_cast<size_t>(n));
    }
    bool hang = false;
    std::string raw = Record(head, &hang);
    if (hang) {
      // Never answer: wait until the client closes or the server stops.
      while (WaitReadable(fd) && read(fd, buf, sizeof(buf)) > 0) {
      }
      close(fd);
      return;
    }
    size_t off = 0;
    while (off < raw.size()) {
      ssize_t n = send(fd, raw.data() + off, raw.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    shutdown(fd, SHUT_WR);
    // Drain until the client closes, so the answer is not lost to a reset.
    while (WaitReadable(fd) && read(fd, buf, sizeof(buf)) > 0) {
    }
    close(fd);
  }

  SSL_CTX* tls_ = nullptr;
  std::string tls_error_;
  int listen_fd_ = -1;
  int port_ = 0;
  int stop_pipe_[2] = {-1, -1};
  std::thread acceptor_;
  mutable absl::Mutex mu_;  // protects everything below
  std::vector<std::thread> conns_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> routes_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> hang_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> counts_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<std::string>> heads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nzbmesh::frontend::testing

#endif  // NZBMESH_TESTS_SERVICES_FRONTEND_LOOPBACK_HTTP_SERVER_H_
