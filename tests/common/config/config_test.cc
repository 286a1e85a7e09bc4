#include "common/config/config.h"

#include <cstdlib>

#include <gtest/gtest.h>

namespace nzbmesh::config {
namespace {

TEST(ConfigTest, ReadsTypedValuesAndReportsUnknownKeys) {
  auto f = ConfigFile::Parse(R"(
broker:
  grpc_listen: 127.0.0.1:50051
  stream_headroom: 8
  throttle_restore: 30s
  providers:
    - name: main
      port: 563
      max_conections: 20
frontend:
  http_listen: 127.0.0.1:8080
)", "test.yaml");
  ASSERT_TRUE(f.ok()) << f.status();
  SectionReader broker = f->Section("broker");
  EXPECT_EQ(*broker.String("grpc_listen"), "127.0.0.1:50051");
  EXPECT_EQ(*broker.Int("stream_headroom", 1), 8);
  EXPECT_EQ(*broker.Int("missing", 7), 7);
  EXPECT_EQ(*broker.Duration("throttle_restore", absl::ZeroDuration()), absl::Seconds(30));
  auto providers = broker.List("providers");
  ASSERT_TRUE(providers.ok());
  ASSERT_EQ(providers->size(), 1u);
  EXPECT_EQ(*(*providers)[0].String("name"), "main");
  EXPECT_EQ(*(*providers)[0].Int("port"), 563);
  EXPECT_EQ(*(*providers)[0].Int("max_connections", 10), 10);
  std::vector<std::string> unknown = broker.UnknownKeys();
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_EQ(unknown[0], "broker.providers[0].max_conections");
}

TEST(ConfigTest, BadValuesNameTheKey) {
  auto f = ConfigFile::Parse("broker:\n  port: abc\n  grace: soon\n", "t.yaml");
  ASSERT_TRUE(f.ok());
  SectionReader s = f->Section("broker");
  EXPECT_EQ(s.Int("port").status().message(), "broker.port: expected an integer, got \"abc\"");
  EXPECT_NE(s.Duration("grace", absl::Seconds(1)).status().message().find("broker.grace: expected a duration"),
            std::string::npos);
}

TEST(ConfigTest, SecretsComeFromEnvOrFileNeverTheFile) {
  setenv("NZBMESH_TEST_SECRET", "hunter2", 1);
  auto f = ConfigFile::Parse("a:\n  password_env: NZBMESH_TEST_SECRET\nb:\n  password: plain\nc:\n  password_env: NZBMESH_UNSET_X\n",
                             "t.yaml");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f->Section("a").Secret("password"), "hunter2");
  auto b = f->Section("b").Secret("password");
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find("use password_env or password_file"), std::string::npos);
  auto c = f->Section("c").Secret("password");
  EXPECT_EQ(c.status().message(), "environment variable NZBMESH_UNSET_X is not set");
}

TEST(ConfigTest, InvalidYamlIsAClearError) {
  auto f = ConfigFile::Parse("broker: [\n", "bad.yaml");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("bad.yaml: invalid YAML"), std::string::npos);
}

}  // namespace
}  // namespace nzbmesh::config
