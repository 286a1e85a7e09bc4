// The NNTP client over TLS (implicit and STARTTLS) against the fake server
// with a self-signed certificate generated at test start.
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "common/nntp/connection.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/nntp/test_data.h"
#include "tests/fakes/nntp_server/nntp_server.h"
#include "tests/fakes/nntp_server/test_cert.h"

namespace nzbmesh::nntp {
namespace {

using ::nzbmesh::nntp::testing::RandomBytes;
using ::nzbmesh::nntp::testing::Sha256Hex;
using ::nzbmesh::testing::FakeNntpServer;
using ::nzbmesh::testing::TestCert;
using ::testing::HasSubstr;

class ConnectionTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* dir = std::getenv("TEST_TMPDIR");
    auto cert = nzbmesh::testing::GenerateSelfSignedCert(dir != nullptr ? dir : "/tmp", "tls-test");
    ASSERT_TRUE(cert.ok()) << cert.status();
    cert_ = new TestCert(*cert);
  }
  static void TearDownTestSuite() {
    delete cert_;
    cert_ = nullptr;
  }

  void StartServer(FakeNntpServer::Options o) {
    o.cert_file = cert_->cert_file;
    o.key_file = cert_->key_file;
    auto s = FakeNntpServer::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    // 1.5 MB spans ~100 TLS records; one article per part.
    data_ = RandomBytes(1500000, 3);
    file_ = server_->PostFile("tls.bin", data_, 750000, "tls");
  }

  ConnectionOptions Options(TlsMode mode, const std::string& host = "localhost") const {
    ConnectionOptions o;
    o.host = host;
    o.port = server_->port();
    o.tls = mode;
    o.tls_ca_file = cert_->cert_file;
    o.dial_timeout = absl::Seconds(5);
    o.first_byte_timeout = absl::Seconds(5);
    o.stall_timeout = absl::Seconds(5);
    return o;
  }

  void ExpectFile(Connection* c) {
    for (const auto& seg : file_.segments) c->SendBody(seg.message_id);
    ASSERT_TRUE(c->Flush().ok());
    std::string all, out;
    for (size_t i = 0; i < file_.segments.size(); ++i) {
      auto info = c->ReadBody(&out);
      ASSERT_TRUE(info.ok()) << info.status();
      EXPECT_TRUE(info->crc_checked);
      all += out;
    }
    EXPECT_EQ(Sha256Hex(all), Sha256Hex(data_));
  }

  static TestCert* cert_;
  std::unique_ptr<FakeNntpServer> server_;
  std::string data_;
  FakeNntpServer::PostedFile file_;
};

TestCert* ConnectionTlsTest::cert_ = nullptr;

FakeNntpServer::Options TlsServer() {
  FakeNntpServer::Options o;
  o.tls = true;
  return o;
}

TEST_F(ConnectionTlsTest, ImplicitTlsVerifiesWithTheCaFile) {
  StartServer(TlsServer());
  auto c = Connection::Dial(Options(TlsMode::kImplicit));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE((*c)->tls_active());
  ExpectFile(c->get());
}

TEST_F(ConnectionTlsTest, ImplicitTlsVerifiesAnIpLiteralAgainstSubjectAltName) {
  StartServer(TlsServer());
  auto c = Connection::Dial(Options(TlsMode::kImplicit, "127.0.0.1"));
  ASSERT_TRUE(c.ok()) << c.status();
  ExpectFile(c->get());
}

TEST_F(ConnectionTlsTest, VerificationWithoutTheCaFailsClearly) {
  StartServer(TlsServer());
  ConnectionOptions o = Options(TlsMode::kImplicit);
  o.tls_ca_file.clear();
  auto c = Connection::Dial(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition) << c.status();
  EXPECT_THAT(c.status().message(), HasSubstr("TLS certificate verification failed for localhost:"));
  EXPECT_THAT(c.status().message(), HasSubstr("self-signed"));
  EXPECT_THAT(c.status().message(), HasSubstr("tls_ca_file"));
}

TEST_F(ConnectionTlsTest, VerificationOffAcceptsTheSelfSignedCert) {
  StartServer(TlsServer());
  ConnectionOptions o = Options(TlsMode::kImplicit);
  o.tls_ca_file.clear();
  o.tls_verify = false;
  auto c = Connection::Dial(o);
  ASSERT_TRUE(c.ok()) << c.status();
  ExpectFile(c->get());
}

TEST_F(ConnectionTlsTest, UnreadableCaFileIsFailedPrecondition) {
  StartServer(TlsServer());
  ConnectionOptions o = Options(TlsMode::kImplicit);
  o.tls_ca_file = "/nonexistent/ca.pem";
  auto c = Connection::Dial(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition) << c.status();
  EXPECT_THAT(c.status().message(), HasSubstr("cannot load tls_ca_file"));
}

TEST_F(ConnectionTlsTest, TlsClientAgainstPlainServerFailsHandshake) {
  StartServer(FakeNntpServer::Options());
  auto c = Connection::Dial(Options(TlsMode::kImplicit));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable) << c.status();
  EXPECT_THAT(c.status().message(), HasSubstr("TLS handshake with localhost:"));
}

TEST_F(ConnectionTlsTest, StartTlsThenAuthinfo) {
  FakeNntpServer::Options so;
  so.starttls = true;
  so.require_auth = true;
  so.username = "bob";
  so.password = "pw";
  StartServer(so);
  ConnectionOptions o = Options(TlsMode::kStartTls);
  o.username = "bob";
  o.password = "pw";
  auto c = Connection::Dial(o);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE((*c)->tls_active());
  ExpectFile(c->get());
  // STARTTLS came before AUTHINFO on the wire.
  auto log = server_->command_log();
  ASSERT_GE(log.size(), 3u);
  EXPECT_EQ(log[0].command, "STARTTLS");
  EXPECT_EQ(log[1].command, "AUTHINFO USER");
}

TEST_F(ConnectionTlsTest, StartTlsRefusedIsFailedPrecondition) {
  StartServer(FakeNntpServer::Options());  // no STARTTLS offered
  auto c = Connection::Dial(Options(TlsMode::kStartTls));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition) << c.status();
  EXPECT_THAT(c.status().message(), HasSubstr("STARTTLS refused"));
}

TEST_F(ConnectionTlsTest, StallOverTlsTimesOutAndInterruptWorks) {
  StartServer(TlsServer());
  FakeNntpServer::Fault f;
  f.stall_after_bytes = 40000;
  server_->SetFault(file_.segments[0].message_id, f);
  ConnectionOptions o = Options(TlsMode::kImplicit);
  o.stall_timeout = absl::Milliseconds(200);
  auto c = Connection::Dial(o);
  ASSERT_TRUE(c.ok()) << c.status();
  (*c)->SendBody(file_.segments[0].message_id);
  ASSERT_TRUE((*c)->Flush().ok());
  std::string out;
  auto r = (*c)->ReadBody(&out);
  EXPECT_TRUE(IsTimeout(r.status())) << r.status();

  f.stall_after_bytes = -1;
  f.stall = true;
  server_->SetFault(file_.segments[1].message_id, f);
  auto d = Connection::Dial(Options(TlsMode::kImplicit));
  ASSERT_TRUE(d.ok()) << d.status();
  (*d)->SendBody(file_.segments[1].message_id);
  ASSERT_TRUE((*d)->Flush().ok());
  absl::Status result;
  std::thread reader([&] { result = (*d)->ReadBody(&out).status(); });
  // The stalled reply of the first connection is still in flight too.
  ASSERT_TRUE(server_->WaitFor([&] { return server_->in_flight() == 2; }, absl::Seconds(5)));
  const absl::Time start = absl::Now();
  (*d)->Interrupt();
  reader.join();
  EXPECT_EQ(result.code(), absl::StatusCode::kCancelled) << result;
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(200));
}

}  // namespace
}  // namespace nzbmesh::nntp
