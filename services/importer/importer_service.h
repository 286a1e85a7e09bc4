// gRPC faces of the importer: nzbmesh.importer.v1.Importer over JobQueue and
// nzbmesh.importer.v1.Catalog over Store. Thin handlers (TF Serving style):
// validate, call one domain object that returns absl::Status, convert once at
// the edge. Synchronous gRPC API: handlers block a gRPC thread on the
// database for one short query.
#ifndef NZBMESH_SERVICES_IMPORTER_IMPORTER_SERVICE_H_
#define NZBMESH_SERVICES_IMPORTER_IMPORTER_SERVICE_H_

#include "nzbmesh/importer/v1/catalog.grpc.pb.h"
#include "nzbmesh/importer/v1/importer.grpc.pb.h"
#include "services/importer/job_queue.h"
#include "services/importer/store.h"

namespace nzbmesh::importer {


class ImporterServiceImpl final : public v1::Importer::Service {
 public:
  // `queue` must outlive the service.
  explicit ImporterServiceImpl(JobQueue* queue) : queue_(queue) {}

  grpc::Status SubmitNzb(grpc::ServerContext* ctx, const v1::SubmitNzbRequest* req,
                         v1::SubmitNzbResponse* resp) override;
  grpc::Status GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req, v1::Job* resp) override;
  grpc::Status ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest* req, v1::ListJobsResponse* resp) override;
  grpc::Status CancelJob(grpc::ServerContext* ctx, const v1::CancelJobRequest* req, v1::Job* resp) override;
  grpc::Status RetryJob(grpc::ServerContext* ctx, const v1::RetryJobRequest* req, v1::Job* resp) override;

 private:
  JobQueue* const queue_;
};

class CatalogServiceImpl final : public v1::Catalog::Service {
 public:
  // `store` must outlive the service.
  explicit CatalogServiceImpl(Store* store) : store_(store) {}

  grpc::Status ListDirectory(grpc::ServerContext* ctx, const v1::ListDirectoryRequest* req,
                             v1::ListDirectoryResponse* resp) override;
  grpc::Status Stat(grpc::ServerContext* ctx, const v1::StatRequest* req, v1::Entry* resp) override;
  grpc::Status GetFileLayout(grpc::ServerContext* ctx, const v1::GetFileLayoutRequest* req,
                             v1::FileLayout* resp) override;
  grpc::Status DeletePath(grpc::ServerContext* ctx, const v1::DeletePathRequest* req,
                          v1::DeletePathResponse* resp) override;

 private:
  Store* const store_;
};

// Conversions (exposed for tests).
void ToProto(const JobRecord& job, v1::Job* out);
void ToProto(const CatalogEntry& e, v1::Entry* out);
void ToProto(FileLayoutRecord&& l, v1::FileLayout* out);  // moves the strings

}  // namespace nzbmesh::importer

#endif  // NZBMESH_SERVICES_IMPORTER_IMPORTER_SERVICE_H_
