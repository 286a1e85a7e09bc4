// A raw-socket HTTP/1.1 client for frontend tests: exact bytes out, parsed
// responses in, every read bounded by a deadline.
#ifndef NZBMESH_TESTS_SERVICES_FRONTEND_HTTP_TEST_CLIENT_H_
#define NZBMESH_TESTS_SERVICES_FRONTEND_HTTP_TEST_CLIENT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace nzbmesh::frontend::testing {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

class HttpConn {
 public:
  // `rcvbuf` > 0: SO_RCVBUF of the socket before it connects (a client
  // whose receive window fills fast).
  explicit HttpConn(int port, int rcvbuf = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf > 0) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~HttpConn() { Close(); }
  bool connected() const { return connected_; }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  // Closes with RST instead of FIN.
  void Reset() {
    linger l{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    Close();
  }

  bool Send(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads until `n` bytes are buffered, EOF or the deadline. False on EOF/timeout.
  bool Fill(size_t n, absl::Time deadline) {
    while (buf_.size() < n) {
      if (!ReadSome(deadline)) return false;
    }
    return true;
  }
  // Reads one chunk; false on EOF, error or timeout.
  bool ReadSome(absl::Time deadline) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) <= 0) return false;
    char tmp[65536];
    ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  // True when the server closed the connection before the deadline.
  bool WaitClosed(absl::Duration timeout) {
    absl::Time deadline = absl::Now() + timeout;
    while (!eof_ && absl::Now() < deadline) ReadSome(deadline);
    return eof_;
  }

  // Reads the response head; with `read_body`, the Content-Length body too.
  bool ReadResponse(HttpResponse* r, bool read_body = true, absl::Duration timeout = absl::Seconds(10)) {
    absl::Time deadline = absl::Now() + timeout;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!ReadSome(deadline)) return false;
    }
    std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    std::vector<std::string> lines = absl::StrSplit(head, "\r\n");
    std::vector<std::string> status_line = absl::StrSplit(lines[0], absl::MaxSplits(' ', 2));
    if (status_line.size() < 2 || !absl::SimpleAtoi(status_line[1], &r->status)) return false;
    r->headers.clear();
    for (size_t i = 1; i < lines.size(); ++i) {
      size_t c = lines[i].find(':');
      if (c == std::string::npos) continue;
      r->headers[absl::AsciiStrToLower(lines[i].substr(0, c))] =
          std::string(absl::StripAsciiWhitespace(lines[i].substr(c + 1)));
    }
    r->body.clear();
    if (!read_body) return true;
    size_t len = 0;
    if (!absl::SimpleAtoi(r->header("content-length"), &len)) len = 0;
    if (!Fill(len, deadline)) return false;
    r->body = buf_.substr(0, len);
    buf_.erase(0, len);
    return true;
  }

  std::string& buffer() { return buf_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string buf_;
};

// One request on a fresh connection.
inline HttpResponse Fetch(int port, const std::string& request, bool read_body = true) {
  HttpConn c(port);
  HttpResponse r;
  if (c.Send(request)) c.ReadResponse(&r, read_body);
  return r;
}

}  // namespace nzbmesh::frontend::testing

#endif  // NZBMESH_TESTS_SERVICES_FRONTEND_HTTP_TEST_CLIENT_H_
