// A small Prometheus client: registry, metric families, builders and a text
// exposition serializer. prometheus-cpp is not packaged on Debian 12, so this
// mirrors its API shape (BuildCounter().Name().Help().Register(registry),
// family.Add(labels)) to keep a later swap mechanical.
//
// Thread safety: metric updates are lock-free atomics; Family::Add and
// serialization take the family's mutex. Resolve metric handles once at
// construction and keep the references: they stay valid for the registry's
// lifetime. Label values must come from bounded sets (provider, class,
// result, reason): a family refuses more than kMaxSeriesPerFamily series and
// folds the excess into one series labelled {overflow="true"}.
#ifndef NZBMESH_COMMON_METRICS_METRICS_H_
#define NZBMESH_COMMON_METRICS_METRICS_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace nzbmesh::metrics {

using Labels = std::map<std::string, std::string>;

class Counter {
 public:
  // Adds v (must be >= 0; negative values are ignored).
  void Increment(double v = 1.0);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Increment(double v = 1.0) { value_.fetch_add(v, std::memory_order_relaxed); }
  void Decrement(double v = 1.0) { value_.fetch_sub(v, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  using BucketBoundaries = std::vector<double>;
  explicit Histogram(BucketBoundaries bounds);
  void Observe(double v);
  // Snapshot for serialization and tests: cumulative counts per bound, +Inf last.
  std::vector<uint64_t> CumulativeCounts() const;
  const BucketBoundaries& bounds() const { return bounds_; }
  double Sum() const { return sum_.load(std::memory_order_relaxed); }
  uint64_t Count() const { return count_.load(std::memory_order_relaxed); }

 private:
  const BucketBoundaries bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1 (+Inf)
  std::atomic<double> sum_{0};
  std::atomic<uint64_t> count_{0};
};

// Exponential bucket bounds: start, start*factor, ... (count values).
Histogram::BucketBoundaries ExponentialBuckets(double start, double factor, int count);
// Default latency buckets in seconds: 0.5 ms .. ~16 s.
Histogram::BucketBoundaries LatencyBuckets();

enum class MetricType { kCounter, kGauge, kHistogram };

class FamilyBase {
 public:
  static constexpr int kMaxSeriesPerFamily = 1000;
  FamilyBase(std::string name, std::string help, Labels const_labels, MetricType type);
  virtual ~FamilyBase() = default;
  const std::string& name() const { return name_; }
  void Serialize(std::string* out) const;

 protected:
  virtual void SerializeLocked(std::string* out) const ABSL_SHARED_LOCKS_REQUIRED(mu_) = 0;
  Labels Merge(const Labels& labels) const;
  const std::string name_;
  const std::string help_;
  const Labels const_labels_;
  const MetricType type_;
  mutable absl::Mutex mu_;  // protects each derived family's series map
};

template <typename T>
class Family : public FamilyBase {
 public:
  using FamilyBase::FamilyBase;
  // Returns the series for `labels`, creating it on first use.
  template <typename... Args>
  T& Add(const Labels& labels, Args&&... args) {
    absl::MutexLock lock(&mu_);
    Labels key = Merge(labels);
    auto it = series_.find(key);
    if (it != series_.end()) return *it->second;
    if (static_cast<int>(series_.size()) >= kMaxSeriesPerFamily) {
      key = Merge({{"overflow", "true"}});
      it = series_.find(key);
      if (it != series_.end()) return *it->second;
    }
    auto [pos, inserted] = series_.emplace(std::move(key), std::make_unique<T>(std::forward<Args>(args)...));
    return *pos->second;
  }

 protected:
  void SerializeLocked(std::string* out) const override ABSL_SHARED_LOCKS_REQUIRED(mu_);

 private:
  std::map<Labels, std::unique_ptr<T>> series_ ABSL_GUARDED_BY(mu_);
};

class Registry {
 public:
  // Runs before every Serialize(): lets owners refresh gauges from live state
  // (e.g. connections by state). Callbacks must be cheap and must not call
  // back into the registry's Serialize.
  void AddCollectCallback(std::function<void()> callback);
  // Prometheus text exposition format 0.0.4.
  std::string Serialize() const;

  template <typename T>
  Family<T>& AddFamily(std::string name, std::string help, Labels const_labels, MetricType type) {
    absl::MutexLock lock(&mu_);
    auto family = std::make_unique<Family<T>>(std::move(name), std::move(help), std::move(const_labels), type);
    Family<T>& ref = *family;
    families_.push_back(std::move(family));
    return ref;
  }

 private:
  mutable absl::Mutex mu_;  // protects families_ and callbacks_
  std::vector<std::unique_ptr<FamilyBase>> families_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> callbacks_ ABSL_GUARDED_BY(mu_);
};

template <typename T>
class Builder {
 public:
  Builder& Name(std::string name) { name_ = std::move(name); return *this; }
  Builder& Help(std::string help) { help_ = std::move(help); return *this; }
  Builder& Labels(metrics::Labels labels) { labels_ = std::move(labels); return *this; }
  Family<T>& Register(Registry& registry);

 private:
  std::string name_;
  std::string help_;
  metrics::Labels labels_;
};

Builder<Counter> BuildCounter();
Builder<Gauge> BuildGauge();
Builder<Histogram> BuildHistogram();

// Escapes a label value per the exposition format (\\, \", \n).
std::string EscapeLabelValue(const std::string& v);
// Formats a sample value: integers without exponent, +Inf/-Inf/NaN spelled out.
std::string FormatValue(double v);

}  // namespace nzbmesh::metrics

#endif  // NZBMESH_COMMON_METRICS_METRICS_H_
