// nntp_testserver: the fake NNTP server as a standalone process for the local
// demo. Every regular file in --spool (except *.nzb) is yEnc-encoded into
// articles on start, and "<file>.nzb" describing it is written next to it.
//
//   nntp_testserver --spool DIR [--port N] [--user U --pass P] [--latency_ms N]
//
// Prints "listening on 127.0.0.1:PORT" and serves until SIGINT/SIGTERM.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <map>
#include <thread>
#include <vector>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/service/mutex_mode.h"
#include "tests/fakes/nntp_server/nntp_server.h"
#include "tests/fakes/nntp_server/spool.h"

ABSL_FLAG(int, port, 0, "TCP port on 127.0.0.1 (0 = any free port; printed on start)");
ABSL_FLAG(std::string, spool, "", "Directory of files to post (an .nzb is written for each)");
ABSL_FLAG(std::string, user, "", "Require AUTHINFO with this user name ('' = no auth)");
ABSL_FLAG(std::string, pass, "", "Password for --user");
ABSL_FLAG(int, latency_ms, 0, "Latency before the first byte of every article reply");
ABSL_FLAG(int64_t, part_size, 768000, "Decoded bytes per article");
ABSL_FLAG(int, max_connections, 0, "Answer 502 beyond this many connections (0 = unlimited)");
ABSL_FLAG(int, control_port, -1,
          "Serve a control API on 127.0.0.1:PORT (0 = any; -1 = off) for end-to-end tests: "
          "GET /stats (JSON counters), /reset, /drop, /clear, /limit?connections=K, "
          "/calls?id=ID, /log (article commands: connection, verb, id, unix ms), /connections (open ids), "
          "/fault?id=ID&latency_ms=&drop_after_bytes=&stall_after_bytes=&stall=1&missing=1&corrupt=1"
          "&yenc=short_part|wrong_size|no_yend&no_terminator=1&close_with_code=&times=");

namespace {
int g_signal_pipe[2];

using nzbmesh::testing::FakeNntpServer;

// For the control API's JSON strings (message-ids and verbs are plain ASCII).
std::string JsonEscape(absl::string_view in) {
  std::string out;
  for (char ch : in) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) >= 0x20) out += ch;
  }
  return out;
}

// The control API: one request per connection, answered and closed.
std::string HandleControl(FakeNntpServer* server, const std::string& target) {
  const size_t q = target.find('?');
  const std::string path = target.substr(0, q);
  std::map<std::string, std::string> args;
  if (q != std::string::npos) {
    for (absl::string_view kv : absl::StrSplit(target.substr(q + 1), '&')) {
      std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
      args[p.first] = p.second;
    }
  }
  auto num = [&](const char* k, int64_t def) {
    int64_t v = def;
    if (args.count(k)) (void)absl::SimpleAtoi(args[k], &v);
    return v;
  };
  if (path == "/stats") {
    return absl::StrCat("{\"max_concurrent_connections\":", server->max_concurrent_connections(),
                        ",\"current_connections\":", server->current_connections(),
                        ",\"connections_accepted\":", server->connections_accepted(),
                        ",\"connections_rejected\":", server->connections_rejected(),
                        ",\"in_flight\":", server->in_flight(), ",\"max_in_flight\":", server->max_in_flight(),
                        ",\"max_in_flight_per_connection\":", server->max_in_flight_per_connection(),
                        ",\"total_commands\":", server->total_commands(), "}");
  }
  if (path == "/calls") {  // BODY/STAT/ARTICLE commands received for one message-id
    return absl::StrCat("{\"calls\":", server->calls(args["id"]), "}");
  }
  if (path == "/log") {  // article commands in wire order: [connection id, verb, message-id, received unix ms]
    std::string out = "[";
    for (const auto& r : server->command_log()) {
      if (r.message_id.empty()) continue;
      absl::StrAppend(&out, out.size() > 1 ? "," : "", "[", r.connection_id, ",\"", JsonEscape(r.command),
                      "\",\"", JsonEscape(r.message_id), "\",", absl::ToUnixMillis(r.received), "]");
    }
    return out + "]";
  }
  if (path == "/connections") {  // ids of the connections still open
    return absl::StrCat("[", absl::StrJoin(server->open_connection_ids(), ","), "]");
  }
  if (path == "/reset") {
    server->ResetCounters();
    return "{}";
  }
  if (path == "/drop") {
    server->DropAllConnections();
    return "{}";
  }
  if (path == "/limit") {  // 502 at greeting past this many served connections
    server->SetConnectionLimit(static_cast<int>(num("connections", 0)));
    return "{}";
  }
  if (path == "/clear") {
    server->ClearFaults();
    return "{}";
  }
  if (path == "/fault") {
    FakeNntpServer::Fault f;
    f.latency = absl::Milliseconds(num("latency_ms", 0));
    f.bytes_per_second = num("bytes_per_second", 0);
    f.drop_after_bytes = num("drop_after_bytes", -1);
    f.stall_after_bytes = num("stall_after_bytes", -1);
    f.stall = num("stall", 0) != 0;
    f.missing = num("missing", 0) != 0;
    f.corrupt = num("corrupt", 0) != 0;
    f.no_terminator = num("no_terminator", 0) != 0;
    if (args.count("yenc")) {
      const std::string& y = args["yenc"];
      using Yenc = FakeNntpServer::Fault::Yenc;
      if (y == "short_part") {
        f.yenc = Yenc::kShortPart;
      } else if (y == "wrong_size") {
        f.yenc = Yenc::kWrongSize;
      } else if (y == "no_yend") {
        f.yenc = Yenc::kNoYend;
      } else {
        return "";  // 404: an unknown mode must not pass silently as "intact"
      }
    }
    f.close_with_code = static_cast<int>(num("close_with_code", 0));
    f.times = static_cast<int>(num("times", -1));
    if (args.count("id") && !args["id"].empty()) {
      server->SetFault(args["id"], f);
    } else {
      server->SetDefaultFault(f);
    }
    return "{}";
  }
  return "";
}

void ServeControl(FakeNntpServer* server, int listen_fd) {
  while (true) {
    int fd = accept(listen_fd, nullptr, nullptr);
    if (fd < 0) {
      if (errno == EINTR) continue;
      return;
    }
    std::string req;
    char buf[4096];
    while (req.find("\r\n\r\n") == std::string::npos && req.size() < 65536) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) break;
      req.append(buf, static_cast<size_t>(n));
    }
    std::vector<std::string> parts = absl::StrSplit(req.substr(0, req.find("\r\n")), ' ');
    std::string body = parts.size() >= 2 ? HandleControl(server, parts[1]) : "";
    std::string status = body.empty() ? "404 Not Found" : "200 OK";
    std::string resp = absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: application/json\r\nContent-Length: ",
                                    body.size(), "\r\nConnection: close\r\n\r\n", body);
    (void)!write(fd, resp.data(), resp.size());
    close(fd);
  }
}
void OnSignal(int) { (void)!write(g_signal_pipe[1], "x", 1); }
}  // namespace

int main(int argc, char** argv) {
  nzbmesh::DisableMutexDeadlockDetection();  // production's mode: it serves the demo stack
  absl::ParseCommandLine(argc, argv);
  using nzbmesh::testing::FakeNntpServer;
  FakeNntpServer::Options options;
  options.username = absl::GetFlag(FLAGS_user);
  options.password = absl::GetFlag(FLAGS_pass);
  options.require_auth = !options.username.empty();
  options.max_connections_before_502 = absl::GetFlag(FLAGS_max_connections);
  options.port = absl::GetFlag(FLAGS_port);
  auto server = FakeNntpServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "nntp_testserver: %s\n", server.status().ToString().c_str());
    return 1;
  }
  if (absl::GetFlag(FLAGS_latency_ms) > 0) {
    FakeNntpServer::Fault f;
    f.latency = absl::Milliseconds(absl::GetFlag(FLAGS_latency_ms));
    (*server)->SetDefaultFault(f);
  }
  const std::string spool = absl::GetFlag(FLAGS_spool);
  if (!spool.empty()) {
    absl::Status posted = nzbmesh::testing::PostSpool(server->get(), spool, absl::GetFlag(FLAGS_part_size));
    if (!posted.ok()) {
      std::fprintf(stderr, "nntp_testserver: %s\n", std::string(posted.message()).c_str());
      return 1;
    }
  }
  std::printf("listening on 127.0.0.1:%d\n", (*server)->port());
  if (absl::GetFlag(FLAGS_control_port) >= 0) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(absl::GetFlag(FLAGS_control_port)));
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 16) != 0) {
      std::fprintf(stderr, "nntp_testserver: cannot listen on control port\n");
      return 1;
    }
    socklen_t len = sizeof(addr);
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    std::printf("control on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    std::thread([s = server->get(), fd] { ServeControl(s, fd); }).detach();
  }
  std::fflush(stdout);
  if (pipe(g_signal_pipe) != 0) return 1;
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  char c;
  while (read(g_signal_pipe[0], &c, 1) < 0) {
  }
  (*server)->Stop();
  return 0;
}
