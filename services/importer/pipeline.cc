#include "services/importer/pipeline.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/status/status_macros.h"
#include "services/importer/analysis/archive.h"
#include "services/importer/analysis/par2.h"

namespace nzbmesh::importer {
namespace {

constexpr char kReasonPayload[] = "type.nzbmesh.dev/importer.FailureReason";
constexpr absl::string_view kPar2Magic("PAR2\0PKT", 8);

// Runs fn(i) for i in [0, n) with at most `width` calls running at once.
// Stops handing out work at the first error (returned) or on cancellation.
absl::Status ParallelFor(int n, int width, const std::atomic<bool>& cancelled,
                         const std::function<absl::Status(int)>& fn) {
  std::atomic<int> next{0};
  std::atomic<bool> stop{false};
  absl::Mutex mu;
  absl::Status first;
  auto body = [&] {
    while (!stop.load()) {
      const int i = next.fetch_add(1);
      if (i >= n) return;
      absl::Status s = cancelled.load() ? absl::CancelledError("job cancelled") : fn(i);
      if (!s.ok()) {
        absl::MutexLock lock(&mu);
        if (first.ok()) first = s;
        stop.store(true);
      }
    }
  };
  const int threads = std::max(1, std::min(width, n));
  std::vector<std::thread> helpers;
  for (int t = 1; t < threads; ++t) helpers.emplace_back(body);
  body();
  for (auto& t : helpers) t.join();
  absl::MutexLock lock(&mu);
  return first;
}

// One file of the NZB as the pipeline learns about it.
struct FileState {
  const NzbFile* nzb = nullptr;
  std::string subject_name;
  SegmentData first;                    // first article (yEnc header + bytes)
  std::map<int, std::string> cached;    // segment index → decoded bytes (beyond the first)
  std::string name;                     // resolved, not yet sanitised
  int64_t size = 0;
  std::vector<SegmentRef> segments;     // with decoded sizes
  std::vector<int64_t> offsets;         // prefix sums of segment sizes
  bool par2 = false;
  bool consumed = false;                // part of an archive or split set
  absl::Time mtime = absl::UnixEpoch();
};

std::string Describe(const FileState& f) {
  return absl::StrCat("\"", f.name.empty() ? f.subject_name : f.name, "\"");
}

absl::Status WithContext(const absl::Status& s, const std::string& what) {
  absl::Status out(s.code(), absl::StrCat(what, ": ", s.message()));
  if (auto p = s.GetPayload(kReasonPayload)) out.SetPayload(kReasonPayload, *p);
  return out;
}

// Nested archives, one level deep: a stored member that is itself a
// single-volume RAR/7z (by name, or by signature when its name is
// obfuscated) is replaced by its own streamable members, whose extents are
// composed onto the outer volumes. A member that does not map cleanly stays
// a plain member (its stored bytes are still streamable). Multi-volume inner
// sets are ExpandNestedSets' job. Returns true when `m` was replaced.
absl::StatusOr<bool> ExpandNested(const ArchiveMember& m, const ByteReader& reader, std::vector<ArchiveMember>* out) {
  const size_t slash = m.name.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : m.name.substr(0, slash + 1);
  const std::string base = m.name.substr(dir.size());
  const VolumeKind kind = ParseVolumeName(base).kind;
  const bool by_name = kind == VolumeKind::kRar || kind == VolumeKind::kSevenZip;
  if (m.size < 32 || (!by_name && !LooksObfuscated(base))) return false;
  NestedVolume nested = MakeNestedVolume(m, reader);
  auto head = nested.reader(0, 0, 8);
  if (!head.ok()) {
    if (absl::IsOutOfRange(head.status())) return false;
    return head.status();
  }
  if (DetectArchiveFormat(*head) == ArchiveFormat::kUnknown) return false;
  auto inner = MapArchive({nested.volume}, nested.reader);
  if (!inner.ok()) {
    if (absl::IsInvalidArgument(inner.status())) return false;
    return inner.status();
  }
  if (inner->rejection != ArchiveRejection::kNone) return false;
  for (ArchiveMember im : inner->members) {
    if (im.is_directory || im.is_symlink || im.rejection != ArchiveRejection::kNone) continue;
    im.extents = ComposeExtents(im.extents, m);
    im.name = dir + im.name;
    if (!im.mtime.has_value()) im.mtime = m.mtime;
    out->push_back(std::move(im));
  }
  return true;
}

bool IsArchiveSetKind(VolumeKind k) {
  return k == VolumeKind::kRar || k == VolumeKind::kRarOld || k == VolumeKind::kRarPart ||
         k == VolumeKind::kSevenZip || k == VolumeKind::kSevenZipSplit;
}

// Nested multi-volume sets, one level deep: stored members of one directory
// whose names form a RAR or 7z volume set of two or more volumes
// ("x.part1.rar" …, "x.rar" + "x.r00" …, "x.7z.001" …; what some posters
// wrap in an outer 7z or RAR) are mapped as one inner set. Its streamable
// members are appended to `out` with extents composed through both layers
// (inner member → inner volumes → outer volumes), and the inner volumes are
// removed from `members`. A set that does not map cleanly (a gap, compressed,
// encrypted, not an archive after all) keeps its volumes as plain members.
// Inner volumes are grouped by name only. Errors are the reader's (missing
// articles, broker outages).
absl::Status ExpandNestedSets(const ByteReader& reader, std::vector<ArchiveMember>* members,
                              std::vector<ArchiveMember>* out) {
  std::map<std::string, std::vector<int>> by_dir;  // "dir/" → indices into members
  for (size_t i = 0; i < members->size(); ++i) {
    const std::string& name = (*members)[i].name;
    const size_t slash = name.rfind('/');
    by_dir[slash == std::string::npos ? "" : name.substr(0, slash + 1)].push_back(static_cast<int>(i));
  }
  std::vector<bool> expanded(members->size(), false);
  for (const auto& [dir, idx] : by_dir) {
    std::vector<std::string> names;
    for (int i : idx) names.push_back((*members)[i].name.substr(dir.size()));
    for (const VolumeSet& set : GroupVolumeSets(names)) {
      if (set.volumes.size() < 2 || !IsArchiveSetKind(set.kind)) continue;
      std::vector<ArchiveMember> volumes;
      for (int v : set.volumes) volumes.push_back((*members)[idx[v]]);
      NestedSet nested = MakeNestedSet(volumes, reader);
      auto head = nested.reader(0, 0, 8);
      if (!head.ok()) {
        if (absl::IsOutOfRange(head.status())) continue;
        return head.status();
      }
      if (DetectArchiveFormat(*head) == ArchiveFormat::kUnknown) continue;
      auto inner = MapArchive(nested.volumes, nested.reader);
      if (!inner.ok()) {
        if (absl::IsInvalidArgument(inner.status()) || absl::IsOutOfRange(inner.status())) continue;
        return inner.status();
      }
      if (inner->rejection != ArchiveRejection::kNone) continue;
      for (ArchiveMember im : inner->members) {
        if (im.is_directory || im.is_symlink || im.rejection != ArchiveRejection::kNone) continue;
        im.extents = ComposeSetExtents(im.extents, volumes);
        im.name = dir + im.name;
        if (!im.mtime.has_value()) im.mtime = volumes[0].mtime;
        out->push_back(std::move(im));
      }
      for (int v : set.volumes) expanded[idx[v]] = true;
    }
  }
  std::vector<ArchiveMember> rest;
  for (size_t i = 0; i < members->size(); ++i) {
    if (!expanded[i]) rest.push_back(std::move((*members)[i]));
  }
  *members = std::move(rest);
  return absl::OkStatus();
}

}  // namespace

absl::Status ImportFailure(FailureReason reason, const std::string& message) {
  absl::StatusCode code = absl::StatusCode::kInternal;
  switch (reason) {
    case FailureReason::kMissingArticles: code = absl::StatusCode::kNotFound; break;
    case FailureReason::kUnsupportedArchive: code = absl::StatusCode::kUnimplemented; break;
    case FailureReason::kBadNzb: code = absl::StatusCode::kInvalidArgument; break;
    case FailureReason::kProviderUnavailable: code = absl::StatusCode::kUnavailable; break;
    case FailureReason::kInternal:
    case FailureReason::kNone: code = absl::StatusCode::kInternal; break;
  }
  absl::Status s(code, message);
  s.SetPayload(kReasonPayload, absl::Cord(absl::StrCat(static_cast<int>(reason))));
  return s;
}

FailureClass ClassifyFailure(const absl::Status& status) {
  FailureReason reason = FailureReason::kInternal;
  int v = 0;
  if (auto p = status.GetPayload(kReasonPayload); p && absl::SimpleAtoi(std::string(*p), &v) && v >= 1 && v <= 5) {
    reason = static_cast<FailureReason>(v);
  } else {
    switch (status.code()) {
      case absl::StatusCode::kNotFound:
      case absl::StatusCode::kDataLoss: reason = FailureReason::kMissingArticles; break;
      case absl::StatusCode::kInvalidArgument: reason = FailureReason::kBadNzb; break;
      case absl::StatusCode::kUnimplemented: reason = FailureReason::kUnsupportedArchive; break;
      case absl::StatusCode::kUnavailable:
      case absl::StatusCode::kDeadlineExceeded:
      case absl::StatusCode::kResourceExhausted: reason = FailureReason::kProviderUnavailable; break;
      default: reason = FailureReason::kInternal; break;
    }
  }
  const bool transient = reason == FailureReason::kProviderUnavailable || reason == FailureReason::kInternal;
  return {reason, transient};
}

ImportPipeline::ImportPipeline(BrokerClient* broker, PipelineOptions options, ImporterMetrics* metrics)
    : broker_(broker), options_(std::move(options)), metrics_(metrics) {}

absl::StatusOr<ReleasePlan> ImportPipeline::Run(const JobRecord& job, const std::string& nzb_xml,
                                                const std::atomic<bool>& cancelled,
                                                const std::function<void(double)>& progress,
                                                CallCanceller* calls) {
  const int width = std::max(1, options_.fetch_concurrency);
  auto deadline = [&] { return absl::Now() + options_.call_timeout; };
  auto report = [&](double p) {
    if (progress) progress(p);
  };
  auto check_cancel = [&]() -> absl::Status {
    if (calls != nullptr && calls->cancelled()) return absl::CancelledError("broker calls cancelled");
    return cancelled.load() ? absl::CancelledError("job cancelled") : absl::OkStatus();
  };

  // 1. Parse.
  auto parsed = ParseNzb(nzb_xml, options_.nzb);
  if (!parsed.ok()) return ImportFailure(FailureReason::kBadNzb, absl::StrCat("NZB rejected: ", parsed.status().message()));
  const Nzb& nzb = *parsed;
  if (nzb.files.empty()) return ImportFailure(FailureReason::kBadNzb, "NZB rejected: it lists no files");

  std::vector<FileState> files(nzb.files.size());
  for (size_t i = 0; i < nzb.files.size(); ++i) {
    FileState& f = files[i];
    f.nzb = &nzb.files[i];
    f.subject_name = f.nzb->filename_from_subject.value_or("");
    f.mtime = f.nzb->date.value_or(absl::Now());
    const bool par2_by_name = Extension(f.subject_name) == "par2";
    if (!par2_by_name && f.nzb->missing_segment_count > 0) {
      return ImportFailure(FailureReason::kMissingArticles,
                           absl::StrCat("the NZB lacks ", f.nzb->missing_segment_count, " segment(s) of ",
                                        Describe(f), " (first missing: number ",
                                        f.nzb->missing_segments.empty() ? 0 : f.nzb->missing_segments[0], ")"));
    }
  }
  NZB_RETURN_IF_ERROR(check_cancel());

  // 2. STAT sample: first 3 + last 2 + random middle segments of the
  // release (PAR2 files by subject name are left out: they are optional).
  {
    std::vector<std::pair<int, int>> all;  // (file, segment)
    for (size_t i = 0; i < files.size(); ++i) {
      if (Extension(files[i].subject_name) == "par2") continue;
      for (size_t s = 0; s < files[i].nzb->segments.size(); ++s) all.emplace_back(i, s);
    }
    if (all.empty()) {
      for (size_t i = 0; i < files.size(); ++i)
        for (size_t s = 0; s < files[i].nzb->segments.size(); ++s) all.emplace_back(i, s);
    }
    const int n = static_cast<int>(all.size());
    std::set<int> pick;
    for (int k = 0; k < std::min(3, n); ++k) pick.insert(k);
    for (int k = std::max(0, n - 2); k < n; ++k) pick.insert(k);
    if (n > 5 && options_.stat_sample_middle > 0) {
      std::mt19937_64 rng(static_cast<uint64_t>(job.id) * 0x9E3779B97F4A7C15ull + 1);
      std::uniform_int_distribution<int> d(3, n - 3);
      for (int k = 0; k < options_.stat_sample_middle; ++k) pick.insert(d(rng));
    }
    std::vector<int> sample(pick.begin(), pick.end());
    std::map<std::string, std::pair<int, int>> where;
    int missing = 0, errors = 0;
    std::string first_missing, first_error;
    for (size_t b = 0; b < sample.size(); b += width) {
      NZB_RETURN_IF_ERROR(check_cancel());
      std::vector<std::string> ids;
      for (size_t k = b; k < std::min(sample.size(), b + width); ++k) {
        auto [fi, si] = all[sample[k]];
        ids.push_back(files[fi].nzb->segments[si].message_id);
        where[ids.back()] = {fi, si};
      }
      auto res = broker_->StatSegments(ids, nzbmesh::broker::v1::IMPORT, deadline(), calls);
      if (!res.ok()) {
        FailureClass c = ClassifyFailure(res.status());
        return ImportFailure(c.reason == FailureReason::kMissingArticles ? FailureReason::kProviderUnavailable : c.reason,
                             absl::StrCat("STAT sample failed at the broker: ", res.status().ToString()));
      }
      for (const StatResult& r : *res) {
        const char* result = "exists";
        if (!r.error.empty()) {
          result = "error";
          if (errors++ == 0) first_error = absl::StrCat(r.message_id, ": ", r.error);
        } else if (!r.exists) {
          result = "missing";
          if (missing++ == 0) {
            auto [fi, si] = where[r.message_id];
            first_missing = absl::StrCat("<", r.message_id, ">, segment ", files[fi].nzb->segments[si].number,
                                         " of ", Describe(files[fi]));
          }
        }
        if (metrics_) metrics_->segments_checked.Add({{"purpose", "import"}, {"result", result}}).Increment();
      }
    }
    if (missing > 0) {
      return ImportFailure(FailureReason::kMissingArticles,
                           absl::StrCat(missing, " of ", sample.size(), " sampled articles are missing on every "
                                        "provider (first: ", first_missing, "); the release is incomplete"));
    }
    if (errors > 0) {
      return ImportFailure(FailureReason::kProviderUnavailable,
                           absl::StrCat(errors, " of ", sample.size(), " STAT checks failed (first: ", first_error, ")"));
    }
  }
  report(0.1);

  // 3. First segment of every file, at most `width` fetches in flight (M3).
  std::atomic<int> done{0};
  NZB_RETURN_IF_ERROR(ParallelFor(static_cast<int>(files.size()), width, cancelled, [&](int i) -> absl::Status {
    FileState& f = files[i];
    const std::string& id = f.nzb->segments[0].message_id;
    auto seg = broker_->FetchSegment(id, nzbmesh::broker::v1::IMPORT, deadline(), calls);
    if (metrics_) metrics_->segments_fetched.Increment();
    if (!seg.ok()) {
      if (seg.status().code() == absl::StatusCode::kNotFound || seg.status().code() == absl::StatusCode::kDataLoss) {
        return ImportFailure(FailureReason::kMissingArticles,
                             absl::StrCat("first article <", id, "> of ", Describe(f), " is ",
                                          seg.status().code() == absl::StatusCode::kNotFound ? "missing" : "corrupt",
                                          ": ", seg.status().message()));
      }
      return WithContext(seg.status(), absl::StrCat("fetching the first article of ", Describe(f)));
    }
    f.first = std::move(*seg);
    report(0.1 + 0.6 * (done.fetch_add(1) + 1) / files.size());
    return absl::OkStatus();
  }));
  NZB_RETURN_IF_ERROR(check_cancel());

  // 4. Sizes from the yEnc headers; the last part's size is derived.
  for (FileState& f : files) {
    const int n = static_cast<int>(f.nzb->segments.size());
    const int64_t first_size = static_cast<int64_t>(f.first.data.size());
    int64_t file_size = f.first.file_size > 0 ? f.first.file_size : first_size;
    if (f.first.part > 1) {
      return ImportFailure(FailureReason::kBadNzb, absl::StrCat("the first segment of ", Describe(f),
                                                                " is yEnc part ", f.first.part, ", not part 1"));
    }
    f.segments.reserve(n);
    if (n == 1) {
      if (file_size != first_size) {
        return ImportFailure(FailureReason::kMissingArticles,
                             absl::StrCat(Describe(f), " is ", file_size, " bytes by its yEnc header but the NZB "
                                          "lists one article of ", first_size, " bytes"));
      }
      f.segments.push_back({f.nzb->segments[0].message_id, file_size});
    } else {
      const int64_t part = first_size;
      const int64_t last = file_size - (n - 1) * part;
      if (part <= 0 || last <= 0 || last > part) {
        return ImportFailure(FailureReason::kBadNzb,
                             absl::StrCat(Describe(f), ": the NZB lists ", n, " articles but the yEnc header says ",
                                          file_size, " bytes in parts of ", part, " bytes"));
      }
      for (int s = 0; s < n; ++s) f.segments.push_back({f.nzb->segments[s].message_id, s + 1 == n ? last : part});
    }
    f.size = file_size;
    f.offsets.resize(n + 1);
    for (int s = 0; s < n; ++s) f.offsets[s + 1] = f.offsets[s] + f.segments[s].size;
    f.par2 = absl::StartsWith(f.first.data, kPar2Magic) || Extension(f.first.name) == "par2" ||
             Extension(f.subject_name) == "par2";
  }

  // Reads [offset, offset + length) of a file's decoded bytes, fetching the
  // articles that cover it (cached per job).
  auto read_range = [&](FileState& f, int64_t offset, int64_t length) -> absl::StatusOr<std::string> {
    if (offset < 0 || length < 0 || offset + length > f.size) {
      return absl::OutOfRangeError(absl::StrCat("read of ", length, " bytes at ", offset, " past the end of ",
                                                Describe(f), " (", f.size, " bytes)"));
    }
    std::string out;
    out.reserve(length);
    int s = static_cast<int>(std::upper_bound(f.offsets.begin(), f.offsets.end(), offset) - f.offsets.begin()) - 1;
    while (length > 0 && s < static_cast<int>(f.segments.size())) {
      const std::string* bytes = s == 0 ? &f.first.data : nullptr;
      if (bytes == nullptr) {
        auto it = f.cached.find(s);
        if (it == f.cached.end()) {
          NZB_RETURN_IF_ERROR(check_cancel());
          auto seg = broker_->FetchSegment(f.segments[s].message_id, nzbmesh::broker::v1::IMPORT, deadline(), calls);
          if (metrics_) metrics_->segments_fetched.Increment();
          if (!seg.ok()) {
            return WithContext(seg.status(), absl::StrCat("fetching article <", f.segments[s].message_id, "> of ",
                                                          Describe(f)));
          }
          if (static_cast<int64_t>(seg->data.size()) != f.segments[s].size) {
            return ImportFailure(FailureReason::kBadNzb,
                                 absl::StrCat("article ", s + 1, " of ", Describe(f), " decodes to ",
                                              seg->data.size(), " bytes, expected ", f.segments[s].size,
                                              " (parts of unequal size)"));
          }
          it = f.cached.emplace(s, std::move(seg->data)).first;
        }
        bytes = &it->second;
      }
      const int64_t in_seg = offset - f.offsets[s];
      const int64_t take = std::min<int64_t>(length, f.segments[s].size - in_seg);
      out.append(*bytes, in_seg, take);
      offset += take;
      length -= take;
      ++s;
    }
    return out;
  };

  // 5. Names: yEnc name, else subject name, else PAR2 (by the MD5 of the
  // first 16 KiB) when those look obfuscated.
  Par2NameIndex par2;
  for (FileState& f : files) {
    if (!absl::StartsWith(f.first.data, kPar2Magic)) continue;
    auto r = ParsePar2(f.first.data);
    if (r.ok()) par2.Add(*r);
  }
  for (size_t i = 0; i < files.size(); ++i) {
    FileState& f = files[i];
    auto usable = [](const std::string& s) { return !s.empty() && !LooksObfuscated(s); };
    if (usable(f.first.name)) {
      f.name = f.first.name;
    } else if (usable(f.subject_name)) {
      f.name = f.subject_name;
    } else {
      if (!f.par2 && par2.size() > 0) {
        std::string head = f.first.data.substr(0, kPar2HashPrefixBytes);
        if (static_cast<int64_t>(head.size()) < std::min<int64_t>(kPar2HashPrefixBytes, f.size)) {
          auto more = read_range(f, 0, std::min<int64_t>(kPar2HashPrefixBytes, f.size));
          if (more.ok()) head = std::move(*more);
        }
        if (const Par2FileDescription* d = par2.FindByContent(head, f.size)) f.name = d->name;
      }
      if (f.name.empty()) f.name = !f.first.name.empty() ? f.first.name : !f.subject_name.empty() ? f.subject_name
                                                                                                  : absl::StrCat("file-", i + 1);
    }
    if (!f.par2 && Extension(f.name) == "par2") f.par2 = true;
  }
  NZB_RETURN_IF_ERROR(check_cancel());
  report(0.75);

  ReleasePlan plan;
  plan.category = job.category;
  plan.release = job.name;
  FileFilter filter(options_.filter);
  UniqueNamer namer;

  // 6. Archive and split sets.
  std::vector<int> candidates;  // indices into files of non-PAR2 files
  std::vector<std::string> names;
  for (size_t i = 0; i < files.size(); ++i) {
    if (files[i].par2) continue;
    candidates.push_back(static_cast<int>(i));
    names.push_back(files[i].name);
  }
  std::vector<std::vector<int>> archive_sets;  // file indices in volume order
  std::vector<std::string> archive_set_names;
  for (const VolumeSet& set : GroupVolumeSets(names)) {
    std::vector<int> idx;
    for (int v : set.volumes) idx.push_back(candidates[v]);
    if (idx.empty()) continue;
    if (set.kind == VolumeKind::kSplit) {
      // Raw split (.001, .002, ...): one plain file made of all parts, if the
      // parts are consecutive and all but the last are whole segments.
      bool contiguous = true;
      for (size_t k = 0; k < idx.size(); ++k) {
        if (ParseVolumeName(files[idx[k]].name).index != static_cast<int>(k)) contiguous = false;
      }
      if (!contiguous) continue;
      FilePlan fp;
      fp.name = set.set_name;
      fp.mtime = files[idx[0]].mtime;
      for (int k : idx) {
        for (const auto& s : files[k].segments) fp.segments.push_back(s);
        fp.size += files[k].size;
        files[k].consumed = true;
      }
      if (!filter.Allows(fp.name)) continue;
      fp.name = namer.Claim(SanitizeFilename(fp.name));
      plan.files.push_back(std::move(fp));
      continue;
    }
    if (set.kind == VolumeKind::kRar || set.kind == VolumeKind::kRarOld || set.kind == VolumeKind::kRarPart ||
        set.kind == VolumeKind::kSevenZip || set.kind == VolumeKind::kSevenZipSplit) {
      for (int k : idx) files[k].consumed = true;
      archive_sets.push_back(idx);
      archive_set_names.push_back(set.set_name);
    }
  }
  // Archives whose names say nothing (obfuscated, no PAR2): RAR/7z by magic,
  // mapped as one set; RAR headers number the volumes.
  {
    std::vector<int> by_magic;
    for (int i : candidates) {
      if (!files[i].consumed && DetectArchiveFormat(files[i].first.data) != ArchiveFormat::kUnknown) by_magic.push_back(i);
    }
    std::sort(by_magic.begin(), by_magic.end(), [&](int a, int b) { return files[a].name < files[b].name; });
    if (!by_magic.empty()) {
      for (int k : by_magic) files[k].consumed = true;
      archive_sets.push_back(by_magic);
      archive_set_names.push_back(files[by_magic[0]].name);
    }
  }
  for (size_t a = 0; a < archive_sets.size(); ++a) {
    const std::vector<int>& idx = archive_sets[a];
    std::vector<ArchiveVolume> vols;
    for (int k : idx) vols.push_back({files[k].name, files[k].size});
    ByteReader reader = [&](int v, int64_t offset, int64_t length) -> absl::StatusOr<std::string> {
      if (v < 0 || v >= static_cast<int>(idx.size())) return absl::OutOfRangeError("no such volume");
      return read_range(files[idx[v]], offset, length);
    };
    const std::string set_desc = absl::StrCat("archive \"", archive_set_names[a], "\" (", idx.size(), " volume",
                                              idx.size() == 1 ? "" : "s", ")");
    auto mapping = MapArchive(vols, reader);
    if (!mapping.ok()) {
      if (mapping.status().code() == absl::StatusCode::kInvalidArgument) {
        return ImportFailure(FailureReason::kUnsupportedArchive,
                             absl::StrCat(set_desc, " is not a readable RAR or 7z set: ", mapping.status().message()));
      }
      FailureClass c = ClassifyFailure(mapping.status());
      return ImportFailure(c.reason, absl::StrCat("reading the headers of ", set_desc, ": ", mapping.status().message()));
    }
    if (mapping->rejection != ArchiveRejection::kNone) {
      std::string detail = absl::StrCat(set_desc, " (", ArchiveFormatName(mapping->format), ") cannot be streamed: ",
                                        ArchiveRejectionName(mapping->rejection), ": ", mapping->rejection_detail);
      if (mapping->rejection == ArchiveRejection::kUnsupportedEncrypted) {
        absl::StrAppend(&detail, job.password.empty() && !nzb.meta.password.has_value()
                                     ? " (no password was given)"
                                     : " (encrypted archives cannot be streamed, even with the password)");
      }
      // Corrupt headers are reported as unsupported too: the set cannot be
      // streamed and re-downloading the same articles will not change that.
      return ImportFailure(FailureReason::kUnsupportedArchive, detail);
    }
    const int base = static_cast<int>(plan.volumes.size());
    for (int k : idx) plan.volumes.push_back({files[k].name, files[k].size, files[k].segments});
    std::vector<ArchiveMember> streamable;
    for (const ArchiveMember& m : mapping->members) {
      if (m.is_directory || m.is_symlink || m.rejection != ArchiveRejection::kNone) continue;
      streamable.push_back(m);
    }
    std::vector<ArchiveMember> members;
    NZB_RETURN_IF_ERROR(ExpandNestedSets(reader, &streamable, &members));
    for (const ArchiveMember& m : streamable) {
      NZB_ASSIGN_OR_RETURN(bool expanded, ExpandNested(m, reader, &members));
      if (!expanded) members.push_back(m);
    }
    for (const ArchiveMember& m : members) {
      if (!filter.Allows(m.name)) continue;
      FilePlan fp;
      fp.name = namer.Claim(SanitizePath(m.name));
      fp.size = m.size;
      fp.mtime = m.mtime.value_or(files[idx[0]].mtime);
      for (const ArchiveExtent& e : m.extents) {
        fp.extents.push_back({base + e.volume, e.volume_offset, e.file_offset, e.length});
      }
      plan.files.push_back(std::move(fp));
    }
  }
  NZB_RETURN_IF_ERROR(check_cancel());

  // 7. Plain files.
  for (int i : candidates) {
    FileState& f = files[i];
    if (f.consumed || !filter.Allows(f.name)) continue;
    FilePlan fp;
    fp.name = namer.Claim(SanitizeFilename(f.name));
    fp.size = f.size;
    fp.mtime = f.mtime;
    fp.segments = std::move(f.segments);
    plan.files.push_back(std::move(fp));
  }
  if (plan.files.empty()) {
    return ImportFailure(FailureReason::kBadNzb,
                         absl::StrCat("nothing to import: none of the ", files.size(),
                                      " files is a media file or a streamable archive member (PAR2 and filtered "
                                      "files are left out)"));
  }
  report(0.9);
  return plan;
}

}  // namespace nzbmesh::importer
