// Issue 3, "done when": fetching a 100 MiB file posted to the test server over
// 8 pipelined connections reproduces the file byte for byte (SHA-256).
#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/nntp/connection.h"
#include "gtest/gtest.h"
#include "tests/common/nntp/test_data.h"
#include "tests/fakes/nntp_server/nntp_server.h"

namespace nzbmesh::nntp {
namespace {

using ::nzbmesh::nntp::testing::RandomBytes;
using ::nzbmesh::nntp::testing::Sha256Hex;
using ::nzbmesh::testing::FakeNntpServer;

TEST(LargeFile, HundredMiBOverEightPipelinedConnectionsIsByteExact) {
  constexpr int64_t kSize = 100 << 20;
  constexpr int kConnections = 8;
  constexpr int kDepth = 4;
  const std::string data = RandomBytes(kSize, 42);
  const std::string want = Sha256Hex(data);
  auto server = FakeNntpServer::Start({});
  ASSERT_TRUE(server.ok()) << server.status();
  const absl::Time post_start = absl::Now();
  const auto file = (*server)->PostFile("big file.bin", data, 768000, "big");
  const absl::Duration post_time = absl::Now() - post_start;
  ASSERT_EQ(file.segments.size(), static_cast<size_t>((kSize + 767999) / 768000));

  std::string result(kSize, '\0');
  std::atomic<size_t> next{0};
  std::vector<std::string> errors(kConnections);
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kConnections; ++t) {
    threads.emplace_back([&, t] {
      ConnectionOptions o;
      o.host = "127.0.0.1";
      o.port = (*server)->port();
      auto c = Connection::Dial(o);
      if (!c.ok()) {
        errors[t] = c.status().ToString();
        return;
      }
      std::vector<size_t> window;  // segment indexes in flight, oldest first
      auto refill = [&] {
        while (static_cast<int>(window.size()) < kDepth) {
          size_t i = next.fetch_add(1);
          if (i >= file.segments.size()) break;
          (*c)->SendBody(file.segments[i].message_id);
          window.push_back(i);
        }
        return (*c)->Flush();
      };
      std::string out;
      out.reserve(1 << 20);
      absl::Status s = refill();
      while (s.ok() && !window.empty()) {
        const size_t i = window.front();
        window.erase(window.begin());
        auto info = (*c)->ReadBody(&out);
        if (!info.ok()) {
          s = info.status();
          break;
        }
        const auto& seg = file.segments[i];
        if (static_cast<int64_t>(out.size()) != seg.size || info->crc32 != seg.crc32) {
          s = absl::DataLossError(absl::StrCat("segment ", i, " size/crc mismatch"));
          break;
        }
        std::memcpy(result.data() + seg.offset, out.data(), out.size());
        s = refill();
      }
      if (!s.ok()) errors[t] = s.ToString();
    });
  }
  for (auto& th : threads) th.join();
  const absl::Duration fetch_time = absl::Now() - start;
  for (int t = 0; t < kConnections; ++t) EXPECT_EQ(errors[t], "") << "connection " << t;
  EXPECT_EQ(Sha256Hex(result), want);
  EXPECT_EQ((*server)->max_concurrent_connections(), kConnections);
  EXPECT_EQ((*server)->connections_accepted(), kConnections);
  EXPECT_LE((*server)->max_in_flight_per_connection(), kDepth);
  EXPECT_LE((*server)->max_in_flight(), kConnections * kDepth);
  for (const auto& seg : file.segments) EXPECT_EQ((*server)->calls(seg.message_id), 1);
  std::printf("posted 100 MiB in %s; fetched in %s (%.0f MB/s)\n",
              absl::FormatDuration(post_time).c_str(), absl::FormatDuration(fetch_time).c_str(),
              kSize / 1e6 / absl::ToDoubleSeconds(fetch_time));
}

}  // namespace
}  // namespace nzbmesh::nntp
