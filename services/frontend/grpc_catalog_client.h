// CatalogClient and ImporterClient over the importer's gRPC services
// (nzbmesh.importer.v1.Catalog / Importer), using the unary callback API so
// HTTP io threads never block. Wrap GrpcCatalogClient in CachingCatalogClient
// for the layout cache.
#ifndef NZBMESH_SERVICES_FRONTEND_GRPC_CATALOG_CLIENT_H_
#define NZBMESH_SERVICES_FRONTEND_GRPC_CATALOG_CLIENT_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/time/time.h"
#include "nzbmesh/importer/v1/catalog.grpc.pb.h"
#include "nzbmesh/importer/v1/importer.grpc.pb.h"
#include "services/frontend/catalog_client.h"

namespace nzbmesh::frontend {

class GrpcCatalogClient : public CatalogClient {
 public:
  // Deadline of each call; 0 = none.
  GrpcCatalogClient(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout = absl::Seconds(10));
  void Stat(const std::string& path, EntryCallback done) override;
  void ListDirectory(const std::string& path, ListCallback done) override;
  void GetFileLayout(const std::string& path, LayoutCallback done) override;
  void DeletePath(const std::string& path, DeleteCallback done) override;

 private:
  const absl::Duration timeout_;
  std::unique_ptr<importer::v1::Catalog::Stub> stub_;
};

class GrpcImporterClient : public ImporterClient {
 public:
  GrpcImporterClient(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout = absl::Seconds(30));
  void SubmitNzb(const importer::v1::SubmitNzbRequest& request, SubmitCallback done) override;
  void ListJobs(importer::v1::JobState state, int limit, JobsCallback done) override;
  void CancelJob(int64_t job_id, JobCallback done) override;

 private:
  const absl::Duration timeout_;
  std::unique_ptr<importer::v1::Importer::Stub> stub_;
};

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_GRPC_CATALOG_CLIENT_H_
