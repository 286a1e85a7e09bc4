#include "common/config/config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace nzbmesh::config {

SectionReader::SectionReader(YAML::Node node, std::string path)
    : node_(std::move(node)),
      path_(std::move(path)),
      used_(std::make_shared<std::set<std::string>>()),
      tree_(std::make_shared<std::vector<Entry>>()) {
  tree_->push_back({node_, path_, used_});
}

SectionReader SectionReader::MakeChild(YAML::Node node, std::string path) {
  SectionReader child(node, path);
  child.tree_ = tree_;
  tree_->push_back({child.node_, child.path_, child.used_});
  return child;
}

bool SectionReader::Has(const std::string& key) const {
  return node_.IsMap() && node_[key].IsDefined() && !node_[key].IsNull();
}

absl::StatusOr<YAML::Node> SectionReader::Get(const std::string& key) {
  used_->insert(key);
  if (!node_.IsDefined() || node_.IsNull()) return YAML::Node();
  if (!node_.IsMap()) return absl::InvalidArgumentError(absl::StrCat(path_, ": expected a mapping"));
  return node_[key];
}

namespace {
std::string Scalar(const YAML::Node& n) { return n.IsScalar() ? n.Scalar() : std::string(); }
}  // namespace

absl::StatusOr<std::string> SectionReader::String(const std::string& key, const std::string& def) {
  auto n = Get(key);
  if (!n.ok()) return n.status();
  if (!n->IsDefined() || n->IsNull()) return def;
  if (!n->IsScalar()) return absl::InvalidArgumentError(absl::StrCat(path_, ".", key, ": expected a string"));
  return n->Scalar();
}

absl::StatusOr<int64_t> SectionReader::Int(const std::string& key, int64_t def) {
  auto n = Get(key);
  if (!n.ok()) return n.status();
  if (!n->IsDefined() || n->IsNull()) return def;
  int64_t v = 0;
  if (!n->IsScalar() || !absl::SimpleAtoi(Scalar(*n), &v)) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ".", key, ": expected an integer, got \"", Scalar(*n), "\""));
  }
  return v;
}

absl::StatusOr<double> SectionReader::Double(const std::string& key, double def) {
  auto n = Get(key);
  if (!n.ok()) return n.status();
  if (!n->IsDefined() || n->IsNull()) return def;
  double v = 0;
  if (!n->IsScalar() || !absl::SimpleAtod(Scalar(*n), &v)) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ".", key, ": expected a number, got \"", Scalar(*n), "\""));
  }
  return v;
}

absl::StatusOr<bool> SectionReader::Bool(const std::string& key, bool def) {
  auto n = Get(key);
  if (!n.ok()) return n.status();
  if (!n->IsDefined() || n->IsNull()) return def;
  bool v = false;
  if (!n->IsScalar() || !absl::SimpleAtob(Scalar(*n), &v)) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ".", key, ": expected true or false, got \"", Scalar(*n), "\""));
  }
  return v;
}

absl::StatusOr<absl::Duration> SectionReader::Duration(const std::string& key, absl::Duration def) {
  auto n = Get(key);
  if (!n.ok()) return n.status();
  if (!n->IsDefined() || n->IsNull()) return def;
  std::string s = Scalar(*n);
  absl::Duration d;
  double seconds = 0;
  if (absl::SimpleAtod(s, &seconds)) return absl::Seconds(seconds);
  if (!n->IsScalar() || !absl::ParseDuration(s, &d)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ".", key, ": expected a duration like \"30s\" or \"250ms\", got \"", s, "\""));
  }
  return d;
}

absl::StatusOr<std::vector<std::string>> SectionReader::StringList(const std::string& key) {
  auto n = Get(key);
  if (!n.ok()) return n.status();
  std::vector<std::string> out;
  if (!n->IsDefined() || n->IsNull()) return out;
  if (!n->IsSequence()) return absl::InvalidArgumentError(absl::StrCat(path_, ".", key, ": expected a list"));
  for (const auto& e : *n) out.push_back(Scalar(e));
  return out;
}

absl::StatusOr<SectionReader> SectionReader::Child(const std::string& key) {
  auto n = Get(key);
  if (!n.ok()) return n.status();
  return MakeChild(*n, absl::StrCat(path_, ".", key));
}

absl::StatusOr<std::vector<SectionReader>> SectionReader::List(const std::string& key) {
  auto n = Get(key);
  if (!n.ok()) return n.status();
  std::vector<SectionReader> out;
  if (!n->IsDefined() || n->IsNull()) return out;
  if (!n->IsSequence()) return absl::InvalidArgumentError(absl::StrCat(path_, ".", key, ": expected a list"));
  int i = 0;
  for (const auto& e : *n) {
    out.push_back(MakeChild(e, absl::StrCat(path_, ".", key, "[", i++, "]")));
  }
  return out;
}

absl::StatusOr<std::string> SectionReader::Secret(const std::string& prefix, bool allow_literal) {
  auto env = String(prefix + "_env");
  if (!env.ok()) return env.status();
  auto file = String(prefix + "_file");
  if (!file.ok()) return file.status();
  if (!env->empty()) return ReadSecretEnv(*env);
  if (!file->empty()) return ReadSecretFile(*file);
  if (allow_literal) return String(prefix);
  if (Has(prefix)) {
    used_->insert(prefix);
    return absl::InvalidArgumentError(absl::StrCat(path_, ".", prefix, ": secrets may not be written in the file; use ",
                                                   prefix, "_env or ", prefix, "_file"));
  }
  return std::string();
}

std::vector<std::string> SectionReader::UnknownKeys() const {
  std::vector<std::string> unknown;
  for (const Entry& e : *tree_) {
    if (!e.node.IsMap()) continue;
    for (const auto& kv : e.node) {
      std::string k = kv.first.Scalar();
      if (!e.used->count(k)) unknown.push_back(absl::StrCat(e.path, ".", k));
    }
  }
  return unknown;
}

absl::StatusOr<ConfigFile> ConfigFile::Parse(const std::string& yaml_text, const std::string& origin) {
  ConfigFile f;
  f.origin_ = origin;
  try {
    f.root_ = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": invalid YAML: ", e.what()));
  }
  if (f.root_.IsDefined() && !f.root_.IsNull() && !f.root_.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": the top level must be a mapping of service sections"));
  }
  return f;
}

absl::StatusOr<ConfigFile> ConfigFile::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read config file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str(), path);
}

SectionReader ConfigFile::Section(const std::string& name) const {
  YAML::Node n = root_.IsMap() ? root_[name] : YAML::Node();
  return SectionReader(n, name);
}

std::string DefaultConfigPath(const std::string& flag_value) {
  if (!flag_value.empty()) return flag_value;
  const char* env = std::getenv("NZBMESH_CONFIG");
  if (env != nullptr && *env != '\0') return env;
  return "nzbmesh.yaml";
}

absl::StatusOr<std::string> ReadSecretEnv(const std::string& env_name) {
  const char* v = std::getenv(env_name.c_str());
  if (v == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("environment variable ", env_name, " is not set"));
  }
  return std::string(v);
}

absl::StatusOr<std::string> ReadSecretFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::FailedPreconditionError(absl::StrCat("cannot read secret file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace nzbmesh::config
