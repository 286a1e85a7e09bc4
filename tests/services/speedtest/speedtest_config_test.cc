#include "services/speedtest/speedtest_config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace nzbmesh::speedtest {
namespace {

constexpr char kNzb[] = R"(<?xml version="1.0" encoding="utf-8"?>
<nzb xmlns="http://www.newzbin.com/DTD/2003/nzb">
  <file poster="p" date="1" subject="s">
    <groups><group>alt.test</group></groups>
    <segments>
      <segment bytes="10" number="1">a1@x</segment>
      <segment bytes="10" number="2"> &lt;a2@x&gt; </segment>
    </segments>
  </file>
</nzb>)";

TEST(SpeedTestConfigTest, ReadsEveryKeyAndPerProviderArticles) {
  const std::string nzb_path = absl::StrCat(::testing::TempDir(), "/test.nzb");
  std::ofstream(nzb_path) << kNzb;
  auto file = config::ConfigFile::Parse(absl::StrCat(R"(
speedtest:
  grpc_listen: 127.0.0.1:0
  broker: 10.0.0.1:50051
  database_url_env: ""
  result_ttl: 30s
  max_runs_per_caller: 3
  default_message_ids: ["<d1@x>", "d2@x"]
  tests:
    - provider: main
      message_ids: [m1@x]
      nzb: )", nzb_path, "\n  typo: 1\n"),
                                        "inline");
  ASSERT_TRUE(file.ok()) << file.status();
  auto c = ParseSpeedTestConfig(*file);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->broker, "10.0.0.1:50051");
  EXPECT_EQ(c->database_url_env, "");
  EXPECT_EQ(c->tester.result_ttl, absl::Seconds(30));
  EXPECT_EQ(c->tester.max_runs_per_caller, 3);
  EXPECT_EQ(c->tester.default_message_ids, (std::vector<std::string>{"d1@x", "d2@x"}));
  EXPECT_EQ(c->tester.message_ids["main"], (std::vector<std::string>{"m1@x", "a1@x", "a2@x"}));
  EXPECT_EQ(c->unknown_keys, (std::vector<std::string>{"speedtest.typo"}));
}

TEST(SpeedTestConfigTest, DefaultsMatchTheArchitecture) {
  auto file = config::ConfigFile::Parse("speedtest: {}\n", "inline");
  ASSERT_TRUE(file.ok());
  auto c = ParseSpeedTestConfig(*file);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->service.grpc_listen, "127.0.0.1:50053");
  EXPECT_EQ(c->service.metrics_listen, "127.0.0.1:9094");
  EXPECT_EQ(c->broker, "127.0.0.1:50051");
  EXPECT_EQ(c->tester.result_ttl, absl::Seconds(60));
}

TEST(SpeedTestConfigTest, RejectsBadValuesWithTheKey) {
  auto file = config::ConfigFile::Parse("speedtest:\n  tests:\n    - provider: main\n", "inline");
  ASSERT_TRUE(file.ok());
  auto c = ParseSpeedTestConfig(*file);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("message_ids or nzb is required"), std::string::npos) << c.status();
  EXPECT_EQ(MessageIdsFromNzb("<nzb/>").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MessageIdsFromNzb("not xml <").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nzbmesh::speedtest
