// StreamRegistry: ids, the listing's exact JSON, the rate window, and the
// bounded list of recently ended streams.
#include "services/frontend/stream_registry.h"

#include "gtest/gtest.h"

namespace nzbmesh::frontend {
namespace {

const absl::Time kT0 = absl::FromUnixMillis(1700000000000);

ActiveStream::Info MakeInfo(const std::string& path) {
  ActiveStream::Info i;
  i.path = path;
  i.client = "10.0.0.5";
  i.user_agent = "Lavf/59.27.100";
  i.started = kT0;
  i.offset = 4096;
  return i;
}

TEST(StreamRegistry, ListsActiveStreamsWithExactFields) {
  StreamRegistry r({});
  auto s = r.Start(MakeInfo("/dav/movies/\"x\".mkv"), nullptr, [] { return int64_t{786432}; });
  EXPECT_EQ(s->id(), "s1");
  s->AddBytes(1000000, 1004096, kT0 + absl::Milliseconds(500));
  EXPECT_EQ(r.ListJson(kT0 + absl::Milliseconds(500)),
            "{\"streams\":[{\"id\":\"s1\",\"path\":\"/dav/movies/\\\"x\\\".mkv\",\"client\":\"10.0.0.5\","
            "\"user_agent\":\"Lavf/59.27.100\",\"started_unix_ms\":1700000000000,\"offset\":1004096,"
            "\"bytes_sent\":1000000,\"bytes_per_second\":2000000,\"read_ahead_bytes\":786432}],\"recent\":[]}");
}

TEST(StreamRegistry, RateIsLastFullSecondAndDecaysWhenStalled) {
  StreamRegistry r({});
  auto s = r.Start(MakeInfo("/dav/a"), nullptr, nullptr);
  EXPECT_EQ(s->BytesPerSecond(kT0), 0);
  s->AddBytes(1000, 0, kT0 + absl::Milliseconds(250));
  EXPECT_DOUBLE_EQ(s->BytesPerSecond(kT0 + absl::Milliseconds(500)), 2000);  // average so far
  s->AddBytes(3000, 0, kT0 + absl::Seconds(1));                               // closes the window
  EXPECT_DOUBLE_EQ(s->BytesPerSecond(kT0 + absl::Milliseconds(1500)), 4000);
  s->AddBytes(500, 0, kT0 + absl::Milliseconds(1200));  // window still open: last full rate stands
  EXPECT_DOUBLE_EQ(s->BytesPerSecond(kT0 + absl::Milliseconds(1900)), 4000);
  // No window closed for >= 2 s: the rate since it opened, falling.
  EXPECT_DOUBLE_EQ(s->BytesPerSecond(kT0 + absl::Seconds(6)), 100);
  EXPECT_EQ(s->bytes_sent(), 4500);
}

TEST(StreamRegistry, EndedStreamsAreKeptBoundedAndExpire) {
  StreamRegistry r({/*max_recent=*/2, /*keep_recent=*/absl::Minutes(1)});
  auto a = r.Start(MakeInfo("/dav/a"), nullptr, nullptr);
  auto b = r.Start(MakeInfo("/dav/b"), nullptr, nullptr);
  auto c = r.Start(MakeInfo("/dav/c"), nullptr, nullptr);
  a->AddBytes(7, 0, kT0);
  r.End(*a, kT0 + absl::Seconds(1));
  r.End(*a, kT0 + absl::Seconds(2));  // idempotent
  r.End(*b, kT0 + absl::Seconds(3));
  EXPECT_EQ(r.active(), 1u);
  EXPECT_EQ(r.Find("s1"), nullptr);
  EXPECT_EQ(r.Find("s3"), c);
  EXPECT_EQ(r.Find("3"), nullptr);
  EXPECT_EQ(r.Find("s3x"), nullptr);
  std::string json = r.ListJson(kT0 + absl::Seconds(4));
  EXPECT_NE(json.find("\"recent\":[{\"id\":\"s2\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"ended_unix_ms\":1700000001000,\"bytes_sent\":7}]}"), std::string::npos) << json;
  r.End(*c, kT0 + absl::Seconds(5));  // pushes s1 out (max_recent 2)
  json = r.ListJson(kT0 + absl::Seconds(5));
  EXPECT_EQ(json.find("\"id\":\"s1\""), std::string::npos) << json;
  // s2 ended at +3 s: gone after a minute; s3 (+5 s) stays.
  json = r.ListJson(kT0 + absl::Seconds(64));
  EXPECT_EQ(json.find("\"id\":\"s2\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"id\":\"s3\""), std::string::npos) << json;
}

TEST(StreamRegistry, UserAgentIsBoundedAndPrintable) {
  StreamRegistry r({});
  ActiveStream::Info i = MakeInfo("/dav/a");
  i.user_agent = std::string("a\x01\xff", 3) + std::string(300, 'b');
  auto s = r.Start(i, nullptr, nullptr);
  EXPECT_EQ(s->info().user_agent.size(), 200u);
  EXPECT_EQ(s->info().user_agent.substr(0, 4), "a??b");
}

}  // namespace
}  // namespace nzbmesh::frontend
