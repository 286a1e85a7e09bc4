// The importer's Prometheus metrics, resolved once at construction.
// Labels come from bounded sets only (state, result, reason, health).
#ifndef NZBMESH_SERVICES_IMPORTER_IMPORTER_METRICS_H_
#define NZBMESH_SERVICES_IMPORTER_IMPORTER_METRICS_H_

#include "common/metrics/metrics.h"
#include "services/importer/store.h"

namespace nzbmesh::importer {

struct ImporterMetrics {
  explicit ImporterMetrics(metrics::Registry& r)
      : jobs(metrics::BuildGauge().Name("nzbmesh_importer_jobs").Help("Jobs in the database by state.").Register(r)),
        jobs_finished(metrics::BuildCounter()
                          .Name("nzbmesh_importer_jobs_finished_total")
                          .Help("Job attempts finished by this process, by result and failure reason.")
                          .Register(r)),
        job_duration(metrics::BuildHistogram()
                         .Name("nzbmesh_importer_job_duration_seconds")
                         .Help("Wall time of one job attempt, lease wait excluded.")
                         .Register(r)
                         .Add({}, metrics::ExponentialBuckets(0.05, 2, 14))),
        segments_checked(metrics::BuildCounter()
                             .Name("nzbmesh_importer_segments_checked_total")
                             .Help("Articles STAT-checked, by purpose (import, health) and result.")
                             .Register(r)),
        segments_fetched(metrics::BuildCounter()
                             .Name("nzbmesh_importer_segments_fetched_total")
                             .Help("Articles fetched by import jobs (first segments and archive headers).")
                             .Register(r)
                             .Add({})),
        catalog_bytes(metrics::BuildCounter()
                          .Name("nzbmesh_importer_catalog_bytes_added_total")
                          .Help("Bytes of virtual files added to the catalog.")
                          .Register(r)
                          .Add({})),
        catalog_files(metrics::BuildCounter()
                          .Name("nzbmesh_importer_catalog_files_added_total")
                          .Help("Virtual files added to the catalog.")
                          .Register(r)
                          .Add({})),
        health_results(metrics::BuildCounter()
                           .Name("nzbmesh_importer_health_checks_total")
                           .Help("Health checks of catalog files, by result.")
                           .Register(r)),
        submitted(metrics::BuildCounter()
                      .Name("nzbmesh_importer_nzbs_submitted_total")
                      .Help("NZBs submitted, by source (grpc, watch) and whether they were duplicates.")
                      .Register(r)),
        cancel_watcher_listening(metrics::BuildGauge()
                                     .Name("nzbmesh_importer_cancel_watcher_listening")
                                     .Help("1 while this importer LISTENs for job cancels of every replica; at 0 "
                                           "a job cancelled elsewhere stops here only at its next heartbeat.")
                                     .Register(r)
                                     .Add({})),
        cancels_heard(metrics::BuildCounter()
                          .Name("nzbmesh_importer_cancels_heard_total")
                          .Help("Job cancels heard from the database (any replica's), whether or not this "
                                "process ran the job.")
                          .Register(r)
                          .Add({})) {}

  metrics::Family<metrics::Gauge>& jobs;                // {state}
  metrics::Family<metrics::Counter>& jobs_finished;     // {result, reason}
  metrics::Histogram& job_duration;
  metrics::Family<metrics::Counter>& segments_checked;  // {purpose, result}
  metrics::Counter& segments_fetched;
  metrics::Counter& catalog_bytes;
  metrics::Counter& catalog_files;
  metrics::Family<metrics::Counter>& health_results;    // {result}
  metrics::Family<metrics::Counter>& submitted;         // {source, duplicate}
  metrics::Gauge& cancel_watcher_listening;
  metrics::Counter& cancels_heard;
};

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_IMPORTER_METRICS_H_
