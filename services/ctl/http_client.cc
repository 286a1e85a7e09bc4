#include "services/ctl/http_client.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace nzbmesh::ctl {
namespace {

struct Url {
  std::string host, port, target;
};

absl::StatusOr<Url> ParseUrl(const std::string& url) {
  absl::string_view v = url;
  if (absl::StartsWith(v, "https://")) {
    return absl::InvalidArgumentError(absl::StrCat(url, ": https is not supported for the frontend admin API; use "
                                                        "the frontend's plain http address"));
  }
  if (!absl::ConsumePrefix(&v, "http://")) return absl::InvalidArgumentError(absl::StrCat(url, ": expected http://"));
  Url u;
  const size_t slash = v.find('/');
  absl::string_view hostport = v.substr(0, slash);
  u.target = slash == absl::string_view::npos ? "/" : std::string(v.substr(slash));
  if (!hostport.empty() && hostport[0] == '[') {
    const size_t close = hostport.find(']');
    if (close == absl::string_view::npos) return absl::InvalidArgumentError(absl::StrCat(url, ": bad IPv6 host"));
    u.host = std::string(hostport.substr(1, close - 1));
    absl::string_view rest = hostport.substr(close + 1);
    u.port = absl::ConsumePrefix(&rest, ":") ? std::string(rest) : "80";
  } else {
    const size_t colon = hostport.rfind(':');
    u.host = std::string(hostport.substr(0, colon));
    u.port = colon == absl::string_view::npos ? "80" : std::string(hostport.substr(colon + 1));
  }
  if (u.host.empty()) return absl::InvalidArgumentError(absl::StrCat(url, ": no host"));
  return u;
}

int MsLeft(absl::Time deadline) {
  return static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now())));
}

absl::StatusOr<std::string> Dechunk(absl::string_view body) {
  std::string out;
  while (true) {
    const size_t eol = body.find("\r\n");
    if (eol == absl::string_view::npos) return absl::UnavailableError("truncated chunked body");
    uint64_t n = 0;
    absl::string_view size = body.substr(0, eol);
    size = size.substr(0, size.find(';'));
    if (!absl::SimpleHexAtoi(absl::StripAsciiWhitespace(size), &n)) {
      return absl::UnavailableError("bad chunk size");
    }
    body.remove_prefix(eol + 2);
    if (n == 0) return out;
    if (body.size() < n + 2) return absl::UnavailableError("truncated chunk");
    out.append(body.data(), n);
    body.remove_prefix(n + 2);
  }
}

}  // namespace

absl::StatusOr<HttpResponse> HttpRequest(const std::string& method, const std::string& url,
                                         const std::map<std::string, std::string>& headers, absl::Duration timeout) {
  auto u = ParseUrl(url);
  if (!u.ok()) return u.status();
  const absl::Time deadline = absl::Now() + timeout;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(u->host.c_str(), u->port.c_str(), &hints, &res); rc != 0) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", u->host, ": ", gai_strerror(rc)));
  }
  int fd = -1;
  std::string last_error = "no address";
  for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last_error = std::strerror(errno);
      close(fd);
      fd = -1;
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof(err);
    if (poll(&p, 1, MsLeft(deadline)) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      last_error = err != 0 ? std::strerror(err) : "connect timed out";
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot connect to ", u->host, ":", u->port, ": ", last_error));

  std::string req = absl::StrCat(method, " ", u->target, " HTTP/1.1\r\nHost: ", u->host, ":", u->port,
                                 "\r\nConnection: close\r\nUser-Agent: nzbmeshctl\r\n");
  for (const auto& [k, v] : headers) absl::StrAppend(&req, k, ": ", v, "\r\n");
  req += "\r\n";
  size_t sent = 0;
  std::string raw;
  absl::Status status;
  while (sent < req.size()) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, MsLeft(deadline)) != 1) {
      status = absl::DeadlineExceededError(absl::StrCat("sending to ", url, " timed out"));
      break;
    }
    ssize_t n = send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      status = absl::UnavailableError(absl::StrCat("sending to ", url, ": ", std::strerror(errno)));
      break;
    }
    if (n > 0) sent += static_cast<size_t>(n);
  }
  while (status.ok()) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, MsLeft(deadline)) != 1) {
      status = absl::DeadlineExceededError(absl::StrCat("no complete answer from ", url, " within the timeout"));
      break;
    }
    char buf[16384];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      status = absl::UnavailableError(absl::StrCat("reading from ", url, ": ", std::strerror(errno)));
      break;
    }
    raw.append(buf, static_cast<size_t>(n));
    if (raw.size() > (64u << 20)) {
      status = absl::ResourceExhaustedError("response larger than 64 MiB");
      break;
    }
  }
  close(fd);
  if (!status.ok()) return status;

  const size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) return absl::UnavailableError(absl::StrCat(url, ": malformed HTTP response"));
  std::vector<std::string> lines = absl::StrSplit(raw.substr(0, head_end), "\r\n");
  HttpResponse resp;
  std::vector<absl::string_view> first = absl::StrSplit(lines[0], absl::MaxSplits(' ', 2));
  if (first.size() < 2 || !absl::StartsWith(first[0], "HTTP/1.") || !absl::SimpleAtoi(first[1], &resp.status)) {
    return absl::UnavailableError(absl::StrCat(url, ": malformed status line"));
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    resp.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  std::string body = raw.substr(head_end + 4);
  if (absl::AsciiStrToLower(resp.headers["transfer-encoding"]) == "chunked") {
    auto d = Dechunk(body);
    if (!d.ok()) return absl::UnavailableError(absl::StrCat(url, ": ", d.status().message()));
    body = std::move(*d);
  } else if (auto it = resp.headers.find("content-length"); it != resp.headers.end()) {
    size_t n = 0;
    if (absl::SimpleAtoi(it->second, &n) && n < body.size()) body.resize(n);
  }
  resp.body = std::move(body);
  return resp;
}

}  // namespace nzbmesh::ctl
