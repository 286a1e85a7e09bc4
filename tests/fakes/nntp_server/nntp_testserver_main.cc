// nntp_testserver: the fake NNTP server as a standalone process for the local
// demo. Every regular file in --spool (except *.nzb) is yEnc-encoded into
// articles on start, and "<file>.nzb" describing it is written next to it.
//
//   nntp_testserver --spool DIR [--port N] [--user U --pass P] [--latency_ms N]
//
// Prints "listening on 127.0.0.1:PORT" and serves until SIGINT/SIGTERM.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/fakes/nntp_server/nntp_server.h"

ABSL_FLAG(int, port, 0, "TCP port on 127.0.0.1 (0 = any free port; printed on start)");
ABSL_FLAG(std::string, spool, "", "Directory of files to post (an .nzb is written for each)");
ABSL_FLAG(std::string, user, "", "Require AUTHINFO with this user name ('' = no auth)");
ABSL_FLAG(std::string, pass, "", "Password for --user");
ABSL_FLAG(int, latency_ms, 0, "Latency before the first byte of every article reply");
ABSL_FLAG(int64_t, part_size, 768000, "Decoded bytes per article");
ABSL_FLAG(int, max_connections, 0, "Answer 502 beyond this many connections (0 = unlimited)");

namespace {
int g_signal_pipe[2];
void OnSignal(int) { (void)!write(g_signal_pipe[1], "x", 1); }
}  // namespace

int main(int argc, char** argv) {
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
    std::error_code ec;
    int n = 0;
    for (const auto& entry : std::filesystem::directory_iterator(spool, ec)) {
      if (!entry.is_regular_file() || absl::EndsWith(entry.path().string(), ".nzb")) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const std::string name = entry.path().filename().string();
      auto file = (*server)->PostFile(name, data, absl::GetFlag(FLAGS_part_size),
                                      absl::StrCat("spool.", n++, ".", name));
      std::ofstream nzb(entry.path().string() + ".nzb", std::ios::binary);
      nzb << nzbmesh::testing::MakeNzb({file});
      std::fprintf(stderr, "posted %s: %zu articles, %s.nzb\n", name.c_str(), file.segments.size(),
                   entry.path().string().c_str());
    }
    if (ec) {
      std::fprintf(stderr, "nntp_testserver: cannot read --spool %s: %s\n", spool.c_str(),
                   ec.message().c_str());
      return 1;
    }
  }
  std::printf("listening on 127.0.0.1:%d\n", (*server)->port());
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
