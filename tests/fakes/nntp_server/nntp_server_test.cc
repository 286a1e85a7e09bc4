// The fake NNTP server on its own, driven over raw sockets: counters,
// pipelining, gates, faults, posting and the NZB helper.
#include "tests/fakes/nntp_server/nntp_server.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/yenc/yenc.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/nntp_server/spool.h"

namespace nzbmesh::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr absl::Duration kWait = absl::Seconds(10);

// A minimal line-oriented client on a blocking socket with poll() deadlines.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawClient() { Close(); }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  bool connected() const { return connected_; }
  void Send(absl::string_view s) { ASSERT_EQ(send(fd_, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size())); }
  // Reads until `marker` has been received (returns everything up to and
  // including it), EOF, or the timeout.
  std::string ReadUntil(absl::string_view marker, absl::Duration timeout = kWait) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      size_t pos = absl::string_view(buf_).find(marker);
      if (pos != std::string::npos) {
        std::string out = buf_.substr(0, pos + marker.size());
        buf_.erase(0, pos + marker.size());
        return out;
      }
      pollfd p{fd_, POLLIN, 0};
      int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
      if (ms <= 0 || poll(&p, 1, ms) <= 0) return "<timeout>" + buf_;
      char tmp[65536];
      ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
      if (n <= 0) return "<eof>" + buf_;
      buf_.append(tmp, n);
    }
  }
  std::string ReadLine() { return ReadUntil("\r\n"); }
  // True when the peer closed the connection (EOF) before the timeout.
  bool WaitEof(absl::Duration timeout = kWait) {
    return absl::StartsWith(ReadUntil("\x01\x02never", timeout), "<eof>");
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

std::unique_ptr<FakeNntpServer> MustStart(FakeNntpServer::Options o = {}) {
  auto s = FakeNntpServer::Start(o);
  EXPECT_TRUE(s.ok()) << s.status();
  return std::move(*s);
}

TEST(FakeNntpServer, GreetsAndAnswersBasicCommands) {
  auto server = MustStart();
  RawClient c(server->port());
  ASSERT_TRUE(c.connected());
  EXPECT_THAT(c.ReadLine(), StartsWith("200 "));
  c.Send("DATE\r\n");
  EXPECT_THAT(c.ReadLine(), StartsWith("111 2"));
  c.Send("CAPABILITIES\r\n");
  EXPECT_THAT(c.ReadUntil("\r\n.\r\n"), HasSubstr("VERSION 2\r\nREADER\r\n"));
  c.Send("FROBNICATE\r\n");
  EXPECT_THAT(c.ReadLine(), StartsWith("500 "));
  c.Send("QUIT\r\n");
  EXPECT_THAT(c.ReadLine(), StartsWith("205 "));
  EXPECT_TRUE(c.WaitEof());
  EXPECT_TRUE(server->WaitFor([&] { return server->current_connections() == 0; }, kWait));
}

TEST(FakeNntpServer, ServesPostedArticlesWithTerminator) {
  auto server = MustStart();
  server->PostArticle("<a@b>", "line one\r\n..dot line\r\n");
  RawClient c(server->port());
  c.ReadLine();
  c.Send("BODY <a@b>\r\nSTAT a@b\r\nSTAT <a@b>\r\nBODY <zz@b>\r\nARTICLE <a@b>\r\n");
  EXPECT_EQ(c.ReadUntil("\r\n.\r\n"), "222 0 <a@b>\r\nline one\r\n..dot line\r\n.\r\n");
  EXPECT_THAT(c.ReadLine(), StartsWith("501 "));  // STAT by something that is not <id>
  EXPECT_EQ(c.ReadLine(), "223 0 <a@b>\r\n");
  EXPECT_EQ(c.ReadLine(), "430 no such article\r\n");
  EXPECT_THAT(c.ReadUntil("\r\n.\r\n"), HasSubstr("Message-ID: <a@b>\r\n"));
  EXPECT_EQ(server->calls("a@b"), 3);  // BODY, STAT, ARTICLE (the 501 has no id)
  EXPECT_EQ(server->calls("<zz@b>"), 1);
  EXPECT_EQ(server->total_commands(), 5);
}

TEST(FakeNntpServer, CountsPipelinedCommandsInFlightExactly) {
  auto server = MustStart();
  server->PostArticle("x@y", "data\r\n");
  FakeNntpServer::Gate* gate = server->AddGate("x@y");
  RawClient a(server->port()), b(server->port());
  a.ReadLine();
  b.ReadLine();
  a.Send("STAT <x@y>\r\nSTAT <x@y>\r\nSTAT <x@y>\r\nDATE\r\n");
  b.Send("STAT <x@y>\r\nSTAT <x@y>\r\n");
  // DATE does not count: only article commands are "in flight".
  ASSERT_TRUE(server->WaitFor([&] { return server->in_flight() == 5; }, kWait));
  ASSERT_TRUE(server->WaitFor([&] { return gate->waiting() == 2; }, kWait));  // one per connection
  EXPECT_EQ(server->max_in_flight_per_connection(), 3);
  gate->Release(1);
  ASSERT_TRUE(server->WaitFor([&] { return gate->passed() == 1; }, kWait));
  ASSERT_TRUE(server->WaitFor([&] { return server->in_flight() == 4; }, kWait));
  gate->ReleaseAll();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(a.ReadLine(), "223 0 <x@y>\r\n");
  EXPECT_THAT(a.ReadLine(), StartsWith("111 "));
  for (int i = 0; i < 2; ++i) EXPECT_EQ(b.ReadLine(), "223 0 <x@y>\r\n");
  ASSERT_TRUE(server->WaitFor([&] { return server->in_flight() == 0; }, kWait));
  EXPECT_EQ(server->max_in_flight(), 5);
  EXPECT_EQ(server->max_concurrent_connections(), 2);
  EXPECT_EQ(server->connections_accepted(), 2);
  EXPECT_EQ(server->calls("x@y"), 5);

  // The log is in wire order with connection ids.
  auto log = server->command_log();
  ASSERT_EQ(log.size(), 6u);
  int conn_a = 0;  // the connection that sent DATE
  for (const auto& r : log) {
    if (r.command == "DATE") conn_a = r.connection_id;
    if (r.command == "STAT") {
      EXPECT_EQ(r.message_id, "x@y");
    }
  }
  int a_count = 0;
  for (const auto& r : log) a_count += r.connection_id == conn_a;
  EXPECT_EQ(a_count, 4);
  for (size_t i = 1; i < log.size(); ++i) EXPECT_LE(log[i - 1].received, log[i].received);

  server->ResetCounters();
  EXPECT_EQ(server->max_in_flight(), 0);
  EXPECT_EQ(server->calls("x@y"), 0);
  EXPECT_EQ(server->total_commands(), 0);
  EXPECT_TRUE(server->command_log().empty());
  EXPECT_EQ(server->max_concurrent_connections(), 2);  // still open
}

TEST(FakeNntpServer, GateReleasesOneReplyAtATime) {
  auto server = MustStart();
  for (int i = 0; i < 3; ++i) server->PostArticle(absl::StrCat("g", i, "@x"), "x\r\n");
  FakeNntpServer::Gate* gate = server->AddGate("");
  RawClient c(server->port());
  c.ReadLine();
  c.Send("STAT <g0@x>\r\nSTAT <g1@x>\r\nSTAT <g2@x>\r\n");
  ASSERT_TRUE(server->WaitFor([&] { return gate->waiting() == 1 && server->in_flight() == 3; }, kWait));
  gate->Release(2);
  EXPECT_EQ(c.ReadLine(), "223 0 <g0@x>\r\n");
  EXPECT_EQ(c.ReadLine(), "223 0 <g1@x>\r\n");
  ASSERT_TRUE(server->WaitFor([&] { return gate->waiting() == 1 && gate->passed() == 2; }, kWait));
  EXPECT_EQ(server->in_flight(), 1);
  server->ClearGates();
  EXPECT_EQ(c.ReadLine(), "223 0 <g2@x>\r\n");
}

TEST(FakeNntpServer, LatencyDelaysTheFirstByte) {
  auto server = MustStart();
  server->PostArticle("l@x", "x\r\n");
  FakeNntpServer::Fault f;
  f.latency = absl::Milliseconds(150);
  server->SetFault("l@x", f);
  RawClient c(server->port());
  c.ReadLine();
  const absl::Time start = absl::Now();
  c.Send("STAT <l@x>\r\n");
  EXPECT_EQ(c.ReadLine(), "223 0 <l@x>\r\n");
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Milliseconds(145));
  EXPECT_LT(took, absl::Seconds(2));
}

TEST(FakeNntpServer, ThrottleLimitsBytesPerSecond) {
  auto server = MustStart();
  server->PostArticle("t@x", std::string(99, 'a') + "\r\n");  // ~120 bytes of reply
  FakeNntpServer::Fault f;
  f.bytes_per_second = 400;
  server->SetFault("t@x", f);
  RawClient c(server->port());
  c.ReadLine();
  const absl::Time start = absl::Now();
  c.Send("BODY <t@x>\r\n");
  EXPECT_THAT(c.ReadUntil("\r\n.\r\n"), StartsWith("222 "));
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Milliseconds(250));  // 120 B at 400 B/s = 0.3 s
  EXPECT_LT(took, absl::Seconds(2));
}

TEST(FakeNntpServer, DropAfterBytesClosesMidReply) {
  auto server = MustStart();
  server->PostArticle("d@x", std::string(1000, 'a') + "\r\n");
  FakeNntpServer::Fault f;
  f.drop_after_bytes = 100;
  server->SetFault("d@x", f);
  RawClient c(server->port());
  c.ReadLine();
  c.Send("BODY <d@x>\r\n");
  std::string got = c.ReadUntil("never-there");
  EXPECT_THAT(got, StartsWith("<eof>222 "));
  EXPECT_EQ(got.size(), std::string("<eof>").size() + 100);
}

TEST(FakeNntpServer, FaultTimesExpires) {
  auto server = MustStart();
  server->PostArticle("m@x", "x\r\n");
  FakeNntpServer::Fault f;
  f.missing = true;
  f.times = 2;
  server->SetFault("m@x", f);
  RawClient c(server->port());
  c.ReadLine();
  c.Send("STAT <m@x>\r\nSTAT <m@x>\r\nSTAT <m@x>\r\n");
  EXPECT_THAT(c.ReadLine(), StartsWith("430 "));
  EXPECT_THAT(c.ReadLine(), StartsWith("430 "));
  EXPECT_EQ(c.ReadLine(), "223 0 <m@x>\r\n");
}

TEST(FakeNntpServer, DefaultFaultAppliesToEveryArticleUnlessOverridden) {
  auto server = MustStart();
  server->PostArticle("a@x", "x\r\n");
  server->PostArticle("b@x", "x\r\n");
  FakeNntpServer::Fault missing;
  missing.missing = true;
  server->SetDefaultFault(missing);
  server->SetFault("b@x", FakeNntpServer::Fault());
  RawClient c(server->port());
  c.ReadLine();
  c.Send("STAT <a@x>\r\nSTAT <b@x>\r\n");
  EXPECT_THAT(c.ReadLine(), StartsWith("430 "));
  EXPECT_EQ(c.ReadLine(), "223 0 <b@x>\r\n");
  server->ClearFaults();
  c.Send("STAT <a@x>\r\n");
  EXPECT_EQ(c.ReadLine(), "223 0 <a@x>\r\n");
}

TEST(FakeNntpServer, RejectsBeyondMaxConnectionsWith502) {
  FakeNntpServer::Options o;
  o.max_connections_before_502 = 1;
  auto server = MustStart(o);
  RawClient a(server->port());
  EXPECT_THAT(a.ReadLine(), StartsWith("200 "));
  RawClient b(server->port());
  EXPECT_THAT(b.ReadLine(), StartsWith("502 "));
  EXPECT_TRUE(b.WaitEof());
  EXPECT_EQ(server->connections_rejected(), 1);
  EXPECT_EQ(server->connections_accepted(), 2);
  EXPECT_EQ(server->max_concurrent_connections(), 2);  // the rejected one was open too
}

TEST(FakeNntpServer, FailNextCommandAnswersAndCloses) {
  auto server = MustStart();
  RawClient c(server->port());
  c.ReadLine();
  server->FailNextCommand(400);
  c.Send("DATE\r\n");
  EXPECT_THAT(c.ReadLine(), StartsWith("400 "));
  EXPECT_TRUE(c.WaitEof());
}

TEST(FakeNntpServer, AuthinfoFlow) {
  FakeNntpServer::Options o;
  o.require_auth = true;
  o.username = "u";
  o.password = "p";
  auto server = MustStart(o);
  server->PostArticle("a@x", "x\r\n");
  RawClient c(server->port());
  c.ReadLine();
  c.Send("STAT <a@x>\r\nAUTHINFO PASS p\r\nAUTHINFO USER u\r\nAUTHINFO PASS bad\r\n"
         "AUTHINFO USER u\r\nAUTHINFO PASS p\r\nSTAT <a@x>\r\n");
  EXPECT_THAT(c.ReadLine(), StartsWith("480 "));
  EXPECT_THAT(c.ReadLine(), StartsWith("482 "));
  EXPECT_THAT(c.ReadLine(), StartsWith("381 "));
  EXPECT_THAT(c.ReadLine(), StartsWith("481 "));
  EXPECT_THAT(c.ReadLine(), StartsWith("381 "));
  EXPECT_THAT(c.ReadLine(), StartsWith("281 "));
  EXPECT_EQ(c.ReadLine(), "223 0 <a@x>\r\n");
}

TEST(FakeNntpServer, StopUnblocksStalledGatedAndIdleConnections) {
  auto server = MustStart();
  server->PostArticle("s@x", "x\r\n");
  server->PostArticle("g@x", "x\r\n");
  FakeNntpServer::Fault f;
  f.stall = true;
  server->SetFault("s@x", f);
  server->AddGate("g@x");
  RawClient a(server->port()), b(server->port()), idle(server->port());
  a.ReadLine();
  b.ReadLine();
  idle.ReadLine();
  a.Send("BODY <s@x>\r\n");
  b.Send("BODY <g@x>\r\n");
  ASSERT_TRUE(server->WaitFor([&] { return server->in_flight() == 2; }, kWait));
  const absl::Time start = absl::Now();
  server->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(server->current_connections(), 0);
  EXPECT_EQ(server->in_flight(), 0);
  server->Stop();  // idempotent
  EXPECT_TRUE(a.WaitEof());
}

TEST(FakeNntpServer, DropAllConnectionsClosesEveryConnection) {
  auto server = MustStart();
  RawClient a(server->port()), b(server->port());
  a.ReadLine();
  b.ReadLine();
  ASSERT_TRUE(server->WaitFor([&] { return server->current_connections() == 2; }, kWait));
  server->DropAllConnections();
  EXPECT_TRUE(a.WaitEof());
  EXPECT_TRUE(b.WaitEof());
  EXPECT_TRUE(server->WaitFor([&] { return server->current_connections() == 0; }, kWait));
}

TEST(FakeNntpServer, PostFileEncodesPartsThatDecodeBack) {
  auto server = MustStart();
  std::string data;
  for (int i = 0; i < 250000; ++i) data += static_cast<char>((i * 7919) >> 3);
  auto file = server->PostFile("my file.bin", data, 100000, "pf");
  ASSERT_EQ(file.segments.size(), 3u);
  EXPECT_EQ(file.size, 250000);
  EXPECT_EQ(file.segments[2].size, 50000);
  EXPECT_EQ(file.segments[2].offset, 200000);
  EXPECT_EQ(file.segments[0].message_id, "pf.1@nzbmesh.test");
  EXPECT_TRUE(server->HasArticle("<pf.3@nzbmesh.test>"));
  EXPECT_EQ(file.crc32, yenc::Crc32Update(0, data.data(), data.size()));

  RawClient c(server->port());
  c.ReadLine();
  std::string all;
  for (const auto& seg : file.segments) {
    c.Send(absl::StrCat("BODY <", seg.message_id, ">\r\n"));
    std::string reply = c.ReadUntil("\r\n.\r\n");
    ASSERT_THAT(reply, StartsWith("222 "));
    const size_t body_start = reply.find("\r\n") + 2;
    EXPECT_EQ(static_cast<int64_t>(reply.size() - body_start - 3), seg.bytes);
    EXPECT_THAT(reply, HasSubstr(absl::StrCat("=ybegin part=", seg.number, " total=3")));
    yenc::ArticleDecoder dec({});
    std::string out(reply.size(), '\0');
    auto r = dec.Feed(absl::string_view(reply).substr(body_start), out.data(), out.size());
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(dec.done());
    EXPECT_TRUE(dec.Verify().ok()) << dec.Verify();
    all.append(out.data(), r->produced);
  }
  EXPECT_EQ(all, data);

  // Corruption keeps the size and breaks the CRC.
  FakeNntpServer::Fault f;
  f.corrupt = true;
  server->SetFault(file.segments[0].message_id, f);
  c.Send(absl::StrCat("BODY <", file.segments[0].message_id, ">\r\n"));
  std::string reply = c.ReadUntil("\r\n.\r\n");
  const size_t body_start = reply.find("\r\n") + 2;
  yenc::ArticleDecoder dec({});
  std::string out(reply.size(), '\0');
  auto r = dec.Feed(absl::string_view(reply).substr(body_start), out.data(), out.size());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->produced, 100000u);
  EXPECT_EQ(dec.Verify().code(), absl::StatusCode::kDataLoss);
}

// Decodes a BODY reply's payload (after the status line, with its ".\r\n").
struct Decoded {
  std::string data;
  absl::Status verify;
  bool done = false;
  bool saw_trailer = false;
  yenc::PartTrailer trailer;
};
Decoded DecodeReply(const std::string& reply) {
  const size_t body_start = reply.find("\r\n") + 2;
  yenc::ArticleDecoder dec({});
  Decoded d;
  d.data.resize(reply.size());
  auto r = dec.Feed(absl::string_view(reply).substr(body_start), d.data.data(), d.data.size());
  if (!r.ok()) {
    d.verify = r.status();
    return d;
  }
  d.data.resize(r->produced);
  d.done = dec.done();
  d.verify = dec.Verify();
  d.saw_trailer = dec.saw_trailer();
  if (d.saw_trailer) d.trailer = dec.trailer();
  return d;
}

TEST(FakeNntpServer, HostileYencModesKeepTheNntpFramingAndBreakOnlyTheYenc) {
  auto server = MustStart();
  std::string data;
  for (int i = 0; i < 30000; ++i) data += static_cast<char>((i * 131) >> 2);
  auto file = server->PostFile("h.bin", data, 10000, "h");
  ASSERT_EQ(file.segments.size(), 3u);
  const std::string id = file.segments[1].message_id;  // a middle part: 10000 bytes
  const std::string want = data.substr(10000, 10000);
  RawClient c(server->port());
  c.ReadLine();
  auto body = [&] {
    c.Send(absl::StrCat("BODY <", id, ">\r\n"));
    return c.ReadUntil("\r\n.\r\n");
  };
  using Yenc = FakeNntpServer::Fault::Yenc;
  FakeNntpServer::Fault f;

  f.yenc = Yenc::kShortPart;  // fewer bytes than declared
  server->SetFault(id, f);
  Decoded d = DecodeReply(body());
  ASSERT_TRUE(d.done);
  EXPECT_EQ(d.verify.code(), absl::StatusCode::kDataLoss) << d.verify;
  EXPECT_LT(d.data.size(), want.size());
  EXPECT_GT(d.data.size(), 0u);
  EXPECT_EQ(d.data, want.substr(0, d.data.size()));
  EXPECT_EQ(d.trailer.size, 10000);

  f.yenc = Yenc::kWrongSize;  // =yend size= lies; data intact
  server->SetFault(id, f);
  d = DecodeReply(body());
  ASSERT_TRUE(d.done);
  EXPECT_EQ(d.verify.code(), absl::StatusCode::kDataLoss) << d.verify;
  EXPECT_EQ(d.data, want);
  EXPECT_EQ(d.trailer.size, 10001);

  f.yenc = Yenc::kNoYend;  // no trailer; the reply still ends with "."
  server->SetFault(id, f);
  const std::string reply = body();
  EXPECT_THAT(reply, Not(HasSubstr("=yend")));
  d = DecodeReply(reply);
  ASSERT_TRUE(d.done);
  EXPECT_FALSE(d.saw_trailer);
  EXPECT_EQ(d.verify.code(), absl::StatusCode::kDataLoss) << d.verify;
  EXPECT_EQ(d.data, want);

  server->ClearFaults();
  d = DecodeReply(body());
  EXPECT_TRUE(d.verify.ok()) << d.verify;
  EXPECT_EQ(d.data, want);
}

TEST(FakeNntpServer, NoTerminatorSendsTheWholeBodyThenStaysSilentUntilTheClientCloses) {
  auto server = MustStart();
  server->PostYencArticle("n@x", std::string(5000, 'q'), "n.bin");
  FakeNntpServer::Fault f;
  f.no_terminator = true;
  server->SetFault("n@x", f);
  RawClient c(server->port());
  c.ReadLine();
  c.Send("BODY <n@x>\r\nDATE\r\n");
  // The =yend line arrives, then nothing: no ".", no answer to DATE.
  std::string got = c.ReadUntil("\r\n=yend size=");
  EXPECT_THAT(got, StartsWith("222 0 <n@x>\r\n=ybegin "));
  EXPECT_THAT(c.ReadUntil("\r\n.\r\n", absl::Milliseconds(300)), StartsWith("<timeout>"));
  EXPECT_EQ(server->current_connections(), 1);
  ASSERT_EQ(server->open_connection_ids().size(), 1u);
  EXPECT_EQ(server->open_connection_ids()[0], server->command_log().back().connection_id);
  c.Close();
  EXPECT_TRUE(server->WaitFor([&] { return server->open_connection_ids().empty(); }, kWait));
  EXPECT_EQ(server->current_connections(), 0);
}

TEST(MakeNzb, ListsFilesGroupsAndSegments) {
  FakeNntpServer::PostedFile f;
  f.name = "a&b \"x\".bin";
  f.segments = {{"p.1@nzbmesh.test", 1, 0, 10, 130, 0}, {"p.2@nzbmesh.test", 2, 10, 5, 70, 0}};
  NzbOptions o;
  o.meta["password"] = "pw";
  std::string nzb = MakeNzb({f}, o);
  EXPECT_THAT(nzb, StartsWith("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
  EXPECT_THAT(nzb, HasSubstr("<meta type=\"password\">pw</meta>"));
  EXPECT_THAT(nzb, HasSubstr("subject=\"&quot;a&amp;b &quot;x&quot;.bin&quot; yEnc (1/2)\""));
  EXPECT_THAT(nzb, HasSubstr("date=\"1700000000\""));
  EXPECT_THAT(nzb, HasSubstr("<group>alt.binaries.nzbmesh.test</group>"));
  EXPECT_THAT(nzb, HasSubstr("<segment bytes=\"130\" number=\"1\">p.1@nzbmesh.test</segment>"));
  EXPECT_THAT(nzb, HasSubstr("<segment bytes=\"70\" number=\"2\">p.2@nzbmesh.test</segment>"));
  EXPECT_THAT(nzb, HasSubstr("</nzb>"));
}

// A spooled file's message-ids depend on its bytes alone: adding files to
// the spool (which sort before it) leaves its NZB, and so a release imported
// from it, unchanged; new bytes get new ids.
TEST(SpoolTest, MessageIdsDoNotDependOnTheOtherFilesInTheSpool) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::filesystem::path dir = std::filesystem::path(tmp != nullptr ? tmp : "/tmp") / "spool-ids";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& data) {
    std::ofstream(dir / name, std::ios::binary) << data;
  };
  auto read = [&](const std::string& name) {
    std::ifstream in(dir / name, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  auto post = [&] {
    auto server = FakeNntpServer::Start({});
    ASSERT_TRUE(server.ok()) << server.status();
    ASSERT_TRUE(PostSpool(server->get(), dir.string(), 1000).ok());
  };
  write("movie.mkv", std::string(2500, 'm'));
  post();
  const std::string first = read("movie.mkv.nzb");
  EXPECT_THAT(first, HasSubstr(SpoolMessageIdPrefix(std::string(2500, 'm'), "movie.mkv") + ".1@"));
  write("aaa.bin", "sorts first");
  std::filesystem::create_directories(dir / "a-release");
  write("a-release/a.rar", "volume");
  post();
  EXPECT_EQ(read("movie.mkv.nzb"), first);
  EXPECT_THAT(read("a-release.nzb"), HasSubstr(SpoolMessageIdPrefix("volume", "a.rar")));
  write("movie.mkv", std::string(2500, 'n'));  // new bytes: new ids
  post();
  EXPECT_NE(read("movie.mkv.nzb"), first);
  EXPECT_NE(SpoolMessageIdPrefix("a", "x"), SpoolMessageIdPrefix("b", "x"));
}

}  // namespace
}  // namespace nzbmesh::testing
