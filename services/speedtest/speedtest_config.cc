#include "services/speedtest/speedtest_config.h"

#include <fstream>
#include <sstream>

#include <pugixml.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status/status_macros.h"

namespace nzbmesh::speedtest {
namespace {

absl::StatusOr<std::vector<std::string>> ReadNzbFile(const std::string& path, const std::string& key) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(key, ": cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  auto ids = MessageIdsFromNzb(ss.str());
  if (!ids.ok()) return absl::InvalidArgumentError(absl::StrCat(key, ": ", path, ": ", ids.status().message()));
  return ids;
}

// message_ids and/or nzb of one reader (ids first).
absl::StatusOr<std::vector<std::string>> ReadArticles(config::SectionReader& r, const std::string& ids_key,
                                                      const std::string& nzb_key) {
  NZB_ASSIGN_OR_RETURN(std::vector<std::string> ids, r.StringList(ids_key));
  for (auto& id : ids) {
    absl::string_view v = id;
    absl::ConsumePrefix(&v, "<");
    absl::ConsumeSuffix(&v, ">");
    id = std::string(v);
  }
  NZB_ASSIGN_OR_RETURN(std::string nzb, r.String(nzb_key));
  if (!nzb.empty()) {
    NZB_ASSIGN_OR_RETURN(auto more, ReadNzbFile(nzb, absl::StrCat(r.path(), ".", nzb_key)));
    ids.insert(ids.end(), more.begin(), more.end());
  }
  return ids;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> MessageIdsFromNzb(const std::string& xml) {
  pugi::xml_document doc;
  // No DTD or entity processing beyond the XML defaults pugixml never expands.
  pugi::xml_parse_result pr = doc.load_buffer(xml.data(), xml.size(), pugi::parse_default & ~pugi::parse_doctype);
  if (!pr) return absl::InvalidArgumentError(absl::StrCat("not valid XML: ", pr.description()));
  pugi::xml_node nzb = doc.child("nzb");
  if (!nzb) return absl::InvalidArgumentError("no <nzb> root element");
  std::vector<std::string> ids;
  for (pugi::xml_node file : nzb.children("file")) {
    for (pugi::xml_node seg : file.child("segments").children("segment")) {
      absl::string_view v = absl::StripAsciiWhitespace(seg.child_value());
      absl::ConsumePrefix(&v, "<");
      absl::ConsumeSuffix(&v, ">");
      if (!v.empty()) ids.emplace_back(v);
    }
  }
  if (ids.empty()) return absl::InvalidArgumentError("the NZB lists no segments");
  return ids;
}

absl::StatusOr<SpeedTestConfig> ParseSpeedTestConfig(const config::ConfigFile& file) {
  config::SectionReader s = file.Section("speedtest");
  SpeedTestConfig c;
  c.service.name = "speedtest";
  NZB_ASSIGN_OR_RETURN(c.service.grpc_listen, s.String("grpc_listen", "127.0.0.1:50053"));
  NZB_ASSIGN_OR_RETURN(c.service.metrics_listen, s.String("metrics_listen", "127.0.0.1:9094"));
  NZB_ASSIGN_OR_RETURN(c.service.shutdown_grace, s.Duration("shutdown_grace", absl::Seconds(10)));
  NZB_ASSIGN_OR_RETURN(c.service.tls, ReadServerTls(s, "grpc_tls"));
  NZB_ASSIGN_OR_RETURN(c.broker, s.String("broker", c.broker));
  NZB_ASSIGN_OR_RETURN(c.broker_tls, ReadClientTls(s, "broker_tls"));
  NZB_ASSIGN_OR_RETURN(c.database_url_env, s.String("database_url_env", "NZBMESH_DATABASE_URL"));
  SpeedTesterOptions& t = c.tester;
  NZB_ASSIGN_OR_RETURN(t.result_ttl, s.Duration("result_ttl", t.result_ttl));
  NZB_ASSIGN_OR_RETURN(int64_t per_caller, s.Int("max_runs_per_caller", t.max_runs_per_caller));
  t.max_runs_per_caller = static_cast<int>(per_caller);
  NZB_ASSIGN_OR_RETURN(t.rate_window, s.Duration("rate_window", t.rate_window));
  NZB_ASSIGN_OR_RETURN(t.default_duration, s.Duration("default_duration", t.default_duration));
  NZB_ASSIGN_OR_RETURN(t.max_duration, s.Duration("max_duration", t.max_duration));
  if (per_caller < 0 || t.result_ttl < absl::ZeroDuration() || t.rate_window <= absl::ZeroDuration() ||
      t.default_duration <= absl::ZeroDuration() || t.max_duration < t.default_duration) {
    return absl::InvalidArgumentError(
        "speedtest: max_runs_per_caller >= 0, result_ttl >= 0, rate_window > 0 and "
        "0 < default_duration <= max_duration are required");
  }
  NZB_ASSIGN_OR_RETURN(t.default_message_ids, ReadArticles(s, "default_message_ids", "default_nzb"));
  NZB_ASSIGN_OR_RETURN(std::vector<config::SectionReader> tests, s.List("tests"));
  for (auto& tr : tests) {
    NZB_ASSIGN_OR_RETURN(std::string provider, tr.String("provider"));
    if (provider.empty()) return absl::InvalidArgumentError(absl::StrCat(tr.path(), ".provider is required"));
    NZB_ASSIGN_OR_RETURN(auto ids, ReadArticles(tr, "message_ids", "nzb"));
    if (ids.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(tr.path(), ": message_ids or nzb is required"));
    }
    t.message_ids[provider] = std::move(ids);
  }
  c.unknown_keys = s.UnknownKeys();
  return c;
}

}  // namespace nzbmesh::speedtest
