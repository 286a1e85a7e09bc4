// GrpcSegmentFetcher against an in-process fake Broker (callback service on a
// loopback port): bytes and metadata, NOT_FOUND, cancellation reaching the
// broker at once, stream sessions; and F9 end to end through gRPC.
#include "services/frontend/grpc_segment_fetcher.h"

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "nzbmesh/broker/v1/broker.grpc.pb.h"
#include "services/frontend/frontend_server.h"
#include "tests/services/frontend/fake_catalog.h"
#include "tests/services/frontend/http_test_client.h"

namespace nzbmesh::frontend {
namespace {

namespace pb = broker::v1;

// Serves articles from a map; ids starting with "hang" never answer until
// cancelled. Counts hanging calls and open sessions.
class FakeBroker : public pb::Broker::CallbackService {
 public:
  std::map<std::string, std::string> articles;

  int hanging() const {
    absl::MutexLock lock(&mu_);
    return hanging_;
  }
  int sessions() const {
    absl::MutexLock lock(&mu_);
    return sessions_;
  }
  // Sessions of other frontends the fake reports in its events' open_sessions
  // (< 0: the field is left unset, as an older broker does).
  void SetOtherSessions(int n) {
    absl::MutexLock lock(&mu_);
    other_sessions_ = n;
  }
  bool WaitFor(std::function<bool()> pred, absl::Duration timeout) const {
    absl::Time deadline = absl::Now() + timeout;
    while (!pred()) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(1));  // polling a gRPC-side counter; bounded by the deadline
    }
    return true;
  }

  // The traffic class of every FetchSegment for `id`, in arrival order.
  std::vector<pb::TrafficClass> classes(const std::string& id) const {
    absl::MutexLock lock(&mu_);
    auto it = classes_.find(id);
    return it == classes_.end() ? std::vector<pb::TrafficClass>{} : it->second;
  }

  // Every PromoteFetch received, as (stream_session_id, message_id).
  std::vector<std::pair<uint64_t, std::string>> promotes() const {
    absl::MutexLock lock(&mu_);
    return promotes_;
  }

  grpc::ServerUnaryReactor* PromoteFetch(grpc::CallbackServerContext* ctx, const pb::PromoteFetchRequest* req,
                                         pb::PromoteFetchResponse* resp) override {
    {
      absl::MutexLock lock(&mu_);
      promotes_.emplace_back(req->stream_session_id(), req->message_id());
    }
    resp->set_promoted(true);
    auto* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }

  grpc::ServerWriteReactor<pb::FetchSegmentResponse>* FetchSegment(grpc::CallbackServerContext* ctx,
                                                                   const pb::FetchSegmentRequest* req) override {
    {
      absl::MutexLock lock(&mu_);
      classes_[req->message_id()].push_back(req->traffic_class());
    }
    class Writer : public grpc::ServerWriteReactor<pb::FetchSegmentResponse> {
     public:
      Writer(FakeBroker* b, const pb::FetchSegmentRequest& req) : b_(b) {
        if (absl::StartsWith(req.message_id(), "hang")) {
          absl::MutexLock lock(&b_->mu_);
          ++b_->hanging_;
          hang_ = true;
          return;
        }
        auto it = b_->articles.find(req.message_id());
        if (it == b_->articles.end()) {
          Done(grpc::Status(grpc::StatusCode::NOT_FOUND, "430 no such article"));
          return;
        }
        const std::string& d = it->second;
        damaged_ = absl::StartsWith(req.message_id(), "damaged");
        // Chunks of the requested chunk_bytes, as the broker sends them;
        // without one, two halves.
        const size_t chunk = req.chunk_bytes() > 0 ? req.chunk_bytes() : (d.size() + 1) / 2;
        for (size_t off = 0; off < d.size() || msgs_.empty(); off += chunk) {
          pb::FetchSegmentResponse m;
          if (msgs_.empty()) {
            m.mutable_metadata()->set_name("file.mkv");
            m.mutable_metadata()->set_decoded_size(static_cast<int64_t>(d.size()));
          }
          m.set_data(d.substr(off, chunk));
          msgs_.push_back(std::move(m));
        }
        Next();
      }
      void OnWriteDone(bool ok) override {
        if (!ok) {
          Done(grpc::Status::CANCELLED);
          return;
        }
        Next();
      }
      void OnCancel() override {
        if (hang_) {
          absl::MutexLock lock(&b_->mu_);
          --b_->hanging_;
        }
        Done(grpc::Status::CANCELLED);
      }
      void OnDone() override { delete this; }

     private:
      void Next() {
        if (i_ < msgs_.size()) {
          StartWrite(&msgs_[i_++]);
        } else {
          Done(damaged_ ? grpc::Status(grpc::StatusCode::DATA_LOSS, "CRC mismatch on every provider")
                        : grpc::Status::OK);
        }
      }
      void Done(grpc::Status s) {
        {
          absl::MutexLock lock(&mu_);
          if (finished_) return;
          finished_ = true;
        }
        Finish(s);
      }
      FakeBroker* b_;
      std::vector<pb::FetchSegmentResponse> msgs_;
      size_t i_ = 0;
      bool hang_ = false;
      bool damaged_ = false;  // "damaged*" ids: all bytes, then DATA_LOSS
      absl::Mutex mu_;
      bool finished_ = false;
    };
    return new Writer(this, *req);
  }

  grpc::ServerWriteReactor<pb::StreamSessionEvent>* OpenStreamSession(grpc::CallbackServerContext*,
                                                                     const pb::OpenStreamSessionRequest*) override {
    class Session : public grpc::ServerWriteReactor<pb::StreamSessionEvent> {
     public:
      explicit Session(FakeBroker* b) : b_(b) {
        {
          absl::MutexLock lock(&b_->mu_);
          ++b_->sessions_;
          ev_.set_session_id(static_cast<uint64_t>(b_->next_session_++));
          ev_.set_capacity_slots(32);
          if (b_->other_sessions_ >= 0) ev_.set_open_sessions(b_->sessions_ + b_->other_sessions_);
        }
        StartWrite(&ev_);
      }
      void OnWriteDone(bool) override {}
      void OnCancel() override {
        {
          absl::MutexLock lock(&b_->mu_);
          --b_->sessions_;
        }
        Finish(grpc::Status::OK);
      }
      void OnDone() override { delete this; }

     private:
      FakeBroker* b_;
      pb::StreamSessionEvent ev_;
    };
    return new Session(this);
  }

 private:
  mutable absl::Mutex mu_;
  int hanging_ ABSL_GUARDED_BY(mu_) = 0;
  int sessions_ ABSL_GUARDED_BY(mu_) = 0;
  int other_sessions_ ABSL_GUARDED_BY(mu_) = -1;
  int next_session_ ABSL_GUARDED_BY(mu_) = 100;
  std::map<std::string, std::vector<pb::TrafficClass>> classes_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<uint64_t, std::string>> promotes_ ABSL_GUARDED_BY(mu_);
};

class GrpcFetcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_.articles["a@t"] = std::string(100000, 'x') + "tail";
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(&broker_);
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials());
    fetcher_ = std::make_unique<GrpcSegmentFetcher>(channel_, GrpcSegmentFetcher::Options{});
  }
  void TearDown() override {
    fetcher_.reset();
    server_->Shutdown(std::chrono::system_clock::now());
  }

  absl::StatusOr<Segment> FetchSync(const std::string& id, absl::Duration cancel_after = absl::InfiniteDuration()) {
    absl::Notification n;
    absl::StatusOr<Segment> out;
    auto h = fetcher_->Fetch(id, {}, [&](absl::StatusOr<Segment> s) {
      out = std::move(s);
      n.Notify();
    });
    if (cancel_after != absl::InfiniteDuration()) {
      EXPECT_TRUE(broker_.WaitFor([&] { return broker_.hanging() == 1; }, absl::Seconds(5)));
      h->Cancel();
    }
    EXPECT_TRUE(n.WaitForNotificationWithTimeout(absl::Seconds(10)));
    return out;
  }

  FakeBroker broker_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<GrpcSegmentFetcher> fetcher_;
};

TEST_F(GrpcFetcherTest, FetchReturnsDecodedBytesAndMetadata) {
  auto s = FetchSync("a@t");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s->data, broker_.articles["a@t"]);
  EXPECT_EQ(s->info.name, "file.mkv");
  EXPECT_FALSE(s->info.damaged);
}

// The frontend charges a fetch the segment's decoded size (FileReader's
// reservation, F11); the buffer a finished segment holds must not be larger,
// whatever the chunking. Appending chunks to the first one's string doubled
// it: 40,000 + 40,000 + 20,004 bytes ended in 160,000 bytes of capacity, and
// with the broker's 256 KiB chunks every 768,000-byte segment held 1 MiB.
TEST_F(GrpcFetcherTest, SegmentBufferHoldsExactlyItsDecodedSizeWhateverTheChunking) {
  const std::string& article = broker_.articles["a@t"];
  for (uint32_t chunk : {0u, 40000u, 30000u, 4096u, 100004u, 200000u}) {
    SCOPED_TRACE(absl::StrCat("chunk_bytes=", chunk));
    fetcher_ = std::make_unique<GrpcSegmentFetcher>(channel_, GrpcSegmentFetcher::Options{.chunk_bytes = chunk});
    auto s = FetchSync("a@t");
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(*s->data, article);
    EXPECT_EQ(s->data->capacity(), article.size());
  }
}

TEST_F(GrpcFetcherTest, DamagedButCompleteSegmentIsServedUnverified) {
  broker_.articles["damaged@t"] = std::string(5000, 'x');
  auto s = FetchSync("damaged@t");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s->data, broker_.articles["damaged@t"]);
  EXPECT_FALSE(s->info.crc_verified);
  EXPECT_TRUE(s->info.damaged);  // the frontend serves it but does not cache it
}

TEST_F(GrpcFetcherTest, MissingArticleIsNotFound) {
  auto s = FetchSync("nope@t");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.status().message(), "430 no such article");
}

TEST_F(GrpcFetcherTest, CancelReachesBrokerAtOnce) {
  absl::Time t0 = absl::Now();
  auto s = FetchSync("hang1@t", absl::ZeroDuration());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(broker_.WaitFor([&] { return broker_.hanging() == 0; }, absl::Seconds(1)));
  EXPECT_LT(absl::Now() - t0, absl::Seconds(2));
  EXPECT_TRUE(broker_.WaitFor([&] { return fetcher_->outstanding() == 0; }, absl::Seconds(1)));
}

// F12/B13 over the wire: Promote() on a pending read-ahead fetch sends one
// PromoteFetch with the fetch's session and message id; a second call, a
// needed-now fetch and a completed fetch send nothing.
TEST_F(GrpcFetcherTest, PromoteSendsOnePromoteFetchForAPendingReadAhead) {
  FetchOptions ahead;
  ahead.stream_session_id = 42;
  ahead.read_ahead = true;
  absl::Notification cancelled;
  auto h = fetcher_->Fetch("hang-ahead@t", ahead, [&](absl::StatusOr<Segment>) { cancelled.Notify(); });
  ASSERT_TRUE(broker_.WaitFor([&] { return broker_.hanging() == 1; }, absl::Seconds(10)));
  h->Promote();
  h->Promote();
  FetchOptions now;
  now.stream_session_id = 42;
  auto n = fetcher_->Fetch("hang-now@t", now, [](absl::StatusOr<Segment>) {});
  ASSERT_TRUE(broker_.WaitFor([&] { return broker_.hanging() == 2; }, absl::Seconds(10)));
  n->Promote();
  absl::Notification fetched;
  auto d = fetcher_->Fetch("a@t", ahead, [&](absl::StatusOr<Segment>) { fetched.Notify(); });
  ASSERT_TRUE(fetched.WaitForNotificationWithTimeout(absl::Seconds(10)));
  d->Promote();  // completed: nothing to promote
  ASSERT_TRUE(broker_.WaitFor([&] { return !broker_.promotes().empty(); }, absl::Seconds(10)));
  h->Cancel();
  n->Cancel();
  ASSERT_TRUE(cancelled.WaitForNotificationWithTimeout(absl::Seconds(10)));
  // Every call has ended (the promotion's too): nothing else can arrive.
  ASSERT_TRUE(broker_.WaitFor([&] { return fetcher_->outstanding() == 0; }, absl::Seconds(10)));
  EXPECT_EQ(broker_.promotes(), (std::vector<std::pair<uint64_t, std::string>>{{42, "hang-ahead@t"}}));
}

// F13's input: the broker's capacity from the session event, divided among
// the sessions open through this fetcher, rounded up; 0 with none open.
TEST_F(GrpcFetcherTest, StreamShareDividesTheBrokersCapacityAmongOpenSessions) {
  EXPECT_EQ(fetcher_->StreamShare(), 0);
  auto s1 = fetcher_->OpenSession("/tv/a.mkv");
  ASSERT_TRUE(broker_.WaitFor([&] { return fetcher_->StreamShare() > 0; }, absl::Seconds(10)));
  EXPECT_EQ(fetcher_->StreamShare(), 32);
  auto s2 = fetcher_->OpenSession("/tv/b.mkv");
  auto s3 = fetcher_->OpenSession("/tv/c.mkv");
  EXPECT_EQ(fetcher_->StreamShare(), 11);  // ceil(32 / 3)
  s1.reset();
  s2.reset();
  s3.reset();
  EXPECT_EQ(fetcher_->StreamShare(), 0);
}

// Other frontends' players count too: the broker's session count in its
// events, never less than this fetcher's own.
TEST_F(GrpcFetcherTest, StreamShareCountsTheBrokersSessionsOfEveryFrontend) {
  broker_.SetOtherSessions(5);
  auto s1 = fetcher_->OpenSession("/tv/a.mkv");
  ASSERT_TRUE(broker_.WaitFor([&] { return fetcher_->StreamShare() > 0; }, absl::Seconds(10)));
  EXPECT_EQ(fetcher_->StreamShare(), 6);  // ceil(32 / (1 + 5))
  broker_.SetOtherSessions(0);
  auto s2 = fetcher_->OpenSession("/tv/b.mkv");
  ASSERT_TRUE(broker_.WaitFor([&] { return s2->id() != 0; }, absl::Seconds(10)));
  EXPECT_EQ(fetcher_->StreamShare(), 16);  // the broker now counts 2
  s1.reset();
  s2.reset();
  EXPECT_EQ(fetcher_->StreamShare(), 0);
}

TEST_F(GrpcFetcherTest, SessionIdArrivesAndDestroyClosesIt) {
  auto session = fetcher_->OpenSession("/tv/x.mkv");
  EXPECT_TRUE(broker_.WaitFor([&] { return session->id() >= 100; }, absl::Seconds(5)));
  EXPECT_EQ(broker_.sessions(), 1);
  session.reset();
  EXPECT_TRUE(broker_.WaitFor([&] { return broker_.sessions() == 0; }, absl::Seconds(1)));
}

TEST_F(GrpcFetcherTest, F9_DisconnectCancelsBrokerFetchesAndSessionOverGrpc) {
  testing::FakeCatalog catalog;
  testing::FakeImporter importer;
  importer::v1::FileLayout layout;
  for (int i = 0; i < 6; ++i) {
    auto* s = layout.add_segments();
    s->set_message_id(i == 0 ? "a@t" : absl::StrCat("hang", i, "@t"));
    s->set_offset(i * 100004);
    s->set_size(100004);
  }
  layout.mutable_entry()->set_path("/m/r/f.mkv");
  layout.mutable_entry()->set_name("f.mkv");
  layout.mutable_entry()->set_size(6 * 100004);
  catalog.AddFile(layout);
  FrontendServer::Options o;
  o.initial_read_ahead = 6;
  auto server = FrontendServer::Create(o, {fetcher_.get(), &catalog, &importer, nullptr});
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE((*server)->Start().ok());
  {
    testing::HttpConn c((*server)->port());
    ASSERT_TRUE(c.Send("GET /dav/m/r/f.mkv HTTP/1.1\r\nHost: t\r\n\r\n"));
    testing::HttpResponse r;
    ASSERT_TRUE(c.ReadResponse(&r, false));
    ASSERT_EQ(r.status, 200);
    ASSERT_TRUE(c.Fill(100004, absl::Now() + absl::Seconds(5)));
    ASSERT_TRUE(broker_.WaitFor([&] { return broker_.hanging() == 5 && broker_.sessions() == 1; }, absl::Seconds(5)));
  }  // disconnect
  absl::Time t0 = absl::Now();
  EXPECT_TRUE(broker_.WaitFor([&] { return broker_.hanging() == 0 && broker_.sessions() == 0; }, absl::Seconds(2)));
  EXPECT_LE(absl::Now() - t0, absl::Milliseconds(100));
  (*server)->Shutdown(absl::Seconds(1));
}

// Issue 6 through gRPC: the broker receives PROBE for a scattered short read
// and STREAM once the same client continues where it stopped.
TEST_F(GrpcFetcherTest, BrokerSeesProbeForAShortPeekAndStreamForItsContinuation) {
  testing::FakeCatalog catalog;
  testing::FakeImporter importer;
  importer::v1::FileLayout layout;
  for (int i = 0; i < 4; ++i) {
    std::string id = absl::StrCat("c", i, "@t");
    broker_.articles[id] = std::string(1000, static_cast<char>('a' + i));
    auto* s = layout.add_segments();
    s->set_message_id(id);
    s->set_offset(i * 1000);
    s->set_size(1000);
  }
  layout.mutable_entry()->set_path("/m/r/c.mkv");
  layout.mutable_entry()->set_name("c.mkv");
  layout.mutable_entry()->set_size(4000);
  catalog.AddFile(layout);
  FrontendServer::Options o;
  o.probe_max_bytes = 1500;
  auto server = FrontendServer::Create(o, {fetcher_.get(), &catalog, &importer, nullptr});
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE((*server)->Start().ok());
  auto get = [&](const std::string& range) {
    testing::HttpResponse r =
        testing::Fetch((*server)->port(), absl::StrCat("GET /dav/m/r/c.mkv HTTP/1.1\r\nHost: t\r\nRange: bytes=",
                                                       range, "\r\n\r\n"));
    EXPECT_EQ(r.status, 206) << range;
  };
  get("0-999");     // a peek at the header
  get("2000-2999");  // a scattered peek
  get("1000-1999");  // continues the first
  EXPECT_EQ(broker_.classes("c0@t"), std::vector<pb::TrafficClass>{pb::PROBE});
  EXPECT_EQ(broker_.classes("c2@t"), std::vector<pb::TrafficClass>{pb::PROBE});
  EXPECT_EQ(broker_.classes("c1@t"), std::vector<pb::TrafficClass>{pb::STREAM});
  (*server)->Shutdown(absl::Seconds(1));
}

}  // namespace
}  // namespace nzbmesh::frontend
