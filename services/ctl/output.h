// nzbmeshctl output: aligned tables for humans (kubectl style: upper-case
// headers, two spaces between columns) and JSON for scripts (protobuf
// messages with their proto field names, every field present).
#ifndef NZBMESH_SERVICES_CTL_OUTPUT_H_
#define NZBMESH_SERVICES_CTL_OUTPUT_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include <google/protobuf/message.h>

namespace nzbmesh::ctl {

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  // Missing cells print empty; extra cells are an error (CHECKed).
  void AddRow(std::vector<std::string> cells);
  void Print(std::ostream& out) const;
  size_t rows() const { return rows_.size(); }

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// "key: value" lines, keys aligned (detail views: `job ID`, `stat PATH`).
class Details {
 public:
  void Add(std::string key, std::string value) { rows_.emplace_back(std::move(key), std::move(value)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::pair<std::string, std::string>> rows_;
};

// Pretty JSON of a message, newline-terminated.
std::string ToJson(const google::protobuf::Message& m);
// A JSON string literal.
std::string JsonString(const std::string& s);

// Human formats: 1.5 MiB, 2m3s ago, 12.3 MB/s, 2026-01-02 15:04:05 (UTC).
std::string HumanBytes(int64_t bytes);
std::string HumanRate(double megabytes_per_second);
std::string HumanTime(int64_t unix_ms);
std::string HumanSeconds(double seconds);

}  // namespace nzbmesh::ctl

#endif  // NZBMESH_SERVICES_CTL_OUTPUT_H_
