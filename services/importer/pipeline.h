// ImportPipeline: turns one job's NZB into a ReleasePlan (what CompleteJob
// writes), talking to the broker only through BrokerClient (class IMPORT).
//
// Steps: parse the NZB (hardened parser in analysis/); STAT-sample the
// release (first 3 + last 2 + random middle segments) to fail fast on
// incomplete releases; fetch the first segment of every file with at most
// `fetch_concurrency` broker calls in flight (M3; the STAT sample is batched
// under the same bound); take real names and sizes from the yEnc headers
// (every part but the last has the first part's size, the last one's size is
// derived arithmetically); recover obfuscated names from PAR2 descriptions
// (MD5 of the first 16 KiB, from bytes already fetched); map stored RAR4/RAR5
// and 7z volume sets to extents (reading only headers, through the broker),
// expanding stored archives nested one level deep (single archives and
// multi-volume inner sets, e.g. .partN.rar volumes inside a .7z set); join raw
// .001 splits; sanitise and de-duplicate names.
//
// Failures are Statuses carrying a FailureReason (ImportFailure /
// ClassifyFailure): MISSING_ARTICLES, UNSUPPORTED_ARCHIVE, BAD_NZB are final;
// PROVIDER_UNAVAILABLE and INTERNAL are transient (retried with backoff).
//
// Threading: Run() blocks the calling worker thread and uses up to
// fetch_concurrency short-lived helper threads for the first-segment fan-out.
#ifndef NZBMESH_SERVICES_IMPORTER_PIPELINE_H_
#define NZBMESH_SERVICES_IMPORTER_PIPELINE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/importer/analysis/filenames.h"
#include "services/importer/analysis/nzb_parser.h"
#include "services/importer/broker_client.h"
#include "services/importer/importer_metrics.h"
#include "services/importer/store.h"

namespace nzbmesh::importer {

struct PipelineOptions {
  // Broker calls (STAT batches, fetches) one job has in flight at most (M3).
  // Must be >= 1.
  int fetch_concurrency = 8;
  // Random middle segments STATed per release besides the first 3 and last 2.
  // 0 = only the ends.
  int stat_sample_middle = 5;
  // Deadline of each broker call.
  absl::Duration call_timeout = absl::Seconds(60);
  NzbParseOptions nzb;
  // Which files end up in the catalog. Default keeps every extension (an
  // empty allow-list) and drops samples.
  FileFilterOptions filter = DefaultFilter();
  static FileFilterOptions DefaultFilter() {
    FileFilterOptions f;
    f.allowed_extensions.clear();
    f.drop_samples = true;
    return f;
  }
};

// A failed import: `reason` is attached to the Status as a payload.
absl::Status ImportFailure(FailureReason reason, const std::string& message);

struct FailureClass {
  FailureReason reason = FailureReason::kInternal;
  bool transient = true;  // retried with backoff while attempts remain
};
// The reason carried by ImportFailure, else one derived from the code.
FailureClass ClassifyFailure(const absl::Status& status);

class ImportPipeline {
 public:
  // `broker` and `metrics` (nullable) must outlive the pipeline.
  ImportPipeline(BrokerClient* broker, PipelineOptions options, ImporterMetrics* metrics);

  // Runs the analysis of one job. `cancelled` is polled between steps and
  // between fetches (CANCELLED when set); `progress` (0..1) may be null.
  // Every broker call is made with `calls` (nullable): its Cancel() ends the
  // calls in flight at once (they fail, so Run() returns an error) instead of
  // leaving them to their call_timeout.
  absl::StatusOr<ReleasePlan> Run(const JobRecord& job, const std::string& nzb_xml,
                                  const std::atomic<bool>& cancelled,
                                  const std::function<void(double)>& progress = nullptr,
                                  CallCanceller* calls = nullptr);

  const PipelineOptions& options() const { return options_; }

 private:
  BrokerClient* const broker_;
  const PipelineOptions options_;
  ImporterMetrics* const metrics_;
};

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_PIPELINE_H_
