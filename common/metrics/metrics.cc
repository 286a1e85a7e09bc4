#include "common/metrics/metrics.h"

#include <cmath>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace nzbmesh::metrics {

void Counter::Increment(double v) {
  if (v < 0) return;
  value_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Histogram(BucketBoundaries bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    out[i] = total;
  }
  return out;
}

Histogram::BucketBoundaries ExponentialBuckets(double start, double factor, int count) {
  Histogram::BucketBoundaries b;
  double v = start;
  for (int i = 0; i < count; ++i, v *= factor) b.push_back(v);
  return b;
}

Histogram::BucketBoundaries LatencyBuckets() { return ExponentialBuckets(0.0005, 2.0, 16); }

std::string EscapeLabelValue(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out.push_back(c);
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrFormat("%.0f", v);
  // Shortest of %.15g / %.17g that reads back exactly.
  std::string s = absl::StrFormat("%.15g", v);
  if (std::strtod(s.c_str(), nullptr) == v) return s;
  return absl::StrFormat("%.17g", v);
}

namespace {

std::string LabelString(const Labels& labels, const std::pair<std::string, std::string>* extra = nullptr) {
  if (labels.empty() && extra == nullptr) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    absl::StrAppend(&out, first ? "" : ",", k, "=\"", EscapeLabelValue(v), "\"");
    first = false;
  }
  if (extra != nullptr) {
    absl::StrAppend(&out, first ? "" : ",", extra->first, "=\"", EscapeLabelValue(extra->second), "\"");
  }
  out += "}";
  return out;
}

const char* TypeName(MetricType t) {
  switch (t) {
    case MetricType::kCounter: return "counter";
    case MetricType::kGauge: return "gauge";
    case MetricType::kHistogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

FamilyBase::FamilyBase(std::string name, std::string help, Labels const_labels, MetricType type)
    : name_(std::move(name)), help_(std::move(help)), const_labels_(std::move(const_labels)), type_(type) {}

Labels FamilyBase::Merge(const Labels& labels) const {
  Labels merged = const_labels_;
  for (const auto& [k, v] : labels) merged[k] = v;
  return merged;
}

void FamilyBase::Serialize(std::string* out) const {
  std::string help;
  for (char c : help_) {
    if (c == '\\') help += "\\\\";
    else if (c == '\n') help += "\\n";
    else help.push_back(c);
  }
  absl::StrAppend(out, "# HELP ", name_, " ", help, "\n# TYPE ", name_, " ", TypeName(type_), "\n");
  absl::ReaderMutexLock lock(&mu_);
  SerializeLocked(out);
}

template <>
void Family<Counter>::SerializeLocked(std::string* out) const {
  for (const auto& [labels, c] : series_) {
    absl::StrAppend(out, name_, LabelString(labels), " ", FormatValue(c->Value()), "\n");
  }
}

template <>
void Family<Gauge>::SerializeLocked(std::string* out) const {
  for (const auto& [labels, g] : series_) {
    absl::StrAppend(out, name_, LabelString(labels), " ", FormatValue(g->Value()), "\n");
  }
}

template <>
void Family<Histogram>::SerializeLocked(std::string* out) const {
  for (const auto& [labels, h] : series_) {
    std::vector<uint64_t> counts = h->CumulativeCounts();
    for (size_t i = 0; i < counts.size(); ++i) {
      std::pair<std::string, std::string> le{"le", i < h->bounds().size() ? FormatValue(h->bounds()[i]) : "+Inf"};
      absl::StrAppend(out, name_, "_bucket", LabelString(labels, &le), " ", counts[i], "\n");
    }
    absl::StrAppend(out, name_, "_sum", LabelString(labels), " ", FormatValue(h->Sum()), "\n");
    absl::StrAppend(out, name_, "_count", LabelString(labels), " ", counts.back(), "\n");
  }
}

void Registry::AddCollectCallback(std::function<void()> callback) {
  absl::MutexLock lock(&mu_);
  callbacks_.push_back(std::move(callback));
}

std::string Registry::Serialize() const {
  absl::MutexLock lock(&mu_);
  for (const auto& cb : callbacks_) cb();
  std::string out;
  for (const auto& f : families_) f->Serialize(&out);
  return out;
}

template <typename T>
Family<T>& Builder<T>::Register(Registry& registry) {
  MetricType type = std::is_same_v<T, Counter>   ? MetricType::kCounter
                    : std::is_same_v<T, Gauge> ? MetricType::kGauge
                                               : MetricType::kHistogram;
  return registry.AddFamily<T>(name_, help_, labels_, type);
}

template class Builder<Counter>;
template class Builder<Gauge>;
template class Builder<Histogram>;

Builder<Counter> BuildCounter() { return {}; }
Builder<Gauge> BuildGauge() { return {}; }
Builder<Histogram> BuildHistogram() { return {}; }

}  // namespace nzbmesh::metrics
