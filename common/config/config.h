// Loading nzbmesh.yaml: one file, one section per service (broker, importer,
// frontend, speedtest). Each service reads its own section through a
// SectionReader, which records every key it was asked for so that keys nobody
// asked for are reported (typos are the commonest configuration bug).
//
// Secrets never appear in the file: a field `password_env: NAME` names an
// environment variable and `password_file: PATH` a file (Kubernetes Secret
// mounts); ResolveSecret reads them. Secret values are never logged.
#ifndef NZBMESH_COMMON_CONFIG_CONFIG_H_
#define NZBMESH_COMMON_CONFIG_CONFIG_H_

#include <memory>
#include <set>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace nzbmesh::config {

// Reads typed values from one YAML mapping. Errors name the full key path
// ("broker.providers[0].port: expected an integer, got \"abc\"").
class SectionReader {
 public:
  SectionReader(YAML::Node node, std::string path);

  bool Has(const std::string& key) const;
  absl::StatusOr<std::string> String(const std::string& key, const std::string& def = "");
  absl::StatusOr<int64_t> Int(const std::string& key, int64_t def = 0);
  absl::StatusOr<double> Double(const std::string& key, double def = 0);
  absl::StatusOr<bool> Bool(const std::string& key, bool def = false);
  // Durations as "250ms", "30s", "5m", "1h" (absl::ParseDuration) or bare seconds.
  absl::StatusOr<absl::Duration> Duration(const std::string& key, absl::Duration def);
  absl::StatusOr<std::vector<std::string>> StringList(const std::string& key);
  // Sub-readers for a nested mapping and for each element of a sequence of mappings.
  absl::StatusOr<SectionReader> Child(const std::string& key);
  absl::StatusOr<std::vector<SectionReader>> List(const std::string& key);

  // Reads `<prefix>_env` or `<prefix>_file` (or the literal `<prefix>` when
  // allow_literal) and returns the secret. Missing everything → "" (OK).
  absl::StatusOr<std::string> Secret(const std::string& prefix, bool allow_literal = false);

  // Keys present in the mapping that were never read (full paths), including
  // those of child readers created from this one.
  std::vector<std::string> UnknownKeys() const;
  const std::string& path() const { return path_; }

 private:
  absl::StatusOr<YAML::Node> Get(const std::string& key);
  YAML::Node node_;
  std::string path_;
  struct Entry {
    YAML::Node node;
    std::string path;
    std::shared_ptr<std::set<std::string>> used;
  };
  SectionReader MakeChild(YAML::Node node, std::string path);
  std::shared_ptr<std::set<std::string>> used_;  // keys read from node_
  std::shared_ptr<std::vector<Entry>> tree_;     // every reader of this tree, for UnknownKeys
};

class ConfigFile {
 public:
  // Parses the file. An empty or missing section is an empty mapping.
  static absl::StatusOr<ConfigFile> Load(const std::string& path);
  static absl::StatusOr<ConfigFile> Parse(const std::string& yaml_text, const std::string& origin);

  // The reader of one service's section ("broker", ...).
  SectionReader Section(const std::string& name) const;
  const std::string& origin() const { return origin_; }

 private:
  YAML::Node root_;
  std::string origin_;
};

// The config path from --config, else $NZBMESH_CONFIG, else "nzbmesh.yaml".
std::string DefaultConfigPath(const std::string& flag_value);

// Reads an environment variable or a file (trailing newline stripped).
absl::StatusOr<std::string> ReadSecretEnv(const std::string& env_name);
absl::StatusOr<std::string> ReadSecretFile(const std::string& path);

}  // namespace nzbmesh::config

#endif  // NZBMESH_COMMON_CONFIG_CONFIG_H_
