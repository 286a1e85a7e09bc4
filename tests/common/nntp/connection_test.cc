// The NNTP client against the fault-injecting fake server: every reply path.
#include "common/nntp/connection.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/nntp/test_data.h"
#include "tests/fakes/nntp_server/nntp_server.h"

namespace nzbmesh::nntp {
namespace {

using ::nzbmesh::nntp::testing::RandomBytes;
using ::nzbmesh::nntp::testing::Sha256Hex;
using ::nzbmesh::testing::FakeNntpServer;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr absl::Duration kWait = absl::Seconds(10);

class ConnectionTest : public ::testing::Test {
 protected:
  void StartServer(FakeNntpServer::Options options = {}) {
    auto s = FakeNntpServer::Start(options);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    data_ = RandomBytes(300000, 1);
    file_ = server_->PostFile("file one.bin", data_, 100000, "one");
  }

  ConnectionOptions Options() const {
    ConnectionOptions o;
    o.host = "127.0.0.1";
    o.port = server_->port();
    o.dial_timeout = absl::Seconds(5);
    o.first_byte_timeout = absl::Seconds(5);
    o.stall_timeout = absl::Seconds(5);
    return o;
  }

  std::unique_ptr<Connection> MustDial(const ConnectionOptions& o) {
    auto c = Connection::Dial(o);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  std::string Part(int i) const { return data_.substr(i * 100000, 100000); }
  const std::string& Id(int i) const { return file_.segments[i].message_id; }

  // Fetches segment i and checks its bytes.
  void ExpectBody(Connection* c, int i) {
    c->SendBody(Id(i));
    ASSERT_TRUE(c->Flush().ok());
    std::string out;
    auto info = c->ReadBody(&out);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(Sha256Hex(out), Sha256Hex(Part(i)));
  }

  std::unique_ptr<FakeNntpServer> server_;
  std::string data_;
  FakeNntpServer::PostedFile file_;
};

// --- Greeting ---

TEST_F(ConnectionTest, DialReadsGreeting200) {
  StartServer();
  auto c = MustDial(Options());
  ASSERT_NE(c, nullptr);
  EXPECT_THAT(c->greeting(), StartsWith("200 "));
  EXPECT_TRUE(c->usable());
  EXPECT_EQ(c->outstanding(), 0);
}

TEST_F(ConnectionTest, DialAccepts201Greeting) {
  FakeNntpServer::Options o;
  o.greeting_code = 201;
  StartServer(o);
  auto c = MustDial(Options());
  ASSERT_NE(c, nullptr);
  EXPECT_THAT(c->greeting(), StartsWith("201 "));
  ExpectBody(c.get(), 0);
}

TEST_F(ConnectionTest, Greeting400IsConnectionLimit) {
  FakeNntpServer::Options o;
  o.greeting_code = 400;
  StartServer(o);
  auto c = Connection::Dial(Options());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(IsConnectionLimit(c.status())) << c.status();
  EXPECT_THAT(c.status().message(), HasSubstr("400 service temporarily unavailable"));
}

TEST_F(ConnectionTest, Greeting502IsConnectionLimit) {
  FakeNntpServer::Options o;
  o.greeting_code = 502;
  StartServer(o);
  auto c = Connection::Dial(Options());
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(IsConnectionLimit(c.status())) << c.status();
  EXPECT_THAT(c.status().message(), HasSubstr("refused the connection at greeting"));
}

TEST_F(ConnectionTest, ServerRejectsConnectionsBeyondLimitWith502) {
  FakeNntpServer::Options o;
  o.max_connections_before_502 = 2;
  StartServer(o);
  auto a = MustDial(Options());
  auto b = MustDial(Options());
  auto c = Connection::Dial(Options());
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(IsConnectionLimit(c.status())) << c.status();
  EXPECT_EQ(server_->connections_rejected(), 1);
  EXPECT_EQ(server_->connections_accepted(), 3);
  // The first two keep working; closing one frees a slot.
  ExpectBody(a.get(), 0);
  b.reset();
  ASSERT_TRUE(server_->WaitFor([&] { return server_->current_connections() == 1; }, kWait));
  auto d = MustDial(Options());
  ASSERT_NE(d, nullptr);
  ExpectBody(d.get(), 1);
}

TEST_F(ConnectionTest, UnexpectedGreetingCodeIsUnavailable) {
  FakeNntpServer::Options o;
  o.greeting_code = 480;
  StartServer(o);
  auto c = Connection::Dial(Options());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(c.status().message(), HasSubstr("unexpected greeting"));
}

TEST_F(ConnectionTest, ConnectionRefusedIsUnavailable) {
  StartServer();
  const int port = server_->port();
  server_->Stop();
  ConnectionOptions o = Options();
  o.port = port;
  auto c = Connection::Dial(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(c.status().message(), HasSubstr("Connection refused"));
}

TEST_F(ConnectionTest, DialTimesOutWhenNoGreetingArrives) {
  // A listener that accepts (kernel backlog) but never speaks.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 4), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ConnectionOptions o;
  o.host = "127.0.0.1";
  o.port = ntohs(addr.sin_port);
  o.dial_timeout = absl::Milliseconds(200);
  const absl::Time start = absl::Now();
  auto c = Connection::Dial(o);
  const absl::Duration took = absl::Now() - start;
  close(fd);
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(IsTimeout(c.status())) << c.status();
  EXPECT_THAT(c.status().message(), HasSubstr("dial_timeout"));
  EXPECT_GE(took, absl::Milliseconds(190));
  EXPECT_LT(took, absl::Seconds(2));
}

// --- AUTHINFO ---

TEST_F(ConnectionTest, AuthinfoAccepted) {
  FakeNntpServer::Options o;
  o.require_auth = true;
  o.username = "alice";
  o.password = "s3cret";
  StartServer(o);
  ConnectionOptions co = Options();
  co.username = "alice";
  co.password = "s3cret";
  auto c = MustDial(co);
  ASSERT_NE(c, nullptr);
  ExpectBody(c.get(), 0);
}

TEST_F(ConnectionTest, WrongPasswordIs481Unauthenticated) {
  FakeNntpServer::Options o;
  o.require_auth = true;
  o.username = "alice";
  o.password = "s3cret";
  StartServer(o);
  ConnectionOptions co = Options();
  co.username = "alice";
  co.password = "wrong";
  auto c = Connection::Dial(co);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(c.status().message(), HasSubstr("481"));
  EXPECT_THAT(c.status().message(), HasSubstr("wrong user name or password"));
}

TEST_F(ConnectionTest, Auth482IsUnauthenticated) {
  FakeNntpServer::Options o;
  o.auth_reply_code = 482;
  StartServer(o);
  ConnectionOptions co = Options();
  co.username = "alice";
  auto c = Connection::Dial(co);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(c.status().message(), HasSubstr("482"));
}

TEST_F(ConnectionTest, Auth502IsConnectionLimit) {
  FakeNntpServer::Options o;
  o.auth_reply_code = 502;
  StartServer(o);
  ConnectionOptions co = Options();
  co.username = "alice";
  auto c = Connection::Dial(co);
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(IsConnectionLimit(c.status())) << c.status();
  EXPECT_THAT(c.status().message(), HasSubstr("refused AUTHINFO"));
}

TEST_F(ConnectionTest, ArticleWithoutAuthIs480Unauthenticated) {
  FakeNntpServer::Options o;
  o.require_auth = true;
  o.username = "alice";
  o.password = "s3cret";
  StartServer(o);
  auto c = MustDial(Options());
  c->SendBody(Id(0));
  ASSERT_TRUE(c->Flush().ok());
  std::string out;
  auto r = c->ReadBody(&out);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(r.status().message(), HasSubstr("480"));
}

// --- BODY / STAT ---

TEST_F(ConnectionTest, BodyIsDecodedAndCrcChecked) {
  StartServer();
  auto c = MustDial(Options());
  c->SendBody(Id(1));
  EXPECT_EQ(c->outstanding(), 1);
  ASSERT_TRUE(c->Flush().ok());
  std::string out = "stale bytes that must be cleared";
  auto info = c->ReadBody(&out);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(c->outstanding(), 0);
  EXPECT_EQ(Sha256Hex(out), Sha256Hex(Part(1)));
  EXPECT_TRUE(info->crc_checked);
  EXPECT_EQ(info->crc32, file_.segments[1].crc32);
  EXPECT_EQ(info->decoded_size, 100000);
  EXPECT_EQ(info->header.name, "file one.bin");
  EXPECT_EQ(info->header.part, 2);
  EXPECT_EQ(info->header.total, 3);
  EXPECT_EQ(info->header.begin, 100001);
  EXPECT_EQ(info->header.end, 200000);
  EXPECT_EQ(info->header.size, 300000);
  EXPECT_EQ(server_->calls(Id(1)), 1);
}

TEST_F(ConnectionTest, BodyReusesCallerBufferCapacity) {
  StartServer();
  auto c = MustDial(Options());
  std::string out;
  out.reserve(1 << 20);
  const char* before = out.data();
  c->SendBody(Id(0));
  ASSERT_TRUE(c->Flush().ok());
  ASSERT_TRUE(c->ReadBody(&out).ok());
  EXPECT_EQ(out.data(), before);
  EXPECT_EQ(out.size(), 100000u);
}

// ReadBody decodes into the caller's string without zero-filling it first
// (resize_and_overwrite): an article larger than the buffer grows it with the
// bytes decoded so far intact, and a smaller article read into the grown
// buffer afterwards leaves nothing of the larger one behind.
TEST_F(ConnectionTest, BodyGrowsTheBufferAndASmallerOneAfterItLeavesNoStaleBytes) {
  StartServer();
  const std::string large = RandomBytes(3000000, 11);
  auto big = server_->PostFile("big.bin", large, 3000000, "big");
  auto c = MustDial(Options());
  std::string out;
  out.reserve(4096);
  c->SendBody(big.segments[0].message_id);
  c->SendBody(Id(2));
  ASSERT_TRUE(c->Flush().ok());
  auto first = c->ReadBody(&out);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->crc_checked);
  EXPECT_EQ(Sha256Hex(out), Sha256Hex(large));
  const size_t grown = out.capacity();
  EXPECT_GE(grown, large.size());
  auto second = c->ReadBody(&out);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(out.size(), 100000u);
  EXPECT_EQ(out, Part(2));
  EXPECT_EQ(out.capacity(), grown);  // reused, not reallocated
}

TEST_F(ConnectionTest, ArticleCommandIsDecodedLikeBody) {
  StartServer();
  auto c = MustDial(Options());
  c->SendArticle(Id(2));
  ASSERT_TRUE(c->Flush().ok());
  std::string out;
  auto info = c->ReadBody(&out);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(Sha256Hex(out), Sha256Hex(Part(2)));
}

TEST_F(ConnectionTest, HeadReturnsHeaders) {
  StartServer();
  auto c = MustDial(Options());
  c->SendHead(Id(0));
  ASSERT_TRUE(c->Flush().ok());
  std::string head;
  ASSERT_TRUE(c->ReadHead(&head).ok());
  EXPECT_THAT(head, HasSubstr(absl::StrCat("Message-ID: <", Id(0), ">\r\n")));
}

TEST_F(ConnectionTest, Missing430IsNotFoundAndConnectionStaysUsable) {
  StartServer();
  auto c = MustDial(Options());
  c->SendBody("nope@nowhere");
  ASSERT_TRUE(c->Flush().ok());
  std::string out;
  auto r = c->ReadBody(&out);
  EXPECT_TRUE(IsArticleMissing(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("<nope@nowhere>"));
  EXPECT_THAT(r.status().message(), HasSubstr("430"));
  EXPECT_TRUE(c->usable());
  ExpectBody(c.get(), 0);
}

TEST_F(ConnectionTest, Missing423IsNotFound) {
  StartServer();
  FakeNntpServer::Fault f;
  f.missing_423 = true;
  server_->SetFault(Id(0), f);
  auto c = MustDial(Options());
  c->SendBody(Id(0));
  ASSERT_TRUE(c->Flush().ok());
  std::string out;
  auto r = c->ReadBody(&out);
  EXPECT_TRUE(IsArticleMissing(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("423"));
  EXPECT_TRUE(c->usable());
}

TEST_F(ConnectionTest, StatReportsExistsAndMissing) {
  StartServer();
  auto c = MustDial(Options());
  c->SendStat(Id(0));
  c->SendStat("<missing@x>");
  ASSERT_TRUE(c->Flush().ok());
  EXPECT_TRUE(c->ReadStat().ok());
  absl::Status s = c->ReadStat();
  EXPECT_TRUE(IsArticleMissing(s)) << s;
  EXPECT_TRUE(c->usable());
  EXPECT_EQ(server_->calls(Id(0)), 1);
  EXPECT_EQ(server_->calls("missing@x"), 1);
}

TEST_F(ConnectionTest, ReadOfTheWrongKindIsFailedPrecondition) {
  StartServer();
  auto c = MustDial(Options());
  c->SendStat(Id(0));
  ASSERT_TRUE(c->Flush().ok());
  std::string out;
  auto r = c->ReadBody(&out);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("next reply belongs to STAT"));
  EXPECT_TRUE(c->ReadStat().ok());
}

TEST_F(ConnectionTest, PipelinedBodiesArriveInOrderAtFullDepth) {
  StartServer();
  std::string big = RandomBytes(8 * 50000, 7);
  auto file = server_->PostFile("pipe.bin", big, 50000, "pipe");
  constexpr int kDepth = 8;
  FakeNntpServer::Gate* gate = server_->AddGate("");
  auto c = MustDial(Options());
  for (int i = 0; i < kDepth; ++i) c->SendBody(file.segments[i].message_id);
  EXPECT_EQ(c->outstanding(), kDepth);
  ASSERT_TRUE(c->Flush().ok());
  // All eight are on the server at once before any reply goes out.
  ASSERT_TRUE(server_->WaitFor([&] { return server_->in_flight() == kDepth; }, kWait));
  // Only the head of the line waits at the gate; the rest queue behind it.
  ASSERT_TRUE(server_->WaitFor([&] { return gate->waiting() == 1; }, kWait));
  gate->ReleaseAll();
  std::string out;
  for (int i = 0; i < kDepth; ++i) {
    auto info = c->ReadBody(&out);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->header.part, i + 1);
    EXPECT_EQ(out, big.substr(i * 50000, 50000));
  }
  EXPECT_EQ(c->outstanding(), 0);
  EXPECT_EQ(server_->max_in_flight_per_connection(), kDepth);
  EXPECT_EQ(server_->max_in_flight(), kDepth);
  // The wire order is the send order.
  auto log = server_->command_log();
  std::vector<std::string> ids;
  for (const auto& r : log) {
    if (r.command == "BODY") ids.push_back(r.message_id);
  }
  ASSERT_EQ(ids.size(), static_cast<size_t>(kDepth));
  for (int i = 0; i < kDepth; ++i) EXPECT_EQ(ids[i], file.segments[i].message_id);
}

// B15 at the connection: while ReadBody waits for a held reply, Wake() runs
// the send hook on the reading thread, which sends the next command; its
// reply follows the first one in order.
TEST_F(ConnectionTest, WakeRunsTheSendHookWhileAReplyIsAwaited) {
  StartServer();
  FakeNntpServer::Gate* gate = server_->AddGate(Id(0));
  auto c = MustDial(Options());
  std::atomic<bool> want_second{false};
  std::atomic<int> hook_runs{0};
  Connection* conn = c.get();
  c->SetSendHook([&] {
    hook_runs++;
    if (!want_second.exchange(false)) return;
    conn->SendBody(Id(1));
    EXPECT_TRUE(conn->Flush().ok());
  });
  c->SendBody(Id(0));
  ASSERT_TRUE(c->Flush().ok());
  std::string first, second;
  absl::Status first_status, second_status;
  std::thread reader([&] {
    auto a = c->ReadBody(&first);
    first_status = a.status();
    auto b = c->ReadBody(&second);
    second_status = b.status();
  });
  ASSERT_TRUE(server_->WaitFor([&] { return gate->waiting() == 1; }, kWait));
  want_second = true;
  c->Wake();
  // The second BODY reaches the server while the first reply is still held.
  EXPECT_TRUE(server_->WaitFor([&] { return server_->in_flight() == 2; }, kWait));
  EXPECT_EQ(gate->waiting(), 1);
  gate->ReleaseAll();
  reader.join();
  ASSERT_TRUE(first_status.ok()) << first_status;
  ASSERT_TRUE(second_status.ok()) << second_status;
  EXPECT_EQ(first, Part(0));
  EXPECT_EQ(second, Part(1));
  EXPECT_GE(hook_runs.load(), 1);
  EXPECT_EQ(c->outstanding(), 0);
}

TEST_F(ConnectionTest, MixedPipelineWithMissingArticleStaysInSync) {
  StartServer();
  auto c = MustDial(Options());
  c->SendBody(Id(0));
  c->SendStat("<gone@x>");
  c->SendBody("<gone@x>");
  c->SendBody(Id(2));
  ASSERT_TRUE(c->Flush().ok());
  std::string out;
  ASSERT_TRUE(c->ReadBody(&out).ok());
  EXPECT_EQ(out, Part(0));
  EXPECT_TRUE(IsArticleMissing(c->ReadStat()));
  EXPECT_TRUE(IsArticleMissing(c->ReadBody(&out).status()));
  ASSERT_TRUE(c->ReadBody(&out).ok());
  EXPECT_EQ(out, Part(2));
}

TEST_F(ConnectionTest, CorruptedByteIsDataLossWithBytesDelivered) {
  StartServer();
  FakeNntpServer::Fault f;
  f.corrupt = true;
  f.times = 1;
  server_->SetFault(Id(0), f);
  auto c = MustDial(Options());
  c->SendBody(Id(0));
  ASSERT_TRUE(c->Flush().ok());
  std::string out;
  auto r = c->ReadBody(&out);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  ASSERT_EQ(out.size(), 100000u);
  const std::string want = Part(0);
  int diffs = 0;
  for (size_t i = 0; i < out.size(); ++i) diffs += out[i] != want[i];
  EXPECT_EQ(diffs, 1);
  EXPECT_EQ(c->last_body().decoded_size, 100000);
  EXPECT_TRUE(c->last_body().crc_checked);
  EXPECT_NE(c->last_body().crc32, c->last_body().trailer.pcrc32);
  EXPECT_TRUE(c->usable());
  ExpectBody(c.get(), 0);  // `times = 1`: the second fetch is clean
}

TEST_F(ConnectionTest, NonYencBodyIsInternalButConnectionStaysUsable) {
  StartServer();
  server_->PostArticle("plain@x", "hello\r\n..leading dot\r\nbye\r\n");
  auto c = MustDial(Options());
  c->SendBody("plain@x");
  c->SendBody(Id(1));
  ASSERT_TRUE(c->Flush().ok());
  std::string out;
  auto r = c->ReadBody(&out);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(r.status().message(), HasSubstr("not yEnc encoded"));
  EXPECT_TRUE(c->usable());
  ASSERT_TRUE(c->ReadBody(&out).ok());
  EXPECT_EQ(out, Part(1));
}

// --- Timeouts ---

TEST_F(ConnectionTest, FirstByteTimeout) {
  StartServer();
  FakeNntpServer::Fault f;
  f.stall = true;
  server_->SetFault(Id(0), f);
  ConnectionOptions o = Options();
  o.first_byte_timeout = absl::Milliseconds(200);
  auto c = MustDial(o);
  c->SendBody(Id(0));
  ASSERT_TRUE(c->Flush().ok());
  std::string out;
  const absl::Time start = absl::Now();
  auto r = c->ReadBody(&out);
  const absl::Duration took = absl::Now() - start;
  EXPECT_TRUE(IsTimeout(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("first_byte_timeout"));
  EXPECT_GE(took, absl::Milliseconds(190));
  EXPECT_LT(took, absl::Seconds(2));
  EXPECT_FALSE(c->usable());
  EXPECT_THAT(c->last_error(), HasSubstr("first_byte_timeout"));
}

TEST_F(ConnectionTest, StallMidBodyIsDeadlineExceeded) {
  StartServer();
  FakeNntpServer::Fault f;
  f.stall_after_bytes = 5000;
  server_->SetFault(Id(0), f);
  ConnectionOptions o = Options();
  o.stall_timeout = absl::Milliseconds(200);
  auto c = MustDial(o);
  c->SendBody(Id(0));
  ASSERT_TRUE(c->Flush().ok());
  std::string out;
  const absl::Time start = absl::Now();
  auto r = c->ReadBody(&out);
  const absl::Duration took = absl::Now() - start;
  EXPECT_TRUE(IsTimeout(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("stalled"));
  EXPECT_GE(took, absl::Milliseconds(190));
  EXPECT_LT(took, absl::Seconds(2));
  EXPECT_FALSE(c->usable());
}

TEST_F(ConnectionTest, SlowButMovingBodyDoesNotTripStallTimeout) {
  StartServer();
  FakeNntpServer::Fault f;
  f.bytes_per_second = 200000;  // the 100 KB article takes ~0.5 s
  server_->SetFault(Id(0), f);
  ConnectionOptions o = Options();
  o.stall_timeout = absl::Milliseconds(150);
  o.first_byte_timeout = absl::Milliseconds(150);
  auto c = MustDial(o);
  const absl::Time start = absl::Now();
  ExpectBody(c.get(), 0);
  EXPECT_GT(absl::Now() - start, absl::Milliseconds(300));  // well past the stall timeout
  EXPECT_TRUE(c->usable());
}

TEST_F(ConnectionTest, LatencyBelowFirstByteTimeoutIsFine) {
  StartServer();
  FakeNntpServer::Fault f;
  f.latency = absl::Milliseconds(100);
  server_->SetDefaultFault(f);
  ConnectionOptions o = Options();
  o.first_byte_timeout = absl::Milliseconds(1000);
  auto c = MustDial(o);
  const absl::Time start = absl::Now();
  ExpectBody(c.get(), 0);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(95));
}

// --- Broken replies ---

TEST_F(ConnectionTest, DropMidBodyIsUnavailableAndUnusable) {
  StartServer();
  FakeNntpServer::Fault f;
  f.drop_after_bytes = 20000;
  server_->SetFault(Id(0), f);
  auto c = MustDial(Options());
  c->SendBody(Id(0));
  ASSERT_TRUE(c->Flush().ok());
  std::string out;
  auto r = c->ReadBody(&out);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("connection closed by"));
  EXPECT_FALSE(c->usable());
  EXPECT_THAT(c->last_error(), HasSubstr("connection closed by"));
  c->SendBody(Id(1));
  absl::Status s = c->Flush();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("unusable"));
}

TEST_F(ConnectionTest, MalformedStatusLineIsInternalAndUnusable) {
  StartServer();
  FakeNntpServer::Fault f;
  f.raw_reply = "hello there\r\n";
  server_->SetFault(Id(0), f);
  auto c = MustDial(Options());
  c->SendBody(Id(0));
  ASSERT_TRUE(c->Flush().ok());
  std::string out;
  auto r = c->ReadBody(&out);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("malformed NNTP status line"));
  EXPECT_THAT(r.status().message(), HasSubstr("hello there"));
  EXPECT_FALSE(c->usable());
}

TEST_F(ConnectionTest, GarbageYencHeaderIsInternalAndUnusable) {
  StartServer();
  server_->PostArticle("garbage@x", "=ybegin part=zz line=128 size=abc name=x\r\nabc\r\n=yend size=3\r\n");
  auto c = MustDial(Options());
  c->SendBody("garbage@x");
  ASSERT_TRUE(c->Flush().ok());
  std::string out;
  auto r = c->ReadBody(&out);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("malformed yEnc"));
  EXPECT_FALSE(c->usable());
}

TEST_F(ConnectionTest, BodyOverCapIsResourceExhaustedWithoutLimitPayload) {
  StartServer();
  ConnectionOptions o = Options();
  o.max_body_bytes = 50000;
  auto c = MustDial(o);
  c->SendBody(Id(0));
  ASSERT_TRUE(c->Flush().ok());
  std::string out;
  auto r = c->ReadBody(&out);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
  EXPECT_FALSE(IsConnectionLimit(r.status()));
  EXPECT_THAT(r.status().message(), HasSubstr("max_body_bytes"));
  EXPECT_FALSE(c->usable());
}

TEST_F(ConnectionTest, MidSession400IsUnavailable) {
  StartServer();
  auto c = MustDial(Options());
  server_->FailNextCommand(400);
  c->SendBody(Id(0));
  ASSERT_TRUE(c->Flush().ok());
  std::string out;
  auto r = c->ReadBody(&out);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("400"));
  EXPECT_FALSE(c->usable());
}

TEST_F(ConnectionTest, PerArticle502ClosesTheSession) {
  StartServer();
  FakeNntpServer::Fault f;
  f.close_with_code = 502;
  server_->SetFault(Id(1), f);
  auto c = MustDial(Options());
  c->SendBody(Id(1));
  ASSERT_TRUE(c->Flush().ok());
  std::string out;
  auto r = c->ReadBody(&out);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_FALSE(IsConnectionLimit(r.status()));
  ASSERT_TRUE(server_->WaitFor([&] { return server_->current_connections() == 0; }, kWait));
}

// --- Interrupt / discard ---

TEST_F(ConnectionTest, InterruptUnblocksABlockedReadPromptly) {
  StartServer();
  FakeNntpServer::Fault f;
  f.stall = true;
  server_->SetFault(Id(0), f);
  auto c = MustDial(Options());  // timeouts are 5 s
  c->SendBody(Id(0));
  ASSERT_TRUE(c->Flush().ok());
  absl::Status result;
  absl::Time returned;
  std::thread reader([&] {
    std::string out;
    result = c->ReadBody(&out).status();
    returned = absl::Now();
  });
  ASSERT_TRUE(server_->WaitFor([&] { return server_->in_flight() == 1; }, kWait));
  absl::SleepFor(absl::Milliseconds(20));  // let the reader reach poll(); correctness does not depend on it
  const absl::Time interrupted = absl::Now();
  c->Interrupt();
  reader.join();
  EXPECT_EQ(result.code(), absl::StatusCode::kCancelled) << result;
  EXPECT_LT(returned - interrupted, absl::Milliseconds(100));
  EXPECT_FALSE(c->usable());
}

TEST_F(ConnectionTest, InterruptBeforeReadFailsFast) {
  StartServer();
  auto c = MustDial(Options());
  c->Interrupt();
  c->SendBody(Id(0));
  absl::Status s = c->Flush();
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
}

TEST_F(ConnectionTest, DiscardBodyThenNextBodyIsCorrect) {
  StartServer();
  auto c = MustDial(Options());
  c->SendBody(Id(0));
  c->SendBody(Id(1));
  ASSERT_TRUE(c->Flush().ok());
  ASSERT_TRUE(c->DiscardBody(absl::Seconds(2)).ok());
  EXPECT_EQ(c->outstanding(), 1);
  std::string out;
  auto info = c->ReadBody(&out);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(out, Part(1));
}

TEST_F(ConnectionTest, DiscardBodyOfMissingArticleIsOk) {
  StartServer();
  auto c = MustDial(Options());
  c->SendBody("<gone@x>");
  c->SendBody(Id(2));
  ASSERT_TRUE(c->Flush().ok());
  ASSERT_TRUE(c->DiscardBody(absl::Seconds(2)).ok());
  std::string out;
  ASSERT_TRUE(c->ReadBody(&out).ok());
  EXPECT_EQ(out, Part(2));
}

TEST_F(ConnectionTest, DiscardBodyHonorsItsLimit) {
  StartServer();
  FakeNntpServer::Fault f;
  f.bytes_per_second = 50000;  // 100 KB takes 2 s
  server_->SetFault(Id(0), f);
  auto c = MustDial(Options());
  c->SendBody(Id(0));
  ASSERT_TRUE(c->Flush().ok());
  const absl::Time start = absl::Now();
  absl::Status s = c->DiscardBody(absl::Milliseconds(200));
  EXPECT_TRUE(IsTimeout(s)) << s;
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_FALSE(c->usable());
}

// --- Other commands ---

TEST_F(ConnectionTest, DateCapabilitiesGroup) {
  StartServer();
  auto c = MustDial(Options());
  EXPECT_TRUE(c->Date().ok());
  auto caps = c->Capabilities();
  ASSERT_TRUE(caps.ok()) << caps.status();
  EXPECT_THAT(*caps, ::testing::Contains("READER"));
  auto g = c->Group("alt.binaries.nzbmesh.test");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->count, 3);
  EXPECT_EQ(g->name, "alt.binaries.nzbmesh.test");
  EXPECT_TRUE(IsArticleMissing(c->Group("alt.nope").status()));
  ExpectBody(c.get(), 0);
}

TEST_F(ConnectionTest, DateWithPipelinedCommandsOutstandingIsRejected) {
  StartServer();
  auto c = MustDial(Options());
  c->SendStat(Id(0));
  absl::Status s = c->Date();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(c->usable());
}

TEST_F(ConnectionTest, ModeReaderOptionIsSent) {
  FakeNntpServer::Options so;
  so.require_mode_reader = true;
  StartServer(so);
  ConnectionOptions o = Options();
  o.mode_reader = true;
  auto c = MustDial(o);
  ExpectBody(c.get(), 0);
  int mode_readers = 0;
  for (const auto& r : server_->command_log()) mode_readers += r.command == "MODE READER";
  EXPECT_EQ(mode_readers, 1);
}

TEST_F(ConnectionTest, Reply401ModeReaderRetriesPipelinedCommandsOnce) {
  FakeNntpServer::Options so;
  so.require_mode_reader = true;
  StartServer(so);
  auto c = MustDial(Options());
  c->SendBody(Id(0));
  c->SendStat(Id(1));
  c->SendBody(Id(2));
  ASSERT_TRUE(c->Flush().ok());
  std::string out;
  ASSERT_TRUE(c->ReadBody(&out).ok());
  EXPECT_EQ(out, Part(0));
  EXPECT_TRUE(c->ReadStat().ok());
  ASSERT_TRUE(c->ReadBody(&out).ok());
  EXPECT_EQ(out, Part(2));
  EXPECT_EQ(c->outstanding(), 0);
  EXPECT_EQ(server_->calls(Id(0)), 2);
  EXPECT_EQ(server_->calls(Id(2)), 2);
  ExpectBody(c.get(), 1);
  EXPECT_EQ(server_->calls(Id(1)), 3);  // STAT twice, then BODY
}

TEST_F(ConnectionTest, QuitClosesTheConnection) {
  StartServer();
  auto c = MustDial(Options());
  ASSERT_TRUE(server_->WaitFor([&] { return server_->current_connections() == 1; }, kWait));
  c->Quit();
  EXPECT_FALSE(c->usable());
  ASSERT_TRUE(server_->WaitFor([&] { return server_->current_connections() == 0; }, kWait));
}

}  // namespace
}  // namespace nzbmesh::nntp
