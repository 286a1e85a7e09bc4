// HTTP behaviour of FrontendServer over real loopback sockets: ranges, WebDAV,
// auth, limits, SABnzbd API, and F9 (a client disconnect cancels every fetch
// and closes the broker session).
#include "services/frontend/frontend_server.h"

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "services/frontend/http_util.h"
#include "tests/services/frontend/fake_catalog.h"
#include "tests/services/frontend/fake_segment_fetcher.h"
#include "tests/services/frontend/http_test_client.h"
#include "tests/services/frontend/loopback_http_server.h"

namespace nzbmesh::frontend {
namespace {

using testing::FakeCatalog;
using testing::FakeImporter;
using testing::FakeSegmentFetcher;
using testing::Fetch;
using testing::HttpConn;
using testing::HttpResponse;

constexpr char kFile[] = "/tv/Show.S01E01/Show & <Friends>.mkv";
constexpr char kFileUrl[] = "/dav/tv/Show.S01E01/Show%20%26%20%3CFriends%3E.mkv";

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::string Get(const std::string& target, const std::string& extra = "") {
  return absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: t\r\n", extra, "\r\n");
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { AddFile(kFile, 10, 1000, 500); }

  void AddFile(const std::string& path, int segments, int64_t seg_size, int64_t last_size) {
    importer::v1::FileLayout layout;
    int64_t off = 0;
    for (int i = 0; i < segments; ++i) {
      int64_t size = i == segments - 1 ? last_size : seg_size;
      std::string id = absl::StrCat(path, "#", i, "@t");
      std::string data = RandomBytes(size, static_cast<uint32_t>(i + path.size()));
      fetcher_.AddSegment(id, data);
      content_[path] += data;
      ids_[path].push_back(id);
      auto* s = layout.add_segments();
      s->set_message_id(id);
      s->set_offset(off);
      s->set_size(size);
      off += size;
    }
    auto* e = layout.mutable_entry();
    e->set_path(path);
    e->set_name(path.substr(path.rfind('/') + 1));
    e->set_size(off);
    e->set_mtime_unix(784111777);
    e->set_etag("v1");
    catalog_.AddFile(layout);
  }

  void StartServer() {
    auto s = FrontendServer::Create(options_, {&fetcher_, &caching_, &importer_, &metrics_});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    ASSERT_TRUE(server_->Start().ok());
    port_ = server_->port();
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::Milliseconds(100));
  }

  FakeSegmentFetcher fetcher_;
  FakeCatalog catalog_;
  CachingCatalogClient caching_{&catalog_, {}};
  FakeImporter importer_;
  CountingFrontendMetrics metrics_;
  FrontendServer::Options options_;
  std::unique_ptr<FrontendServer> server_;
  int port_ = 0;
  std::map<std::string, std::string> content_;
  std::map<std::string, std::vector<std::string>> ids_;
};

TEST_F(ServerTest, HealthAndReadiness) {
  StartServer();
  EXPECT_EQ(Fetch(port_, Get("/healthz")).status, 200);
  HttpResponse r = Fetch(port_, Get("/readyz"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ready\n");
  EXPECT_EQ(Fetch(port_, Get("/nope")).status, 404);
}

TEST_F(ServerTest, GetWholeFile) {
  StartServer();
  HttpResponse r = Fetch(port_, Get(kFileUrl));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-length"), "9500");
  EXPECT_EQ(r.header("accept-ranges"), "bytes");
  EXPECT_EQ(r.header("etag"), "\"v1\"");
  EXPECT_EQ(r.header("last-modified"), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(r.header("content-type"), "video/x-matroska");
  EXPECT_TRUE(r.body == content_[kFile]);
  for (const auto& id : ids_[kFile]) EXPECT_EQ(fetcher_.calls(id), 1);
  EXPECT_EQ(fetcher_.sessions_opened(), 1);
  EXPECT_TRUE(fetcher_.WaitFor([](const FakeSegmentFetcher& f) { return f.sessions_open() == 0; }, absl::Seconds(2)));
}

TEST_F(ServerTest, SingleRangeIs206WithContentRange) {
  StartServer();
  HttpResponse r = Fetch(port_, Get(kFileUrl, "Range: bytes=990-2009\r\n"));
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.header("content-range"), "bytes 990-2009/9500");
  EXPECT_EQ(r.header("content-length"), "1020");
  EXPECT_TRUE(r.body == content_[kFile].substr(990, 1020));
}

// A response served by one segment opens no broker session: the session's
// id would arrive after its only fetch had left. One that reads on opens its
// session once its first bytes are written, and its later fetches carry it.
TEST_F(ServerTest, OnlyResponsesReadingSeveralSegmentsOpenABrokerSession) {
  StartServer();
  HttpResponse r = Fetch(port_, Get(kFileUrl, "Range: bytes=1100-1899\r\n"));  // inside segment 1
  EXPECT_EQ(r.status, 206);
  EXPECT_TRUE(r.body == content_[kFile].substr(1100, 800));
  EXPECT_EQ(fetcher_.sessions_opened(), 0);
  r = Fetch(port_, Get(kFileUrl, "Range: bytes=2500-\r\n"));  // segments 2-9
  EXPECT_EQ(r.status, 206);
  EXPECT_TRUE(r.body == content_[kFile].substr(2500));
  EXPECT_EQ(fetcher_.sessions_opened(), 1);
  EXPECT_TRUE(fetcher_.WaitFor([](const FakeSegmentFetcher& f) { return f.sessions_open() == 0; }, absl::Seconds(2)));
}

TEST_F(ServerTest, SuffixAndOpenEndedRanges) {
  StartServer();
  HttpResponse r = Fetch(port_, Get(kFileUrl, "Range: bytes=-100\r\n"));
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.header("content-range"), "bytes 9400-9499/9500");
  EXPECT_TRUE(r.body == content_[kFile].substr(9400));
  r = Fetch(port_, Get(kFileUrl, "Range: bytes=9000-\r\n"));
  EXPECT_EQ(r.header("content-range"), "bytes 9000-9499/9500");
  EXPECT_TRUE(r.body == content_[kFile].substr(9000));
}

TEST_F(ServerTest, MultipleRangesAreMultipartByteranges) {
  StartServer();
  HttpResponse r = Fetch(port_, Get(kFileUrl, "Range: bytes=0-9,5000-5004\r\n"));
  ASSERT_EQ(r.status, 206);
  std::string ct = r.header("content-type");
  ASSERT_TRUE(absl::StartsWith(ct, "multipart/byteranges; boundary=")) << ct;
  std::string b = ct.substr(ct.find('=') + 1);
  std::string expected = absl::StrCat(
      "--", b, "\r\nContent-Type: video/x-matroska\r\nContent-Range: bytes 0-9/9500\r\n\r\n",
      content_[kFile].substr(0, 10), "\r\n--", b,
      "\r\nContent-Type: video/x-matroska\r\nContent-Range: bytes 5000-5004/9500\r\n\r\n",
      content_[kFile].substr(5000, 5), "\r\n--", b, "--\r\n");
  EXPECT_EQ(r.header("content-length"), absl::StrCat(expected.size()));
  EXPECT_TRUE(r.body == expected);
}

TEST_F(ServerTest, Returns416ForUnsatisfiableRange) {
  StartServer();
  HttpResponse r = Fetch(port_, Get(kFileUrl, "Range: bytes=9500-\r\n"));
  EXPECT_EQ(r.status, 416);
  EXPECT_EQ(r.header("content-range"), "bytes */9500");
  EXPECT_EQ(fetcher_.total_calls(), 0);
}

TEST_F(ServerTest, TenThousandRangesAre416) {
  StartServer();
  std::string h = "Range: bytes=";
  for (int i = 0; i < 10000; ++i) absl::StrAppend(&h, i ? "," : "", i % 10, "-", i % 10);  // ~40 KB
  HttpResponse r = Fetch(port_, Get(kFileUrl, h + "\r\n"));
  EXPECT_EQ(r.status, 416);
  EXPECT_EQ(fetcher_.total_calls(), 0);
}

TEST_F(ServerTest, IfRangeWithMatchingEtagServesRange) {
  StartServer();
  HttpResponse r = Fetch(port_, Get(kFileUrl, "Range: bytes=0-9\r\nIf-Range: \"v1\"\r\n"));
  EXPECT_EQ(r.status, 206);
  r = Fetch(port_, Get(kFileUrl, "Range: bytes=0-9\r\nIf-Range: \"v0\"\r\n"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), 9500u);
  r = Fetch(port_, Get(kFileUrl, "Range: bytes=0-9\r\nIf-Range: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
  EXPECT_EQ(r.status, 206);
}

TEST_F(ServerTest, HeadAndKeepAliveOnOneConnection) {
  StartServer();
  HttpConn c(port_);
  ASSERT_TRUE(c.Send(absl::StrCat("HEAD ", kFileUrl, " HTTP/1.1\r\nHost: t\r\nRange: bytes=10-19\r\n\r\n")));
  HttpResponse r;
  ASSERT_TRUE(c.ReadResponse(&r, /*read_body=*/false));
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.header("content-length"), "10");
  EXPECT_EQ(r.header("content-range"), "bytes 10-19/9500");
  EXPECT_EQ(fetcher_.total_calls(), 0);  // HEAD reads no data
  ASSERT_TRUE(c.Send(Get(kFileUrl, "Range: bytes=10-19\r\n")));
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 206);
  EXPECT_TRUE(r.body == content_[kFile].substr(10, 10));
  ASSERT_TRUE(c.Send(Get("/healthz")));
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 200);
}

TEST_F(ServerTest, PipelinedRequestsDuringStreamAreServed) {
  StartServer();
  HttpConn c(port_);
  ASSERT_TRUE(c.Send(Get(kFileUrl) + Get("/healthz")));
  HttpResponse r;
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), 9500u);
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.body, "ok\n");
}

TEST_F(ServerTest, F9_ClientDisconnectCancelsFetchesAndClosesSession) {
  AddFile("/movies/Big/big.mkv", 40, 100000, 100000);
  fetcher_.SetLatency(absl::Seconds(30));
  fetcher_.SetLatency(ids_["/movies/Big/big.mkv"][0], absl::ZeroDuration());
  options_.initial_read_ahead = 8;
  StartServer();
  HttpConn c(port_);
  ASSERT_TRUE(c.Send(Get("/dav/movies/Big/big.mkv")));
  HttpResponse r;
  ASSERT_TRUE(c.ReadResponse(&r, /*read_body=*/false));
  EXPECT_EQ(r.status, 200);
  ASSERT_TRUE(c.Fill(100000, absl::Now() + absl::Seconds(5)));  // all of segment 0
  ASSERT_TRUE(fetcher_.WaitFor([](const FakeSegmentFetcher& f) { return f.in_flight() >= 7; }, absl::Seconds(2)));
  // The session opens once the first bytes are on their way; the fetch's
  // thread may send them before the strand gets there.
  EXPECT_TRUE(fetcher_.WaitFor([](const FakeSegmentFetcher& f) { return f.sessions_open() == 1; }, absl::Seconds(2)));
  EXPECT_EQ(server_->active_streams(), 1);
  absl::Time t0 = absl::Now();
  c.Close();
  ASSERT_TRUE(fetcher_.WaitFor(
      [](const FakeSegmentFetcher& f) { return f.in_flight() == 0 && f.sessions_open() == 0; }, absl::Seconds(2)));
  absl::Duration took = absl::Now() - t0;
  EXPECT_LE(took, absl::Milliseconds(100));
  EXPECT_GE(fetcher_.cancels(), 7);
  EXPECT_TRUE(fetcher_.WaitFor([&](const FakeSegmentFetcher&) { return server_->active_streams() == 0; },
                               absl::Seconds(1)));
  EXPECT_EQ(metrics_.client_disconnects.load(), 1);
}

// A chunk that had to wait for its fetch is sent by the thread that
// completed the fetch, as far as the socket takes it without blocking; the
// connection writes the rest. A client with a 4 KiB receive buffer that
// reads only after the segments arrived makes those sends partial (the
// first one carries the headers): every byte must still arrive once, in
// order, and every segment be fetched once.
TEST_F(ServerTest, AChunkTheSocketTookInPartIsFinishedByTheConnection) {
  const std::string path = "/movies/Big/big.mkv";
  AddFile(path, 4, 600000, 600000);
  fetcher_.Hold();
  StartServer();
  HttpConn c(port_, /*rcvbuf=*/4096);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send(Get("/dav/movies/Big/big.mkv", "Range: bytes=1000-\r\n")));
  ASSERT_TRUE(fetcher_.WaitFor([](const FakeSegmentFetcher& f) { return f.in_flight() >= 1; }, absl::Seconds(5)));
  fetcher_.Release();  // replies (and the sends) on the fetcher's thread
  HttpResponse r;
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.header("content-range"), "bytes 1000-2399999/2400000");
  ASSERT_EQ(r.body.size(), 2399000u);
  EXPECT_TRUE(r.body == content_[path].substr(1000));
  for (const auto& id : ids_[path]) EXPECT_EQ(fetcher_.calls(id), 1) << id;
}

// Bursts of seeks as a scrubbing player makes them: open-ended ranges at
// random offsets on fresh connections, read a little, abandon. Every read
// gets its bytes (correct ones) within a deadline, from 4 clients at once,
// over a fetcher with a provider's latency.
TEST_F(ServerTest, ScrubbingBurstsGetTheirBytes) {
  const std::string path = "/movies/Scrub/scrub.mkv";
  AddFile(path, 24, 400000, 400000);
  fetcher_.SetLatency(absl::Milliseconds(15));
  StartServer();
  const std::string& content = content_[path];
  std::atomic<int> failures{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      std::mt19937 rng(static_cast<uint32_t>(t));
      for (int i = 0; i < 40; ++i) {
        const size_t start = rng() % content.size();
        const size_t want = std::min<size_t>(1 + rng() % 300000, content.size() - start);
        HttpConn c(port_);
        HttpResponse r;
        bool ok = c.Send(Get("/dav/movies/Scrub/scrub.mkv", absl::StrCat("Range: bytes=", start, "-\r\n"))) &&
                  c.ReadResponse(&r, /*read_body=*/false, absl::Seconds(5)) && r.status == 206 &&
                  c.Fill(want, absl::Now() + absl::Seconds(5));
        if (!ok || c.buffer().compare(0, want, content, start, want) != 0) {
          ADD_FAILURE() << "client " << t << " read " << i << ": bytes=" << start << "- (+" << want << "): "
                        << (ok ? "wrong bytes" : "no bytes in time") << ", got " << c.buffer().size();
          failures.fetch_add(1);
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_F(ServerTest, MissingSegmentBeforeHeadersIs502) {
  fetcher_.SetError(ids_[kFile][0], absl::NotFoundError("430 no such article"));
  StartServer();
  HttpResponse r = Fetch(port_, Get(kFileUrl));
  EXPECT_EQ(r.status, 502);
  EXPECT_TRUE(absl::StrContains(r.body, "is missing") || absl::StrContains(r.body, "430")) << r.body;
}

TEST_F(ServerTest, BrokerUnavailableIs503WithRetryAfter) {
  fetcher_.SetError(ids_[kFile][0], absl::UnavailableError("broker down"));
  options_.max_fetch_attempts = 1;
  StartServer();
  HttpResponse r = Fetch(port_, Get(kFileUrl));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.header("retry-after"), "5");
}

TEST_F(ServerTest, MissingSegmentAfterHeadersAbortsConnection) {
  fetcher_.SetError(ids_[kFile][5], absl::NotFoundError("430"));
  StartServer();
  HttpConn c(port_);
  ASSERT_TRUE(c.Send(Get(kFileUrl)));
  HttpResponse r;
  ASSERT_TRUE(c.ReadResponse(&r, false));
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(c.WaitClosed(absl::Seconds(2)));
  EXPECT_LT(c.buffer().size(), 9500u);
}

TEST_F(ServerTest, SlowlorisRequestIsTimedOut) {
  options_.request_timeout = absl::Milliseconds(300);
  StartServer();
  HttpConn c(port_);
  ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: t\r\n"));
  absl::Time t0 = absl::Now();
  EXPECT_TRUE(c.WaitClosed(absl::Seconds(3)));
  EXPECT_LT(absl::Now() - t0, absl::Seconds(2));
  EXPECT_TRUE(fetcher_.WaitFor([&](const FakeSegmentFetcher&) { return server_->open_connections() == 0; },
                               absl::Seconds(1)));
}

TEST_F(ServerTest, IdleKeepAliveConnectionIsClosed) {
  options_.idle_timeout = absl::Milliseconds(200);
  StartServer();
  HttpConn c(port_);
  EXPECT_TRUE(c.WaitClosed(absl::Seconds(3)));
}

TEST_F(ServerTest, OneMegabyteHeaderIs431) {
  StartServer();
  HttpConn c(port_);
  ASSERT_TRUE(c.Send(Get("/healthz", absl::StrCat("X-Big: ", std::string(1 << 20, 'a'), "\r\n"))));
  HttpResponse r;
  ASSERT_TRUE(c.ReadResponse(&r));
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(r.header("connection"), "close");
}

TEST_F(ServerTest, TraversalAndBadPathsAre400) {
  StartServer();
  for (const char* t : {"/dav/../etc/passwd", "/dav/%2e%2e/etc/passwd", "/dav/tv/%2E%2E/%2e%2e/x", "/dav/a%00b",
                        "/dav/a%2fb", "/dav/a%zz", "/dav/tv/./x"}) {
    EXPECT_EQ(Fetch(port_, Get(t)).status, 400) << t;
  }
}

TEST_F(ServerTest, BasicAuthIsRequiredWhenUsersAreConfigured) {
  options_.webdav_users = {{"player", Sha256Hex("s3cret")}};
  StartServer();
  HttpResponse r = Fetch(port_, Get("/dav/"));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.header("www-authenticate"), "Basic realm=\"nzbmesh\", charset=\"UTF-8\"");
  std::string bad = absl::Base64Escape("player:wrong");
  EXPECT_EQ(Fetch(port_, Get("/dav/", "Authorization: Basic " + bad + "\r\n")).status, 401);
  std::string other = absl::Base64Escape("admin:s3cret");
  EXPECT_EQ(Fetch(port_, Get("/dav/", "Authorization: Basic " + other + "\r\n")).status, 401);
  std::string good = absl::Base64Escape("player:s3cret");
  EXPECT_EQ(Fetch(port_, Get("/dav/", "Authorization: Basic " + good + "\r\n")).status, 200);
  EXPECT_EQ(Fetch(port_, Get("/healthz")).status, 200);  // health stays open
}

TEST_F(ServerTest, OptionsAdvertisesDavClass1) {
  StartServer();
  HttpResponse r = Fetch(port_, "OPTIONS /dav/ HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("dav"), "1");
  EXPECT_EQ(r.header("allow"), "OPTIONS, GET, HEAD, PROPFIND, DELETE");
}

TEST_F(ServerTest, WritesAreRefusedWith405AndAllow) {
  StartServer();
  for (const char* m : {"PUT", "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK"}) {
    HttpResponse r = Fetch(port_, absl::StrCat(m, " /dav/tv/x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"));
    EXPECT_EQ(r.status, 405) << m;
    EXPECT_EQ(r.header("allow"), "OPTIONS, GET, HEAD, PROPFIND, DELETE") << m;
  }
}

std::string Propfind(const std::string& target, const std::string& depth, const std::string& body) {
  return absl::StrCat("PROPFIND ", target, " HTTP/1.1\r\nHost: t\r\n", depth.empty() ? "" : "Depth: " + depth + "\r\n",
                      "Content-Type: application/xml\r\nContent-Length: ", body.size(), "\r\n\r\n", body);
}

TEST_F(ServerTest, PropfindDepth0OnFileListsLiveProperties) {
  StartServer();
  HttpResponse r = Fetch(port_, Propfind(kFileUrl, "0", ""));
  ASSERT_EQ(r.status, 207);
  EXPECT_EQ(r.header("content-type"), "application/xml; charset=utf-8");
  EXPECT_EQ(r.body,
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">\n"
            "<D:response><D:href>/dav/tv/Show.S01E01/Show%20%26%20%3CFriends%3E.mkv</D:href>"
            "<D:propstat><D:prop><D:displayname>Show &amp; &lt;Friends&gt;.mkv</D:displayname>"
            "<D:getcontentlength>9500</D:getcontentlength>"
            "<D:getlastmodified>Sun, 06 Nov 1994 08:49:37 GMT</D:getlastmodified>"
            "<D:getetag>&quot;v1&quot;</D:getetag><D:getcontenttype>video/x-matroska</D:getcontenttype>"
            "<D:resourcetype></D:resourcetype><D:creationdate>1994-11-06T08:49:37Z</D:creationdate>"
            "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>\n</D:multistatus>\n");
}

TEST_F(ServerTest, PropfindDepth1ListsChildren) {
  StartServer();
  HttpResponse r = Fetch(port_, Propfind("/dav/tv/", "1",
                                         "<?xml version=\"1.0\"?><a:propfind xmlns:a=\"DAV:\"><a:prop>"
                                         "<a:resourcetype/><a:displayname/><x:color xmlns:x=\"urn:x\"/>"
                                         "</a:prop></a:propfind>"));
  ASSERT_EQ(r.status, 207);
  EXPECT_TRUE(absl::StrContains(r.body, "<D:href>/dav/tv/</D:href>")) << r.body;
  EXPECT_TRUE(absl::StrContains(r.body,
                                "<D:href>/dav/tv/Show.S01E01/</D:href><D:propstat><D:prop><D:resourcetype>"
                                "<D:collection/></D:resourcetype><D:displayname>Show.S01E01</D:displayname>"))
      << r.body;
  EXPECT_TRUE(absl::StrContains(r.body, "<X0:color xmlns:X0=\"urn:x\"/></D:prop><D:status>HTTP/1.1 404 Not Found"))
      << r.body;
  EXPECT_FALSE(absl::StrContains(r.body, "Friends"));  // depth 1 stops at children
}

TEST_F(ServerTest, PropfindDepthInfinityOnCollectionIs403) {
  StartServer();
  for (const std::string depth : {"infinity", ""}) {
    HttpResponse r = Fetch(port_, Propfind("/dav/tv/", depth, ""));
    EXPECT_EQ(r.status, 403);
    EXPECT_TRUE(absl::StrContains(r.body, "<D:propfind-finite-depth/>")) << r.body;
  }
}

TEST_F(ServerTest, PropfindMalformedBodyIs400) {
  StartServer();
  EXPECT_EQ(Fetch(port_, Propfind("/dav/tv/", "1", "<propfind")).status, 400);
  EXPECT_EQ(Fetch(port_, Propfind("/dav/tv/", "1", "<D:nope xmlns:D=\"DAV:\"/>")).status, 400);
  EXPECT_EQ(Fetch(port_, Propfind("/dav/nothing", "0", "")).status, 404);
}

TEST_F(ServerTest, GetOnCollectionIsHtmlListing) {
  StartServer();
  HttpResponse r = Fetch(port_, Get("/dav/tv/Show.S01E01/"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/html; charset=utf-8");
  EXPECT_TRUE(absl::StrContains(
      r.body, "<a href=\"/dav/tv/Show.S01E01/Show%20%26%20%3CFriends%3E.mkv\">Show &amp; &lt;Friends&gt;.mkv</a>"))
      << r.body;
}

TEST_F(ServerTest, DeleteNeedsAuthAndRemovesFromCatalog) {
  StartServer();
  EXPECT_EQ(Fetch(port_, absl::StrCat("DELETE ", kFileUrl, " HTTP/1.1\r\nHost: t\r\n\r\n")).status, 403);
  server_->Shutdown(absl::ZeroDuration());
  options_.webdav_users = {{"player", Sha256Hex("pw")}};
  StartServer();
  std::string auth = "Authorization: Basic " + absl::Base64Escape("player:pw") + "\r\n";
  EXPECT_EQ(Fetch(port_, Get(kFileUrl, auth)).status, 200);  // fills the layout cache
  HttpResponse r = Fetch(port_, absl::StrCat("DELETE /dav/tv/Show.S01E01 HTTP/1.1\r\nHost: t\r\n", auth, "\r\n"));
  EXPECT_EQ(r.status, 204);
  EXPECT_FALSE(catalog_.Exists(kFile));
  EXPECT_EQ(caching_.size(), 0u);  // invalidated
  EXPECT_EQ(Fetch(port_, Get(kFileUrl, auth)).status, 404);
}

TEST_F(ServerTest, SabnzbdVersionAndKeyCheck) {
  options_.api_key = "k3y";
  StartServer();
  HttpResponse r = Fetch(port_, Get("/sabnzbd/api?mode=version&output=json"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"version\":\"4.3.2\"}");
  EXPECT_EQ(Fetch(port_, Get("/sabnzbd/api?mode=queue&apikey=bad")).body,
            "{\"status\":false,\"error\":\"API Key Incorrect\"}");
  EXPECT_EQ(Fetch(port_, Get("/sabnzbd/api?mode=queue")).body, "{\"status\":false,\"error\":\"API Key Required\"}");
  r = Fetch(port_, Get("/sabnzbd/api?mode=get_cats&apikey=k3y"));
  EXPECT_EQ(r.body, "{\"categories\":[\"*\",\"movies\",\"tv\",\"music\"]}");
  r = Fetch(port_, Get("/sabnzbd/api?mode=get_config&apikey=k3y"));
  EXPECT_TRUE(absl::StrContains(r.body, "\"complete_dir\":\"/mnt/nzbmesh\"")) << r.body;
}

TEST_F(ServerTest, SabnzbdAddfileSubmitsNzbAndQueueShowsIt) {
  options_.api_key = "k3y";
  StartServer();
  std::string nzb = "<?xml version=\"1.0\"?><nzb xmlns=\"http://www.newzbin.com/DTD/2003/nzb\"></nzb>";
  std::string b = "XyZ";
  std::string body = absl::StrCat("--", b, "\r\nContent-Disposition: form-data; name=\"name\"; filename=\"Show.nzb\"\r\n",
                                  "Content-Type: application/x-nzb\r\n\r\n", nzb, "\r\n--", b,
                                  "\r\nContent-Disposition: form-data; name=\"cat\"\r\n\r\ntv\r\n--", b, "--\r\n");
  HttpResponse r = Fetch(port_, absl::StrCat("POST /sabnzbd/api?mode=addfile&apikey=k3y&output=json HTTP/1.1\r\n",
                                             "Host: t\r\nContent-Type: multipart/form-data; boundary=", b,
                                             "\r\nContent-Length: ", body.size(), "\r\n\r\n", body));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"status\":true,\"nzo_ids\":[\"SABnzbd_nzo_41\"]}");
  auto sub = importer_.submitted();
  ASSERT_EQ(sub.size(), 1u);
  EXPECT_EQ(sub[0].nzb(), nzb);
  EXPECT_EQ(sub[0].filename(), "Show.nzb");
  EXPECT_EQ(sub[0].category(), "tv");
  r = Fetch(port_, Get("/sabnzbd/api?mode=queue&apikey=k3y&output=json"));
  EXPECT_TRUE(absl::StrContains(r.body, "\"nzo_id\":\"SABnzbd_nzo_41\",\"filename\":\"Show.nzb\",\"cat\":\"tv\""))
      << r.body;
}

// ---- SABnzbd mode=addurl against a real loopback HTTP server ----------------

constexpr char kAddUrlNzb[] = "<?xml version=\"1.0\"?><nzb xmlns=\"http://www.newzbin.com/DTD/2003/nzb\"><file/></nzb>";

class AddUrlTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    options_.api_key = "k3y";
    options_.max_upload_bytes = 4096;
    options_.addurl_timeout = absl::Seconds(1);
  }
  // GET /sabnzbd/api?mode=addurl&name=<url>&<extra> as Sonarr sends it.
  HttpResponse AddUrl(const std::string& url, const std::string& extra = "") {
    HttpConn c(port_);
    HttpResponse r;
    // A generous bound for a loaded machine; the fetches' own timeouts are far shorter.
    if (c.Send(Get(absl::StrCat("/sabnzbd/api?mode=addurl&apikey=k3y&output=json&name=", EncodeQuery(url),
                                extra.empty() ? "" : "&", extra)))) {
      c.ReadResponse(&r, true, absl::Seconds(60));
    }
    return r;
  }
  static std::string EncodeQuery(const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
      if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
        out.push_back(static_cast<char>(c));
      } else {
        absl::StrAppend(&out, "%", absl::Hex(c, absl::kZeroPad2));
      }
    }
    return out;
  }
  testing::LoopbackHttpServer origin_;
};

TEST_F(AddUrlTest, FetchesTheNzbAndSubmitsItLikeAddfile) {
  origin_.Route("/api", testing::LoopbackHttpServer::Response(
                            200, "OK", "Content-Disposition: attachment; filename=\"Show.S01E02.nzb\"\r\n", kAddUrlNzb));
  StartServer();
  HttpResponse r = AddUrl(origin_.Url("/api?t=get&id=abc&apikey=indexer-key"), "cat=tv&priority=1");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_EQ(r.body, "{\"status\":true,\"nzo_ids\":[\"SABnzbd_nzo_41\"]}");
  auto sub = importer_.submitted();
  ASSERT_EQ(sub.size(), 1u);
  EXPECT_EQ(sub[0].nzb(), kAddUrlNzb);
  EXPECT_EQ(sub[0].filename(), "Show.S01E02.nzb");  // Content-Disposition
  EXPECT_EQ(sub[0].name(), "");                     // the importer names it after the file
  EXPECT_EQ(sub[0].category(), "tv");
  EXPECT_EQ(sub[0].priority(), 1);
  EXPECT_EQ(origin_.requests("/api"), 1);
}

TEST_F(AddUrlTest, NzbnameWinsAndTheUrlPathNamesAnAnonymousDownload) {
  origin_.Route("/dl/Movie+2024%20HD.nzb", testing::LoopbackHttpServer::Response(200, "OK", "", kAddUrlNzb));
  StartServer();
  EXPECT_EQ(AddUrl(origin_.Url("/dl/Movie+2024%20HD.nzb")).body, "{\"status\":true,\"nzo_ids\":[\"SABnzbd_nzo_41\"]}");
  EXPECT_EQ(AddUrl(origin_.Url("/dl/Movie+2024%20HD.nzb"), "nzbname=Movie%20(2024)").body,
            "{\"status\":true,\"nzo_ids\":[\"SABnzbd_nzo_42\"]}");
  auto sub = importer_.submitted();
  ASSERT_EQ(sub.size(), 2u);
  EXPECT_EQ(sub[0].filename(), "Movie+2024 HD.nzb");  // the URL path's last segment, decoded
  EXPECT_EQ(sub[0].name(), "");
  EXPECT_EQ(sub[1].name(), "Movie (2024)");
}

TEST_F(AddUrlTest, NotFoundIsReportedWithTheUrlWithoutItsQuery) {
  StartServer();
  HttpResponse r = AddUrl(origin_.Url("/missing.nzb?apikey=indexer-key"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, absl::StrCat("{\"status\":false,\"error\":\"cannot fetch NZB from http://127.0.0.1:", origin_.port(),
                                 "/missing.nzb: HTTP 404 Not Found\"}"));
  EXPECT_TRUE(importer_.submitted().empty());
}

TEST_F(AddUrlTest, OversizedNzbIsRefusedAtTheUploadCap) {
  origin_.Route("/big.nzb", testing::LoopbackHttpServer::Response(200, "OK", "", std::string(4097, 'x')));
  StartServer();
  EXPECT_EQ(AddUrl(origin_.Url("/big.nzb")).body,
            absl::StrCat("{\"status\":false,\"error\":\"cannot fetch NZB from http://127.0.0.1:", origin_.port(),
                         "/big.nzb: the NZB is larger than 4096 bytes\"}"));
  EXPECT_TRUE(importer_.submitted().empty());
}

TEST_F(AddUrlTest, RedirectLoopIsCutAfterFiveRedirects) {
  origin_.Route("/loop", testing::LoopbackHttpServer::Response(302, "Found", "Location: /loop\r\n", ""));
  StartServer();
  EXPECT_EQ(AddUrl(origin_.Url("/loop")).body,
            absl::StrCat("{\"status\":false,\"error\":\"cannot fetch NZB from http://127.0.0.1:", origin_.port(),
                         "/loop: more than 5 redirects\"}"));
  EXPECT_EQ(origin_.requests("/loop"), 6);
}

TEST_F(AddUrlTest, NonHttpSchemeIsRefusedWithoutAnyFetch) {
  StartServer();
  EXPECT_EQ(AddUrl("ftp://127.0.0.1/x.nzb").body,
            "{\"status\":false,\"error\":\"invalid NZB URL: unsupported URL scheme 'ftp' (only http and https)\"}");
  EXPECT_EQ(AddUrl("file:///etc/passwd").body,
            "{\"status\":false,\"error\":\"invalid NZB URL: unsupported URL scheme 'file' (only http and https)\"}");
  EXPECT_EQ(Fetch(port_, Get("/sabnzbd/api?mode=addurl&apikey=k3y")).body,
            "{\"status\":false,\"error\":\"No URL given (parameter \\\"name\\\")\"}");
  EXPECT_TRUE(importer_.submitted().empty());
}

TEST_F(AddUrlTest, SilentServerTimesOut) {
  origin_.Hang("/hang.nzb");
  StartServer();
  EXPECT_EQ(AddUrl(origin_.Url("/hang.nzb")).body,
            absl::StrCat("{\"status\":false,\"error\":\"cannot fetch NZB from http://127.0.0.1:", origin_.port(),
                         "/hang.nzb: no complete answer within 1s\"}"));
  EXPECT_EQ(origin_.requests("/hang.nzb"), 1);
}

TEST_F(AddUrlTest, APendingDownloadBlocksNeitherOtherUrlsNorOtherRequests) {
  options_.addurl_timeout = absl::Minutes(5);  // the hanging fetch stays pending for the whole test
  options_.io_threads = 1;                     // one IO thread: a blocking fetch would stall everything
  origin_.Hang("/hang.nzb");
  origin_.Route("/ok.nzb", testing::LoopbackHttpServer::Response(200, "OK", "", kAddUrlNzb));
  StartServer();
  HttpConn slow(port_);
  ASSERT_TRUE(slow.Send(Get(absl::StrCat("/sabnzbd/api?mode=addurl&apikey=k3y&name=",
                                         EncodeQuery(origin_.Url("/hang.nzb"))))));
  ASSERT_TRUE(origin_.WaitForRequests("/hang.nzb", 1, absl::Seconds(30)));
  EXPECT_EQ(AddUrl(origin_.Url("/ok.nzb")).body, "{\"status\":true,\"nzo_ids\":[\"SABnzbd_nzo_41\"]}");
  EXPECT_EQ(Fetch(port_, Get(kFileUrl, "Range: bytes=0-9\r\n")).status, 206);
  // Shutdown ends the pending download; its connection closes without an answer.
  server_->Shutdown(absl::ZeroDuration());
  EXPECT_TRUE(slow.WaitClosed(absl::Seconds(30)));
}

TEST_F(ServerTest, SabnzbdHistoryStorageIsUnderCompleteDir) {
  options_.api_key = "k3y";
  options_.complete_dir = "/mnt/nzb/";
  importer::v1::Job j;
  j.set_job_id(7);
  j.set_state(importer::v1::COMPLETED);
  j.set_name("Movie.2024");
  j.set_category("movies");
  j.set_catalog_path("/movies/Movie.2024");
  importer_.AddJob(j);
  StartServer();
  HttpResponse r = Fetch(port_, Get("/sabnzbd/api?mode=history&apikey=k3y&output=json"));
  EXPECT_TRUE(absl::StrContains(r.body, "\"status\":\"Completed\",\"fail_message\":\"\","
                                        "\"storage\":\"/mnt/nzb/movies/Movie.2024\""))
      << r.body;
}

TEST_F(ServerTest, ConnectionLimitClosesExtraConnections) {
  options_.max_connections = 2;
  StartServer();
  HttpConn a(port_), b(port_);
  HttpResponse r;
  ASSERT_TRUE(a.Send(Get("/healthz")) && a.ReadResponse(&r));
  ASSERT_TRUE(b.Send(Get("/healthz")) && b.ReadResponse(&r));
  HttpConn c(port_);
  EXPECT_TRUE(c.WaitClosed(absl::Seconds(2)));
  EXPECT_EQ(metrics_.rejected.load(), 1);
}

TEST_F(ServerTest, ShutdownClosesIdleConnectionsAndFinishesStreams) {
  StartServer();
  HttpConn idle(port_);
  HttpResponse r;
  ASSERT_TRUE(idle.Send(Get("/healthz")) && idle.ReadResponse(&r));
  absl::Time t0 = absl::Now();
  server_->Shutdown(absl::Seconds(5));
  EXPECT_LT(absl::Now() - t0, absl::Seconds(1));
  EXPECT_TRUE(idle.WaitClosed(absl::Seconds(1)));
  HttpConn late(port_);
  EXPECT_FALSE(late.connected() && late.Send(Get("/healthz")) && late.ReadResponse(&r, true, absl::Seconds(1)));
}

// ---- admin API: /api/streams -------------------------------------------------

std::string Admin(const std::string& method, const std::string& target, const std::string& key = "k3y") {
  return absl::StrCat(method, " ", target, " HTTP/1.1\r\nHost: t\r\n", key.empty() ? "" : "X-Api-Key: " + key + "\r\n",
                      "\r\n");
}

TEST_F(ServerTest, StreamsApiNeedsTheApiKey) {
  StartServer();  // no api_key configured
  HttpResponse r = Fetch(port_, Admin("GET", "/api/streams"));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, "the admin API is disabled: set api_key in the frontend config\n");
  server_->Shutdown(absl::ZeroDuration());
  options_.api_key = "k3y";
  StartServer();
  r = Fetch(port_, Admin("GET", "/api/streams", ""));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.header("www-authenticate"), "X-Api-Key");
  EXPECT_EQ(Fetch(port_, Admin("GET", "/api/streams", "wrong")).status, 403);
  EXPECT_EQ(Fetch(port_, Admin("DELETE", "/api/streams/s1", "wrong")).status, 403);
  r = Fetch(port_, Admin("GET", "/api/streams"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_EQ(r.body, "{\"streams\":[],\"recent\":[]}");
  EXPECT_EQ(Fetch(port_, Admin("GET", "/api/streams?apikey=k3y", "")).body, "{\"streams\":[],\"recent\":[]}");
  EXPECT_EQ(Fetch(port_, Admin("DELETE", "/api/streams/s99")).status, 404);
  EXPECT_EQ(Fetch(port_, Admin("DELETE", "/api/streams/nonsense")).status, 404);
  r = Fetch(port_, Admin("POST", "/api/streams"));
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("allow"), "GET, HEAD");
}

class StreamsApiTest : public ServerTest {
 protected:
  static constexpr char kBig[] = "/movies/Big/big.mkv";
  void SetUp() override {
    ServerTest::SetUp();
    AddFile(kBig, 40, 100000, 100000);
    fetcher_.SetLatency(absl::Seconds(30));  // only segment 0 arrives
    fetcher_.SetLatency(ids_[kBig][0], absl::ZeroDuration());
    options_.initial_read_ahead = 8;
    options_.api_key = "k3y";
    StartServer();
  }
  // Starts a stream from byte 50000 and reads its first 50000 body bytes.
  void StartStream(HttpConn& c) {
    ASSERT_TRUE(c.Send(Get("/dav/movies/Big/big.mkv", "Range: bytes=50000-\r\nUser-Agent: Lavf/59.27.100\r\n")));
    HttpResponse r;
    ASSERT_TRUE(c.ReadResponse(&r, /*read_body=*/false));
    ASSERT_EQ(r.status, 206);
    ASSERT_TRUE(c.Fill(50000, absl::Now() + absl::Seconds(5)));
    ASSERT_TRUE(fetcher_.WaitFor([](const FakeSegmentFetcher& f) { return f.in_flight() >= 7; }, absl::Seconds(2)));
  }
  // Polls GET /api/streams until its body contains `fragment`.
  std::string WaitForListing(const std::string& fragment) {
    std::string body;
    fetcher_.WaitFor(
        [&](const FakeSegmentFetcher&) {
          body = Fetch(port_, Admin("GET", "/api/streams")).body;
          return absl::StrContains(body, fragment);
        },
        absl::Seconds(3));
    return body;
  }
};

TEST_F(StreamsApiTest, ListsTheActiveStream) {
  HttpConn c(port_);
  StartStream(c);
  std::string body = WaitForListing("\"bytes_sent\":50000");
  EXPECT_TRUE(absl::StrContains(body, "{\"streams\":[{\"id\":\"s1\",\"path\":\"/dav/movies/Big/big.mkv\","
                                      "\"client\":\"127.0.0.1\",\"user_agent\":\"Lavf/59.27.100\",\"started_unix_ms\":"))
      << body;
  EXPECT_TRUE(absl::StrContains(body, "\"offset\":100000,\"bytes_sent\":50000,\"bytes_per_second\":")) << body;
  EXPECT_TRUE(absl::StrContains(body, "\"read_ahead_bytes\":")) << body;
  EXPECT_FALSE(absl::StrContains(body, "\"read_ahead_bytes\":0}")) << body;  // 7 segments reserved
  EXPECT_TRUE(absl::StrContains(body, "],\"recent\":[]}")) << body;
}

TEST_F(StreamsApiTest, DeleteAbortsTheStreamCancelsFetchesAndClosesTheSession) {
  HttpConn c(port_);
  StartStream(c);
  WaitForListing("\"id\":\"s1\"");
  EXPECT_TRUE(fetcher_.WaitFor([](const FakeSegmentFetcher& f) { return f.sessions_open() == 1; }, absl::Seconds(2)));
  HttpResponse r = Fetch(port_, Admin("DELETE", "/api/streams/s1"));
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.header("content-length"), "");
  EXPECT_TRUE(c.WaitClosed(absl::Seconds(2)));  // the player sees the connection end
  ASSERT_TRUE(fetcher_.WaitFor(
      [](const FakeSegmentFetcher& f) { return f.in_flight() == 0 && f.sessions_open() == 0; }, absl::Seconds(2)));
  EXPECT_GE(fetcher_.cancels(), 7);
  EXPECT_GE(metrics_.fetches_cancelled.load(), 7);
  EXPECT_EQ(metrics_.streams_killed.load(), 1);
  EXPECT_EQ(server_->active_streams(), 0);
  std::string body = Fetch(port_, Admin("GET", "/api/streams")).body;
  EXPECT_TRUE(absl::StartsWith(body, "{\"streams\":[],\"recent\":[{\"id\":\"s1\",\"path\":\"/dav/movies/Big/big.mkv\""))
      << body;
  EXPECT_TRUE(absl::StrContains(body, "\"bytes_sent\":50000}]}")) << body;
  EXPECT_EQ(Fetch(port_, Admin("DELETE", "/api/streams/s1")).status, 404);  // already gone
}

TEST_F(ServerTest, SegmentCacheHitsMissesAreCounted) {
  StartServer();
  EXPECT_EQ(Fetch(port_, Get(kFileUrl)).status, 200);
  EXPECT_EQ(metrics_.cache_misses.load(), 10);
  EXPECT_EQ(metrics_.cache_hits.load(), 0);
  // Segment 9 is in the file's LRU (8 most recent segments).
  HttpResponse r = Fetch(port_, Get(kFileUrl, "Range: bytes=9000-9099\r\n"));
  EXPECT_EQ(r.status, 206);
  EXPECT_TRUE(r.body == content_[kFile].substr(9000, 100));
  EXPECT_EQ(metrics_.cache_misses.load(), 10);
  EXPECT_EQ(metrics_.cache_hits.load(), 1);
  EXPECT_EQ(fetcher_.total_calls(), 10);
}

// Issue 6: short reads that are not continued sequentially are PROBE; a short
// read starting where the client's last read of the file ended, a long range
// and a range to the end of the file are STREAM. Segments are 1000 bytes;
// each request touches segments not fetched before (no cache hits).
TEST_F(ServerTest, ScatteredShortReadsAreProbeAndASequentialContinuationIsStream) {
  options_.probe_max_bytes = 2000;
  StartServer();
  const auto& id = ids_[kFile];
  auto range = [&](const std::string& spec) {
    HttpResponse r = Fetch(port_, Get(kFileUrl, absl::StrCat("Range: bytes=", spec, "\r\n")));
    EXPECT_EQ(r.status, 206) << spec;
  };
  using C = std::vector<TrafficClass>;
  const C probe = {TrafficClass::kProbe}, stream = {TrafficClass::kStream};
  range("0-999");  // a header peek
  EXPECT_EQ(fetcher_.classes(id[0]), probe);
  range("5000-5999");  // a scattered peek
  EXPECT_EQ(fetcher_.classes(id[5]), probe);
  range("1000-1999");  // starts where the first read ended
  EXPECT_EQ(fetcher_.classes(id[1]), stream);
  range("2000-2999");  // and the chain goes on
  EXPECT_EQ(fetcher_.classes(id[2]), stream);
  range("6001-6999");  // one byte past the end of 5000-5999: not a continuation
  EXPECT_EQ(fetcher_.classes(id[6]), probe);
  range("3000-5001");  // longer than probe_max_bytes (4 is fetched; 5 is cached)
  EXPECT_EQ(fetcher_.classes(id[3]), stream);
  EXPECT_EQ(fetcher_.classes(id[4]), stream);
  range("9100-9499");  // short, but reaches the end of the file: open-ended
  EXPECT_EQ(fetcher_.classes(id[9]), stream);
  EXPECT_EQ(fetcher_.probe_calls(), 3);
}

TEST_F(ServerTest, ZeroProbeMaxBytesReadsEverythingAsStream) {
  options_.probe_max_bytes = 0;
  StartServer();
  EXPECT_EQ(Fetch(port_, Get(kFileUrl, "Range: bytes=0-99\r\n")).status, 206);
  EXPECT_EQ(fetcher_.classes(ids_[kFile][0]), std::vector<TrafficClass>{TrafficClass::kStream});
  EXPECT_EQ(fetcher_.probe_calls(), 0);
}

}  // namespace
}  // namespace nzbmesh::frontend
