#include "common/metrics/metrics.h"

#include <gtest/gtest.h>

namespace nzbmesh::metrics {
namespace {

TEST(MetricsTest, CounterGaugeHistogramSerializeInTextFormat) {
  Registry registry;
  auto& requests = BuildCounter().Name("nzbmesh_test_requests_total").Help("Requests.").Register(registry);
  requests.Add({{"class", "stream"}}).Increment();
  requests.Add({{"class", "stream"}}).Increment(2);
  requests.Add({{"class", "import"}}).Increment(-5);  // ignored: counters only go up
  auto& open = BuildGauge().Name("nzbmesh_test_open").Help("Open things.").Register(registry);
  open.Add({}).Set(3.5);
  auto& lat = BuildHistogram().Name("nzbmesh_test_latency_seconds").Help("Latency.").Register(registry);
  auto& h = lat.Add({{"class", "stream"}}, Histogram::BucketBoundaries{0.1, 1});
  h.Observe(0.05);
  h.Observe(0.5);
  h.Observe(5);

  const std::string text = registry.Serialize();
  EXPECT_NE(text.find("# TYPE nzbmesh_test_requests_total counter\n"), std::string::npos) << text;
  EXPECT_NE(text.find("nzbmesh_test_requests_total{class=\"stream\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("nzbmesh_test_requests_total{class=\"import\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("nzbmesh_test_open 3.5\n"), std::string::npos) << text;
  EXPECT_NE(text.find("nzbmesh_test_latency_seconds_bucket{class=\"stream\",le=\"0.1\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("nzbmesh_test_latency_seconds_bucket{class=\"stream\",le=\"1\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("nzbmesh_test_latency_seconds_bucket{class=\"stream\",le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("nzbmesh_test_latency_seconds_count{class=\"stream\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("nzbmesh_test_latency_seconds_sum{class=\"stream\"} 5.55\n"), std::string::npos);
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  Registry registry;
  BuildCounter().Name("x_total").Help("a\nb").Register(registry).Add({{"p", "a\"b\\c\nd"}}).Increment();
  const std::string text = registry.Serialize();
  EXPECT_NE(text.find("# HELP x_total a\\nb\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_total{p=\"a\\\"b\\\\c\\nd\"} 1\n"), std::string::npos) << text;
}

TEST(MetricsTest, UnboundedLabelsFoldIntoOverflowSeries) {
  Registry registry;
  auto& fam = BuildCounter().Name("y_total").Help("y").Register(registry);
  for (int i = 0; i < FamilyBase::kMaxSeriesPerFamily + 50; ++i) fam.Add({{"id", std::to_string(i)}}).Increment();
  const std::string text = registry.Serialize();
  EXPECT_NE(text.find("y_total{overflow=\"true\"} 50\n"), std::string::npos);
}

TEST(MetricsTest, CollectCallbacksRunBeforeSerialize) {
  Registry registry;
  auto& g = BuildGauge().Name("z").Help("z").Register(registry).Add({});
  int calls = 0;
  registry.AddCollectCallback([&] { g.Set(++calls); });
  EXPECT_NE(registry.Serialize().find("z 1\n"), std::string::npos);
  EXPECT_NE(registry.Serialize().find("z 2\n"), std::string::npos);
}

}  // namespace
}  // namespace nzbmesh::metrics
