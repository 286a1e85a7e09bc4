// HTTP client side of the frontend benchmarks (frontend_benchmark,
// frontend_broker_benchmark): raw loopback sockets, no HTTP library, so the
// client costs little next to the server it measures.
//   Connect/SendAll/RangeGet  one request on a fresh TCP_NODELAY connection
//   ReadStreams               one thread reading many responses with poll(),
//                             flat out or at a player's pace, recording the
//                             first byte and the worst wait for wanted bytes
//   RssMb                     VmRSS of this (or another) process
#ifndef NZBMESH_TESTS_SERVICES_FRONTEND_BENCH_CLIENT_H_
#define NZBMESH_TESTS_SERVICES_FRONTEND_BENCH_CLIENT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace nzbmesh::frontend::testing {

// VmRSS of process `pid` (0 = this process) in MB (2^20 bytes); 0 if unknown.
inline double RssMb(int pid = 0) {
  std::ifstream in(pid == 0 ? std::string("/proc/self/status") : absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      int64_t kb = 0;
      (void)absl::SimpleAtoi(line.substr(6, line.size() - 6 - 3), &kb);
      return static_cast<double>(kb) / 1024.0;
    }
  }
  return 0;
}

// A TCP_NODELAY connection to 127.0.0.1:port; -1 if it cannot connect.
inline int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

// Writes all of `s`; false once the peer is gone.
inline bool SendAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// "GET url" for bytes first..last (inclusive).
inline std::string RangeGet(const char* url, int64_t first, int64_t last) {
  return absl::StrCat("GET ", url, " HTTP/1.1\r\nHost: b\r\nRange: bytes=", first, "-", last, "\r\n\r\n");
}

// One client thread reading many responses with poll(). `pace_bps` 0 = flat out.
struct ClientStream {
  int fd = -1;
  std::string head;
  bool head_done = false;
  int64_t body_left = -1;
  int64_t body_read = 0;
  absl::Time hungry_since = absl::InfinitePast();  // wanted bytes and had none since
  absl::Time first_byte = absl::InfinitePast();
  absl::Duration worst_gap;  // after the first byte
};

inline constexpr int64_t kChunk = 64 * 1024;

// Body bytes a paced reader may take now: its pace since the start plus one chunk.
inline int64_t Allowance(const ClientStream& s, double pace_bps, absl::Duration since_start) {
  return static_cast<int64_t>(pace_bps * absl::ToDoubleSeconds(since_start)) + kChunk - s.body_read;
}

struct ClientResult {
  int64_t bytes = 0;
  absl::Duration worst_gap;
  absl::Duration worst_first_byte;
  // How far the slowest stream ended behind its pace (after its first byte).
  absl::Duration worst_lag;
  int failed = 0;
};

inline ClientResult ReadStreams(std::vector<ClientStream>& streams, double pace_bps, absl::Duration max_time) {
  ClientResult res;
  std::vector<char> buf(256 * 1024);
  absl::Time start = absl::Now();
  absl::Time deadline = start + max_time;
  for (auto& s : streams) s.hungry_since = start;
  while (true) {
    absl::Time now = absl::Now();
    if (now >= deadline) break;
    std::vector<pollfd> pfds;
    std::vector<ClientStream*> owners;
    absl::Duration wait = absl::Milliseconds(50);
    for (auto& s : streams) {
      if (s.fd < 0) continue;
      if (pace_bps > 0 && s.head_done) {
        // A player reads in chunks of kChunk once its buffer has room for one.
        int64_t allowed = Allowance(s, pace_bps, now - start);
        if (allowed < kChunk) {
          s.hungry_since = absl::InfiniteFuture();
          wait = std::min(wait, absl::Seconds(static_cast<double>(kChunk - allowed) / pace_bps));
          continue;
        }
      }
      if (s.hungry_since == absl::InfiniteFuture()) s.hungry_since = now;
      pfds.push_back({s.fd, POLLIN, 0});
      owners.push_back(&s);
    }
    if (pfds.empty() && std::none_of(streams.begin(), streams.end(), [](const auto& s) { return s.fd >= 0; })) break;
    int n = poll(pfds.data(), pfds.size(), static_cast<int>(absl::ToInt64Milliseconds(wait)) + 1);
    if (n <= 0) continue;
    now = absl::Now();
    for (size_t i = 0; i < pfds.size(); ++i) {
      if (pfds[i].revents == 0) continue;
      ClientStream& s = *owners[i];
      size_t want = buf.size();
      if (pace_bps > 0 && s.head_done) {
        want = static_cast<size_t>(
            std::clamp<int64_t>(Allowance(s, pace_bps, now - start), 1, static_cast<int64_t>(buf.size())));
      }
      ssize_t got = recv(s.fd, buf.data(), want, 0);
      if (got <= 0) {
        ++res.failed;
        close(s.fd);
        s.fd = -1;
        continue;
      }
      if (!s.head_done) {
        s.head.append(buf.data(), static_cast<size_t>(got));
        size_t end = s.head.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        size_t cl = s.head.find("Content-Length: ");
        int64_t len = 0;
        (void)absl::SimpleAtoi(s.head.substr(cl + 16, s.head.find("\r\n", cl) - cl - 16), &len);
        s.body_left = len;
        s.head_done = true;
        int64_t extra = static_cast<int64_t>(s.head.size() - end - 4);
        s.body_read += extra;
        s.body_left -= extra;
        res.bytes += extra;
        // The body bytes that came with the headers are consumed: keep only
        // the headers (200 clients x 256 KiB would be counted in this
        // process's heap, which hosts the frontend being measured).
        s.head.resize(end + 4);
        s.head.shrink_to_fit();
      } else {
        s.body_read += got;
        s.body_left -= got;
        res.bytes += got;
      }
      if (s.first_byte == absl::InfinitePast()) {
        s.first_byte = now;  // startup: time to first byte, reported apart
      } else if (s.hungry_since != absl::InfiniteFuture()) {
        s.worst_gap = std::max(s.worst_gap, now - s.hungry_since);
      }
      s.hungry_since = now;
      if (s.body_left <= 0) {
        close(s.fd);
        s.fd = -1;
      }
    }
  }
  absl::Time end = absl::Now();
  for (auto& s : streams) {
    // A stream still waiting for bytes it wanted when time ran out.
    if (s.fd >= 0 && s.first_byte != absl::InfinitePast() && s.hungry_since != absl::InfiniteFuture()) {
      s.worst_gap = std::max(s.worst_gap, end - s.hungry_since);
    }
    res.worst_gap = std::max(res.worst_gap, s.worst_gap);
    if (s.first_byte != absl::InfinitePast()) {
      res.worst_first_byte = std::max(res.worst_first_byte, s.first_byte - start);
      if (pace_bps > 0 && s.fd >= 0) {
        double due = pace_bps * absl::ToDoubleSeconds(end - s.first_byte);
        res.worst_lag = std::max(res.worst_lag, absl::Seconds((due - static_cast<double>(s.body_read)) / pace_bps));
      }
    }
    if (s.fd >= 0) close(s.fd);
    s.fd = -1;
  }
  return res;
}

}  // namespace nzbmesh::frontend::testing

#endif  // NZBMESH_TESTS_SERVICES_FRONTEND_BENCH_CLIENT_H_
