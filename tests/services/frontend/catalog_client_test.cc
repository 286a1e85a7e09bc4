// CachingCatalogClient: TTL, bound, invalidation on delete.
#include "services/frontend/catalog_client.h"

#include "gtest/gtest.h"
#include "tests/services/frontend/fake_catalog.h"

namespace nzbmesh::frontend {
namespace {

using testing::FakeCatalog;

FileLayout Layout(const std::string& path) {
  FileLayout l;
  l.mutable_entry()->set_path(path);
  l.mutable_entry()->set_size(1);
  return l;
}

absl::StatusOr<std::shared_ptr<const FileLayout>> Get(CatalogClient& c, const std::string& path) {
  absl::StatusOr<std::shared_ptr<const FileLayout>> out;
  c.GetFileLayout(path, [&](auto r) { out = std::move(r); });  // the fake answers inline
  return out;
}

TEST(CachingCatalogClient, ServesLayoutFromCacheUntilTtl) {
  FakeCatalog inner;
  inner.AddFile(Layout("/a/b/c"));
  SimulatedClock clock;
  CachingCatalogClient c(&inner, {.max_entries = 10, .ttl = absl::Minutes(1), .clock = &clock});
  ASSERT_TRUE(Get(c, "/a/b/c").ok());
  ASSERT_TRUE(Get(c, "/a/b/c").ok());
  EXPECT_EQ(inner.layout_calls(), 1);
  EXPECT_EQ(c.hits(), 1);
  clock.AdvanceTime(absl::Seconds(61));
  ASSERT_TRUE(Get(c, "/a/b/c").ok());
  EXPECT_EQ(inner.layout_calls(), 2);
}

absl::StatusOr<importer::v1::Entry> StatOf(CatalogClient& c, const std::string& path) {
  absl::StatusOr<importer::v1::Entry> out;
  c.Stat(path, [&](auto r) { out = std::move(r); });  // inline, from the cache or the fake
  return out;
}

// A file being played: its GETs and seeks Stat it each time. Once its layout
// is cached, those within stat_ttl of the catalog's last word on the file
// are answered from the cache; later ones ask the catalog again, and a file
// the catalog no longer has loses its cached layout at once.
TEST(CachingCatalogClient, StatOfAFileTheCatalogJustConfirmedMakesNoCatalogCall) {
  FakeCatalog inner;
  inner.AddFile(Layout("/a/b/c"));
  SimulatedClock clock;
  CachingCatalogClient c(&inner, {.max_entries = 10, .ttl = absl::Minutes(5), .stat_ttl = absl::Seconds(10),
                                  .clock = &clock});
  ASSERT_TRUE(StatOf(c, "/a/b/c").ok());  // not cached yet
  EXPECT_EQ(inner.stat_calls(), 1);
  ASSERT_TRUE(Get(c, "/a/b/c").ok());  // cached, confirmed now
  for (int i = 0; i < 3; ++i) {
    auto e = StatOf(c, "/a/b/c");
    ASSERT_TRUE(e.ok()) << e.status();
    EXPECT_EQ(e->path(), "/a/b/c");
    EXPECT_EQ(e->size(), 1);
  }
  EXPECT_EQ(inner.stat_calls(), 1);
  EXPECT_EQ(c.stat_hits(), 3);
  EXPECT_TRUE(StatOf(c, "/a/b").ok());  // a directory: the catalog answers
  EXPECT_EQ(inner.stat_calls(), 2);
  clock.AdvanceTime(absl::Seconds(11));  // past stat_ttl: the catalog confirms it again...
  ASSERT_TRUE(StatOf(c, "/a/b/c").ok());
  EXPECT_EQ(inner.stat_calls(), 3);
  ASSERT_TRUE(StatOf(c, "/a/b/c").ok());  // ...and the next one is from the cache
  EXPECT_EQ(inner.stat_calls(), 3);
  // Deleted elsewhere (another frontend, the importer's API): within
  // stat_ttl of the last confirmation it still answers; after it the
  // catalog's NOT_FOUND drops the cached layout too.
  absl::StatusOr<int64_t> deleted;
  inner.DeletePath("/a/b/c", [&](auto r) { deleted = r; });
  ASSERT_TRUE(deleted.ok());
  EXPECT_TRUE(StatOf(c, "/a/b/c").ok());
  clock.AdvanceTime(absl::Seconds(11));
  EXPECT_EQ(StatOf(c, "/a/b/c").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c.size(), 0u);
  const int layouts = inner.layout_calls();
  EXPECT_EQ(Get(c, "/a/b/c").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(inner.layout_calls(), layouts + 1);
}

// A delete through this client drops the cached file at once: its next Stat
// asks the catalog.
TEST(CachingCatalogClient, StatAfterADeleteHereAsksTheCatalog) {
  FakeCatalog inner;
  inner.AddFile(Layout("/a/b/c"));
  CachingCatalogClient c(&inner, {});
  ASSERT_TRUE(Get(c, "/a/b/c").ok());
  ASSERT_TRUE(StatOf(c, "/a/b/c").ok());
  EXPECT_EQ(inner.stat_calls(), 0);
  absl::StatusOr<int64_t> deleted;
  c.DeletePath("/a/b/c", [&](auto r) { deleted = r; });
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(StatOf(c, "/a/b/c").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(inner.stat_calls(), 1);
}

TEST(CachingCatalogClient, IsBounded) {
  FakeCatalog inner;
  for (int i = 0; i < 5; ++i) inner.AddFile(Layout("/a/b/" + std::to_string(i)));
  CachingCatalogClient c(&inner, {.max_entries = 3});
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Get(c, "/a/b/" + std::to_string(i)).ok());
  EXPECT_EQ(c.size(), 3u);
  ASSERT_TRUE(Get(c, "/a/b/4").ok());  // most recent: still cached
  EXPECT_EQ(inner.layout_calls(), 5);
  ASSERT_TRUE(Get(c, "/a/b/0").ok());  // evicted
  EXPECT_EQ(inner.layout_calls(), 6);
}

TEST(CachingCatalogClient, DeleteInvalidatesPathAndBelow) {
  FakeCatalog inner;
  inner.AddFile(Layout("/tv/show/e1.mkv"));
  inner.AddFile(Layout("/tv/show/e2.mkv"));
  inner.AddFile(Layout("/tv/showx/e1.mkv"));
  CachingCatalogClient c(&inner, {});
  for (auto p : {"/tv/show/e1.mkv", "/tv/show/e2.mkv", "/tv/showx/e1.mkv"}) ASSERT_TRUE(Get(c, p).ok());
  absl::StatusOr<int64_t> deleted;
  c.DeletePath("/tv/show", [&](auto r) { deleted = r; });
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 2);
  EXPECT_EQ(c.size(), 1u);  // the sibling with a common prefix stays
  EXPECT_EQ(Get(c, "/tv/show/e1.mkv").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Get(c, "/tv/showx/e1.mkv").ok());
}

TEST(CachingCatalogClient, ErrorsAreNotCached) {
  FakeCatalog inner;
  CachingCatalogClient c(&inner, {});
  EXPECT_EQ(Get(c, "/x").status().code(), absl::StatusCode::kNotFound);
  inner.AddFile(Layout("/x"));
  EXPECT_TRUE(Get(c, "/x").ok());
}

}  // namespace
}  // namespace nzbmesh::frontend
