#include "services/importer/importer_config.h"

#include <cstdlib>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace nzbmesh::importer {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<ImporterConfig> Parse(const std::string& yaml) {
  auto f = config::ConfigFile::Parse(yaml, "test.yaml");
  if (!f.ok()) return f.status();
  return ParseImporterConfig(*f);
}

TEST(ImporterConfig, ReadsEveryKeyAndTheSecretFromTheEnvironment) {
  setenv("TEST_IMPORTER_DB", "postgresql://u@h/db", 1);
  auto c = Parse(R"(
importer:
  grpc_listen: 127.0.0.1:6000
  metrics_listen: ""
  broker: broker:50051
  database_url_env: TEST_IMPORTER_DB
  watch_dir: /tmp/watch
  watch_interval: 2s
  watch_settle: 90s
  workers: 3
  import_fetch_concurrency: 6
  heartbeat_interval: 2s
  heartbeat_timeout: 10s
  max_attempts: 5
  retry_backoff: 1m
  health: {enabled: true, interval: 30m, sample: 4}
  filter: {extensions: [mkv, srt], drop_samples: false}
broker:
  providers: []
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->service.grpc_listen, "127.0.0.1:6000");
  EXPECT_EQ(c->service.metrics_listen, "");
  EXPECT_EQ(c->broker, "broker:50051");
  EXPECT_EQ(c->store.url, "postgresql://u@h/db");
  EXPECT_EQ(c->watch_dir, "/tmp/watch");
  EXPECT_EQ(c->watch_interval, absl::Seconds(2));
  EXPECT_EQ(c->watch_settle, absl::Seconds(90));
  EXPECT_EQ(c->workers.workers, 3);
  EXPECT_EQ(c->pipeline.fetch_concurrency, 6);
  EXPECT_EQ(c->workers.heartbeat_timeout, absl::Seconds(10));
  EXPECT_EQ(c->queue.max_attempts, 5);
  EXPECT_EQ(c->workers.retry_backoff, absl::Minutes(1));
  EXPECT_TRUE(c->health.enabled);
  EXPECT_EQ(c->health.interval, absl::Minutes(30));
  EXPECT_EQ(c->health.sample, 4);
  EXPECT_THAT(c->pipeline.filter.allowed_extensions, ::testing::ElementsAre("mkv", "srt"));
  EXPECT_FALSE(c->pipeline.filter.drop_samples);
  EXPECT_TRUE(c->unknown_keys.empty());
}

TEST(ImporterConfig, DefaultsMatchTheDocumentedShape) {
  setenv("NZBMESH_DATABASE_URL", "postgresql://x@y/z", 1);
  auto c = Parse("importer: {}\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->service.grpc_listen, "127.0.0.1:50052");
  EXPECT_EQ(c->service.metrics_listen, "127.0.0.1:9092");
  EXPECT_EQ(c->broker, "127.0.0.1:50051");
  EXPECT_EQ(c->store.url, "postgresql://x@y/z");
  EXPECT_FALSE(c->health.enabled);
  EXPECT_EQ(c->queue.max_attempts, 3);
}

TEST(ImporterConfig, MisconfigurationFailsWithTheKey) {
  setenv("TEST_IMPORTER_DB", "postgresql://u@h/db", 1);
  auto bad_hb = Parse("importer:\n  database_url_env: TEST_IMPORTER_DB\n  heartbeat_interval: 5s\n  heartbeat_timeout: 5s\n");
  EXPECT_THAT(bad_hb.status().message(), HasSubstr("heartbeat_timeout"));
  auto bad_fan = Parse("importer:\n  database_url_env: TEST_IMPORTER_DB\n  import_fetch_concurrency: 0\n");
  EXPECT_THAT(bad_fan.status().message(), HasSubstr("import_fetch_concurrency"));
  unsetenv("NZBMESH_DATABASE_URL");
  auto no_db = Parse("importer: {}\n");
  EXPECT_THAT(no_db.status().message(), HasSubstr("database"));
  auto typo = Parse("importer:\n  database_url_env: TEST_IMPORTER_DB\n  wokers: 3\n");
  ASSERT_TRUE(typo.ok());
  EXPECT_THAT(typo->unknown_keys, ::testing::ElementsAre("importer.wokers"));
}

}  // namespace
}  // namespace nzbmesh::importer
