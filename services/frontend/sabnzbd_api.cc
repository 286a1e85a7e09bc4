#include "services/frontend/sabnzbd_api.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace nzbmesh::frontend {
namespace {

using importer::v1::Job;
using importer::v1::JobState;

std::string Q(absl::string_view s) { return absl::StrCat("\"", JsonEscape(s), "\""); }

SabReply Error(absl::string_view message) { return {200, absl::StrCat("{\"status\":false,\"error\":", Q(message), "}")}; }

std::string NzoId(int64_t job_id) { return absl::StrCat("SABnzbd_nzo_", job_id); }

bool ParseNzoId(absl::string_view s, int64_t* id) {
  return absl::SimpleAtoi(absl::StripPrefix(s, "SABnzbd_nzo_"), id);
}

const char* QueueStatus(JobState s) { return s == importer::v1::RUNNING ? "Downloading" : "Queued"; }

std::string QueueJson(const std::vector<Job>& jobs) {
  std::vector<std::string> slots;
  for (const Job& j : jobs) {
    if (j.state() != importer::v1::QUEUED && j.state() != importer::v1::RUNNING) continue;
    slots.push_back(absl::StrCat("{\"index\":", slots.size(), ",\"nzo_id\":", Q(NzoId(j.job_id())),
                                 ",\"filename\":", Q(j.name()), ",\"cat\":", Q(j.category()),
                                 ",\"status\":", Q(QueueStatus(j.state())), ",\"percentage\":",
                                 Q(absl::StrCat(static_cast<int>(j.progress() * 100))),
                                 ",\"priority\":\"Normal\",\"mb\":\"0\",\"mbleft\":\"0\",\"timeleft\":\"0:00:00\"}"));
  }
  return absl::StrCat("{\"queue\":{\"status\":", Q(slots.empty() ? "Idle" : "Downloading"),
                      ",\"paused\":false,\"speed\":\"0\",\"kbpersec\":\"0.00\",\"mb\":\"0\",\"mbleft\":\"0\","
                      "\"noofslots\":",
                      slots.size(), ",\"noofslots_total\":", slots.size(), ",\"slots\":[", absl::StrJoin(slots, ","),
                      "]}}");
}

std::string HistoryJson(const SabOptions& o, const std::vector<Job>& jobs) {
  std::vector<std::string> slots;
  for (const Job& j : jobs) {
    if (j.state() != importer::v1::COMPLETED && j.state() != importer::v1::FAILED &&
        j.state() != importer::v1::CANCELLED) {
      continue;
    }
    bool ok = j.state() == importer::v1::COMPLETED;
    std::string storage = ok ? absl::StrCat(absl::StripSuffix(o.complete_dir, "/"), j.catalog_path()) : "";
    slots.push_back(absl::StrCat(
        "{\"nzo_id\":", Q(NzoId(j.job_id())), ",\"name\":", Q(j.name()), ",\"nzb_name\":", Q(j.name() + ".nzb"),
        ",\"category\":", Q(j.category()), ",\"status\":", Q(ok ? "Completed" : "Failed"),
        ",\"fail_message\":", Q(ok ? "" : j.message()), ",\"storage\":", Q(storage), ",\"path\":", Q(storage),
        ",\"bytes\":0,\"completed\":", j.updated_unix_ms() / 1000, ",\"download_time\":0}"));
  }
  return absl::StrCat("{\"history\":{\"noofslots\":", slots.size(), ",\"slots\":[", absl::StrJoin(slots, ","),
                      "]}}");
}

// Submits `nzb` to the importer with the addfile/addurl parameters of
// `params` (cat, priority, password) and answers SABnzbd-style.
void Submit(ImporterClient* importer, std::map<std::string, std::string>& params, std::string nzb,
            std::string filename, std::string name, std::function<void(SabReply)> done) {
  importer::v1::SubmitNzbRequest req;
  req.set_nzb(std::move(nzb));
  req.set_filename(std::move(filename));
  std::string cat = params["cat"];
  req.set_category(cat == "*" || cat == "Default" ? "" : cat);
  req.set_name(std::move(name));
  int prio = 0;
  if (absl::SimpleAtoi(params["priority"], &prio) && prio > 0) req.set_priority(prio);
  req.set_password(params["password"]);
  importer->SubmitNzb(req, [done = std::move(done)](absl::StatusOr<importer::v1::SubmitNzbResponse> r) {
    if (!r.ok()) {
      done(Error(absl::StrCat("import failed: ", r.status().message())));
      return;
    }
    done({200, absl::StrCat("{\"status\":true,\"nzo_ids\":[", Q(NzoId(r->job_id())), "]}")});
  });
}

// The file name an addurl NZB is submitted under: the Content-Disposition
// name, else the URL path's last segment (percent-decoded), else the host.
std::string UrlFileName(const NzbUrlClient::Result& r) {
  if (!r.filename.empty()) return r.filename;
  std::string path = r.url.target.substr(0, r.url.target.find('?'));
  // A path keeps '+' literal (DecodeQueryComponent would make it a space).
  std::string last = DecodeQueryComponent(absl::StrReplaceAll(path.substr(path.rfind('/') + 1), {{"+", "%2B"}}));
  if (last.empty() || last == "." || last == ".." || last.find('/') != std::string::npos) return r.url.host;
  return last;
}

}  // namespace

void HandleSabApi(const SabOptions& o, ImporterClient* importer, NzbUrlClient* urls,
                  std::map<std::string, std::string> params, std::vector<FormPart> files,
                  std::function<void(SabReply)> done) {
  const std::string mode = params["mode"];
  if (mode == "version") {
    done({200, absl::StrCat("{\"version\":", Q(o.version), "}")});
    return;
  }
  if (o.api_key.empty() || !ConstantTimeEquals(params["apikey"], o.api_key)) {
    done(Error(params["apikey"].empty() ? "API Key Required" : "API Key Incorrect"));
    return;
  }
  std::vector<std::string> cats = {"*"};
  cats.insert(cats.end(), o.categories.begin(), o.categories.end());
  if (mode == "get_cats") {
    std::vector<std::string> q;
    for (const auto& c : cats) q.push_back(Q(c));
    done({200, absl::StrCat("{\"categories\":[", absl::StrJoin(q, ","), "]}")});
    return;
  }
  if (mode == "get_config") {
    std::vector<std::string> q;
    for (size_t i = 0; i < cats.size(); ++i) {
      q.push_back(absl::StrCat("{\"name\":", Q(cats[i]), ",\"order\":", i,
                               ",\"pp\":\"\",\"script\":\"Default\",\"dir\":\"\",\"priority\":-100}"));
    }
    done({200, absl::StrCat("{\"config\":{\"misc\":{\"complete_dir\":", Q(o.complete_dir),
                            ",\"download_dir\":", Q(o.complete_dir),
                            ",\"pre_check\":0,\"history_retention\":\"\"},\"categories\":[", absl::StrJoin(q, ","),
                            "],\"servers\":[]}}")});
    return;
  }
  if (mode == "fullstatus") {
    done({200, "{\"status\":{\"paused\":false,\"speedlimit\":\"100\",\"have_warnings\":\"0\",\"servers\":[]}}"});
    return;
  }
  if (mode == "addfile") {
    const FormPart* nzb = nullptr;
    for (const auto& f : files) {
      if (f.name == "name" || f.name == "nzbfile") nzb = &f;
    }
    if (nzb == nullptr || nzb->data.empty()) {
      done(Error("No NZB file uploaded (field \"name\" or \"nzbfile\")"));
      return;
    }
    std::string name = params["nzbname"];
    Submit(importer, params, nzb->data, nzb->filename, std::move(name), std::move(done));
    return;
  }
  if (mode == "addurl") {
    const std::string url = params["name"];
    if (url.empty()) {
      done(Error("No URL given (parameter \"name\")"));
      return;
    }
    auto parsed = ParseHttpUrl(url);
    if (!parsed.ok()) {
      done(Error(absl::StrCat("invalid NZB URL: ", parsed.status().message())));
      return;
    }
    if (urls == nullptr) {
      done(Error("addurl is not available on this frontend"));
      return;
    }
    urls->Fetch(url, [importer, params = std::move(params), shown = parsed->Redacted(),
                      done = std::move(done)](absl::StatusOr<NzbUrlClient::Result> r) mutable {
      if (!r.ok()) {
        done(Error(absl::StrCat("cannot fetch NZB from ", shown, ": ", r.status().message())));
        return;
      }
      std::string filename = UrlFileName(*r);
      std::string name = params["nzbname"];
      Submit(importer, params, std::move(r->body), std::move(filename), std::move(name), std::move(done));
    });
    return;
  }
  if (mode == "queue" || mode == "history") {
    const std::string name = params["name"];
    if (name == "delete") {
      int64_t id = 0;
      if (!ParseNzoId(params["value"], &id)) {
        done(Error("unknown nzo_id"));
        return;
      }
      if (mode == "history") {
        // The importer keeps finished jobs; removing them from history is a no-op.
        done({200, "{\"status\":true}"});
        return;
      }
      importer->CancelJob(id, [done, v = params["value"]](absl::StatusOr<Job> r) {
        if (!r.ok() && !absl::IsFailedPrecondition(r.status())) {
          done(Error(r.status().message()));
          return;
        }
        done({200, absl::StrCat("{\"status\":true,\"nzo_ids\":[", Q(v), "]}")});
      });
      return;
    }
    if (name == "pause" || name == "resume") {
      done({200, "{\"status\":true}"});
      return;
    }
    int limit = 0;
    if (!absl::SimpleAtoi(params["limit"], &limit)) limit = 0;
    importer->ListJobs(importer::v1::JOB_STATE_UNSPECIFIED, limit,
                       [done, mode, o](absl::StatusOr<std::vector<Job>> r) {
                         if (!r.ok()) {
                           done({503, absl::StrCat("{\"status\":false,\"error\":", Q(r.status().message()), "}")});
                           return;
                         }
                         done({200, mode == "queue" ? QueueJson(*r) : HistoryJson(o, *r)});
                       });
    return;
  }
  if (mode == "pause" || mode == "resume") {
    done({200, "{\"status\":true}"});
    return;
  }
  done(Error(absl::StrCat("not implemented: mode=", mode)));
}

}  // namespace nzbmesh::frontend
