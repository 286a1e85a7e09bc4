// NzbUrlClient over real loopback sockets against LoopbackHttpServer: the
// body and its Content-Disposition name, redirects (relative and absolute,
// and a loop cut after max_redirects), non-2xx answers, the size cap (by
// Content-Length and for a chunked body), the timeout, bad schemes; and the
// pure URL / Content-Disposition helpers.
#include "services/frontend/nzb_url_client.h"

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/services/frontend/loopback_http_server.h"

namespace nzbmesh::frontend {
namespace {

using testing::LoopbackHttpServer;

constexpr char kNzb[] = "<?xml version=\"1.0\"?><nzb xmlns=\"http://www.newzbin.com/DTD/2003/nzb\"></nzb>";

// ---- pure helpers --------------------------------------------------------------

TEST(ParseHttpUrlTest, SplitsSchemeHostPortTarget) {
  auto u = ParseHttpUrl("HTTPS://User:p%40ss@Indexer.example:8443/api?t=get&id=1&apikey=s3#frag");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->userinfo, "User:p@ss");
  EXPECT_EQ(u->host, "Indexer.example");
  EXPECT_EQ(u->port, "8443");
  EXPECT_EQ(u->target, "/api?t=get&id=1&apikey=s3");
  EXPECT_EQ(u->Redacted(), "https://Indexer.example:8443/api");
  u = ParseHttpUrl("http://[::1]/x.nzb");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, "80");
  EXPECT_TRUE(u->ipv6);
  EXPECT_EQ(u->Redacted(), "http://[::1]/x.nzb");
  u = ParseHttpUrl("http://h?x=1");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->target, "/?x=1");
}

TEST(ParseHttpUrlTest, RefusesOtherSchemesAndMalformedUrls) {
  EXPECT_EQ(ParseHttpUrl("ftp://h/x.nzb").status().message(), "unsupported URL scheme 'ftp' (only http and https)");
  EXPECT_EQ(ParseHttpUrl("file:///etc/passwd").status().message(),
            "unsupported URL scheme 'file' (only http and https)");
  EXPECT_EQ(ParseHttpUrl("/relative/x.nzb").status().message(), "not an absolute http(s) URL");
  EXPECT_EQ(ParseHttpUrl("http:/h/x").status().message(), "not an absolute http(s) URL");
  EXPECT_EQ(ParseHttpUrl("http:///x").status().message(), "the URL has no host");
  EXPECT_EQ(ParseHttpUrl("http://h:99999/").status().message(), "the URL has a bad port '99999'");
  EXPECT_EQ(ParseHttpUrl("http://h:8x/").status().message(), "the URL has a bad port '8x'");
  EXPECT_EQ(ParseHttpUrl("http://h/a b").status().message(), "the URL contains whitespace or control characters");
  EXPECT_EQ(ParseHttpUrl("http://h/a\r\nX: y").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ResolveLocationTest, AbsoluteSchemeRelativePathAndRelative) {
  HttpUrl base = *ParseHttpUrl("http://a.example:81/dir/get.php?id=1");
  EXPECT_EQ(ResolveLocation(base, "https://b.example/x.nzb")->Redacted(), "https://b.example/x.nzb");
  EXPECT_EQ(ResolveLocation(base, "//c.example/y")->Redacted(), "http://c.example/y");
  EXPECT_EQ(ResolveLocation(base, "/root.nzb?k=v")->target, "/root.nzb?k=v");
  EXPECT_EQ(ResolveLocation(base, "/root.nzb")->port, "81");
  EXPECT_EQ(ResolveLocation(base, "other.nzb#f")->target, "/dir/other.nzb");
  EXPECT_EQ(ResolveLocation(base, "?id=2")->target, "/dir/get.php?id=2");
  EXPECT_EQ(ResolveLocation(base, "gopher://h/").status().message(),
            "unsupported URL scheme 'gopher' (only http and https)");
  EXPECT_EQ(ResolveLocation(base, "").status().message(), "empty Location");
}

TEST(ContentDispositionTest, FilenameStarWinsAndDirectoriesAreDropped) {
  EXPECT_EQ(ContentDispositionFilename("attachment; filename=\"Show.S01E01.nzb\""), "Show.S01E01.nzb");
  EXPECT_EQ(ContentDispositionFilename("attachment; filename=plain.nzb; size=3"), "plain.nzb");
  EXPECT_EQ(ContentDispositionFilename("attachment; filename=\"a\\\"b.nzb\""), "a\"b.nzb");
  EXPECT_EQ(ContentDispositionFilename("attachment; filename=\"fallback.nzb\"; filename*=UTF-8''Caf%C3%A9%20X.nzb"),
            "Caf\xC3\xA9 X.nzb");
  EXPECT_EQ(ContentDispositionFilename("attachment; filename=\"../../etc/x.nzb\""), "x.nzb");
  EXPECT_EQ(ContentDispositionFilename("attachment; filename=\"C:\\\\dir\\\\y.nzb\""), "y.nzb");
  EXPECT_EQ(ContentDispositionFilename("attachment; filename=\"..\""), "");
  EXPECT_EQ(ContentDispositionFilename("inline"), "");
  EXPECT_EQ(ContentDispositionFilename(""), "");
}

// ---- the client ------------------------------------------------------------------

class NzbUrlClientTest : public ::testing::Test {
 protected:
  void Make() {
    auto c = NzbUrlClient::Create(options_);
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = std::move(*c);
  }
  absl::StatusOr<NzbUrlClient::Result> FetchSync(const std::string& url) {
    if (client_ == nullptr) Make();
    absl::Notification n;
    absl::StatusOr<NzbUrlClient::Result> out;
    client_->Fetch(url, [&](absl::StatusOr<NzbUrlClient::Result> r) {
      out = std::move(r);
      n.Notify();
    });
    // Far above every timeout the tests set: only a hung client fails this.
    EXPECT_TRUE(n.WaitForNotificationWithTimeout(absl::Seconds(60)));
    return out;
  }

  LoopbackHttpServer server_;
  NzbUrlClient::Options options_;
  std::unique_ptr<NzbUrlClient> client_;
};

TEST_F(NzbUrlClientTest, FetchesTheBodyAndTheContentDispositionName) {
  server_.Route("/get", LoopbackHttpServer::Response(200, "OK",
                                                     "Content-Type: application/x-nzb\r\n"
                                                     "Content-Disposition: attachment; filename=\"Show.S01E01.nzb\"\r\n",
                                                     kNzb));
  auto r = FetchSync(server_.Url("/get?id=7&apikey=secret"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, kNzb);
  EXPECT_EQ(r->filename, "Show.S01E01.nzb");
  EXPECT_EQ(r->url.target, "/get?id=7&apikey=secret");
  std::vector<std::string> heads = server_.heads("/get");
  ASSERT_EQ(heads.size(), 1u);
  EXPECT_EQ(heads[0].substr(0, heads[0].find("\r\n")), "GET /get?id=7&apikey=secret HTTP/1.1");
  EXPECT_NE(heads[0].find(absl::StrCat("\r\nHost: 127.0.0.1:", server_.port(), "\r\n")), std::string::npos) << heads[0];
  EXPECT_EQ(client_->in_flight(), 0);
}

TEST_F(NzbUrlClientTest, ChunkedBodyWithoutContentLengthIsRead) {
  server_.Route("/c.nzb", absl::StrCat("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                                       "10\r\n", std::string(kNzb).substr(0, 16), "\r\n", absl::Hex(sizeof(kNzb) - 17),
                                       "\r\n", std::string(kNzb).substr(16), "\r\n0\r\n\r\n"));
  auto r = FetchSync(server_.Url("/c.nzb"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, kNzb);
  EXPECT_EQ(r->filename, "");
}

TEST_F(NzbUrlClientTest, FollowsRelativeAndAbsoluteRedirects) {
  server_.Route("/start", LoopbackHttpServer::Response(302, "Found", "Location: next?x=1\r\n", ""));
  server_.Route("/next", LoopbackHttpServer::Response(301, "Moved Permanently",
                                                      absl::StrCat("Location: ", server_.Url("/final.nzb"), "\r\n"), ""));
  server_.Route("/final.nzb", LoopbackHttpServer::Response(200, "OK", "", kNzb));
  auto r = FetchSync(server_.Url("/start"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, kNzb);
  EXPECT_EQ(r->url.target, "/final.nzb");
  EXPECT_EQ(server_.requests("/start"), 1);
  EXPECT_EQ(server_.requests("/next"), 1);
  EXPECT_EQ(server_.requests("/final.nzb"), 1);
}

TEST_F(NzbUrlClientTest, RedirectLoopStopsAfterMaxRedirects) {
  server_.Route("/loop", LoopbackHttpServer::Response(302, "Found", "Location: /loop\r\n", ""));
  auto r = FetchSync(server_.Url("/loop"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(), "more than 5 redirects");
  EXPECT_EQ(server_.requests("/loop"), 6);  // the request and 5 redirects
}

TEST_F(NzbUrlClientTest, ZeroRedirectsRefusesTheFirstOne) {
  options_.max_redirects = 0;
  server_.Route("/r", LoopbackHttpServer::Response(307, "Temporary Redirect", "Location: /x.nzb\r\n", ""));
  auto r = FetchSync(server_.Url("/r"));
  EXPECT_EQ(r.status().message(), "more than 0 redirects");
  EXPECT_EQ(server_.requests("/x.nzb"), 0);
}

TEST_F(NzbUrlClientTest, RedirectToAnotherSchemeIsRefused) {
  server_.Route("/r", LoopbackHttpServer::Response(302, "Found", "Location: ftp://127.0.0.1/x.nzb\r\n", ""));
  auto r = FetchSync(server_.Url("/r"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "redirected to a bad URL: unsupported URL scheme 'ftp' (only http and https)");
}

TEST_F(NzbUrlClientTest, NotFoundAndServerErrorsAreReported) {
  auto r = FetchSync(server_.Url("/missing.nzb"));  // unrouted: 404
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "HTTP 404 Not Found");
  server_.Route("/boom", LoopbackHttpServer::Response(503, "Busy", "", "later"));
  r = FetchSync(server_.Url("/boom"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(), "HTTP 503 Service Unavailable");
}

TEST_F(NzbUrlClientTest, BodyOverTheCapIsRefusedByContentLengthAndWhileStreaming) {
  options_.max_bytes = 1000;
  server_.Route("/exact.nzb", LoopbackHttpServer::Response(200, "OK", "", std::string(1000, 'n')));
  server_.Route("/big.nzb", LoopbackHttpServer::Response(200, "OK", "", std::string(1001, 'n')));
  // No length: the cap applies as the chunks arrive.
  server_.Route("/chunked.nzb", absl::StrCat("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "258\r\n",
                                             std::string(600, 'n'), "\r\n258\r\n", std::string(600, 'n'),
                                             "\r\n0\r\n\r\n"));
  auto r = FetchSync(server_.Url("/exact.nzb"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body.size(), 1000u);
  for (const char* path : {"/big.nzb", "/chunked.nzb"}) {
    r = FetchSync(server_.Url(path));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << path;
    EXPECT_EQ(r.status().message(), "the NZB is larger than 1000 bytes") << path;
  }
}

TEST_F(NzbUrlClientTest, SilentServerTimesOut) {
  options_.timeout = absl::Seconds(1);
  server_.Hang("/hang.nzb");
  auto r = FetchSync(server_.Url("/hang.nzb"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(r.status().message(), "no complete answer within 1s");
  EXPECT_EQ(server_.requests("/hang.nzb"), 1);
}

TEST_F(NzbUrlClientTest, ConnectionRefusedIsUnavailable) {
  int port = 0;
  {
    LoopbackHttpServer gone;  // a port that was free a moment ago and is closed now
    port = gone.port();
  }
  auto r = FetchSync(absl::StrCat("http://127.0.0.1:", port, "/x.nzb"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message(), absl::StrCat("cannot connect to 127.0.0.1:", port, ": Connection refused"));
}

TEST_F(NzbUrlClientTest, EmptyBodyIsAnError) {
  server_.Route("/empty.nzb", LoopbackHttpServer::Response(200, "OK", "", ""));
  auto r = FetchSync(server_.Url("/empty.nzb"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(), "the server answered with an empty body");
}

TEST_F(NzbUrlClientTest, ShutdownCancelsFetchesInProgress) {
  server_.Hang("/hang.nzb");
  Make();
  absl::Notification n;
  absl::StatusOr<NzbUrlClient::Result> out;
  client_->Fetch(server_.Url("/hang.nzb"), [&](absl::StatusOr<NzbUrlClient::Result> r) {
    out = std::move(r);
    n.Notify();
  });
  ASSERT_TRUE(server_.WaitForRequests("/hang.nzb", 1, absl::Seconds(30)));
  client_->Shutdown();  // returns once the callback ran
  ASSERT_TRUE(n.HasBeenNotified());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(client_->in_flight(), 0);
  auto late = FetchSync(server_.Url("/hang.nzb"));
  EXPECT_EQ(late.status().message(), "the frontend is shutting down");
}

// ---- https ------------------------------------------------------------------------

// A self-signed certificate made with the openssl CLI for `san`, in TEST_TMPDIR.
struct TestCert {
  std::string cert, key, error;
};
TestCert MakeCert(const std::string& name, const std::string& san) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = tmp != nullptr ? tmp : "/tmp";
  TestCert c{absl::StrCat(dir, "/", name, ".crt"), absl::StrCat(dir, "/", name, ".key"), ""};
  std::string cmd = absl::StrCat(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=nzbmesh-test",
      " -addext subjectAltName=", san, " -keyout ", c.key, " -out ", c.cert, " >", dir, "/", name, ".log 2>&1");
  if (std::system(cmd.c_str()) != 0) c.error = absl::StrCat("openssl could not make a test certificate: ", cmd);
  return c;
}

TEST_F(NzbUrlClientTest, HttpsWithATrustedCertificateFetches) {
  TestCert cert = MakeCert("origin", "DNS:localhost,IP:127.0.0.1");
  ASSERT_TRUE(cert.error.empty()) << cert.error;
  LoopbackHttpServer tls(cert.cert, cert.key);
  ASSERT_TRUE(tls.tls_error().empty()) << tls.tls_error();
  tls.Route("/s.nzb", LoopbackHttpServer::Response(200, "OK", "", kNzb));
  options_.ca_file = cert.cert;
  for (const char* host : {"127.0.0.1", "localhost"}) {
    auto r = FetchSync(tls.Url("/s.nzb", host));
    ASSERT_TRUE(r.ok()) << host << ": " << r.status();
    EXPECT_EQ(r->body, kNzb);
  }
  EXPECT_EQ(tls.requests("/s.nzb"), 2);
}

TEST_F(NzbUrlClientTest, HttpsRefusesAnUntrustedOrMisnamedCertificate) {
  TestCert cert = MakeCert("wrong-name", "DNS:other.invalid");
  ASSERT_TRUE(cert.error.empty()) << cert.error;
  LoopbackHttpServer tls(cert.cert, cert.key);
  ASSERT_TRUE(tls.tls_error().empty()) << tls.tls_error();
  tls.Route("/s.nzb", LoopbackHttpServer::Response(200, "OK", "", kNzb));
  // Not trusted: the system store does not know this self-signed certificate.
  auto r = FetchSync(tls.Url("/s.nzb"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message(), "TLS handshake with 127.0.0.1 failed: certificate verify failed (self-signed certificate)");
  // Trusted, but issued for another name.
  options_.ca_file = cert.cert;
  client_.reset();
  r = FetchSync(tls.Url("/s.nzb"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message(), "TLS handshake with 127.0.0.1 failed: certificate verify failed (IP address mismatch)");
  r = FetchSync(tls.Url("/s.nzb", "localhost"));
  EXPECT_EQ(r.status().message(), "TLS handshake with localhost failed: certificate verify failed (hostname mismatch)");
  EXPECT_EQ(tls.requests("/s.nzb"), 0);  // no request left the client
}

TEST(NzbUrlClientCreateTest, OptionsAreValidated) {
  NzbUrlClient::Options o;
  o.max_redirects = 6;
  EXPECT_EQ(NzbUrlClient::Create(o).status().message(), "addurl_max_redirects must be between 0 and 5, not 6");
  o = {};
  o.timeout = absl::ZeroDuration();
  EXPECT_EQ(NzbUrlClient::Create(o).status().message(), "addurl_timeout must be positive");
  o = {};
  o.ca_file = "/nonexistent/ca.pem";
  EXPECT_EQ(NzbUrlClient::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nzbmesh::frontend
