#include "services/frontend/grpc_catalog_client.h"

#include <chrono>
#include <utility>
#include <vector>

namespace nzbmesh::frontend {
namespace {

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

// One unary call: owns context, request and response until the callback ran.
template <typename Req, typename Resp>
struct Call {
  grpc::ClientContext context;
  Req request;
  Resp response;
  explicit Call(absl::Duration timeout) {
    if (timeout > absl::ZeroDuration()) {
      context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
    }
  }
};

// Starts `method` on a heap Call and hands (status, response) to `finish`.
template <typename Req, typename Resp, typename Method, typename Finish>
void Unary(absl::Duration timeout, Req request, Method method, Finish finish) {
  auto* call = new Call<Req, Resp>(timeout);
  call->request = std::move(request);
  method(&call->context, &call->request, &call->response, [call, finish = std::move(finish)](grpc::Status s) {
    std::unique_ptr<Call<Req, Resp>> owned(call);
    finish(s, std::move(owned->response));
  });
}

}  // namespace

GrpcCatalogClient::GrpcCatalogClient(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout)
    : timeout_(timeout), stub_(importer::v1::Catalog::NewStub(std::move(channel))) {}

void GrpcCatalogClient::Stat(const std::string& path, EntryCallback done) {
  importer::v1::StatRequest req;
  req.set_path(path);
  Unary<importer::v1::StatRequest, Entry>(
      timeout_, std::move(req),
      [this](auto* ctx, auto* rq, auto* rs, auto cb) { stub_->async()->Stat(ctx, rq, rs, std::move(cb)); },
      [done = std::move(done)](const grpc::Status& s, Entry e) {
        if (!s.ok()) {
          done(FromGrpc(s));
        } else {
          done(std::move(e));
        }
      });
}

void GrpcCatalogClient::ListDirectory(const std::string& path, ListCallback done) {
  importer::v1::ListDirectoryRequest req;
  req.set_path(path);
  Unary<importer::v1::ListDirectoryRequest, importer::v1::ListDirectoryResponse>(
      timeout_, std::move(req),
      [this](auto* ctx, auto* rq, auto* rs, auto cb) { stub_->async()->ListDirectory(ctx, rq, rs, std::move(cb)); },
      [done = std::move(done)](const grpc::Status& s, importer::v1::ListDirectoryResponse r) {
        if (!s.ok()) {
          done(FromGrpc(s));
          return;
        }
        done(std::vector<Entry>(std::make_move_iterator(r.mutable_entries()->begin()),
                                std::make_move_iterator(r.mutable_entries()->end())));
      });
}

void GrpcCatalogClient::GetFileLayout(const std::string& path, LayoutCallback done) {
  importer::v1::GetFileLayoutRequest req;
  req.set_path(path);
  Unary<importer::v1::GetFileLayoutRequest, FileLayout>(
      timeout_, std::move(req),
      [this](auto* ctx, auto* rq, auto* rs, auto cb) { stub_->async()->GetFileLayout(ctx, rq, rs, std::move(cb)); },
      [done = std::move(done)](const grpc::Status& s, FileLayout l) {
        if (!s.ok()) {
          done(FromGrpc(s));
          return;
        }
        done(std::make_shared<const FileLayout>(std::move(l)));
      });
}

void GrpcCatalogClient::DeletePath(const std::string& path, DeleteCallback done) {
  importer::v1::DeletePathRequest req;
  req.set_path(path);
  Unary<importer::v1::DeletePathRequest, importer::v1::DeletePathResponse>(
      timeout_, std::move(req),
      [this](auto* ctx, auto* rq, auto* rs, auto cb) { stub_->async()->DeletePath(ctx, rq, rs, std::move(cb)); },
      [done = std::move(done)](const grpc::Status& s, importer::v1::DeletePathResponse r) {
        if (!s.ok()) {
          done(FromGrpc(s));
          return;
        }
        done(r.files_deleted());
      });
}

GrpcImporterClient::GrpcImporterClient(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout)
    : timeout_(timeout), stub_(importer::v1::Importer::NewStub(std::move(channel))) {}

void GrpcImporterClient::SubmitNzb(const importer::v1::SubmitNzbRequest& request, SubmitCallback done) {
  Unary<importer::v1::SubmitNzbRequest, importer::v1::SubmitNzbResponse>(
      timeout_, request,
      [this](auto* ctx, auto* rq, auto* rs, auto cb) { stub_->async()->SubmitNzb(ctx, rq, rs, std::move(cb)); },
      [done = std::move(done)](const grpc::Status& s, importer::v1::SubmitNzbResponse r) {
        if (!s.ok()) {
          done(FromGrpc(s));
        } else {
          done(std::move(r));
        }
      });
}

void GrpcImporterClient::ListJobs(importer::v1::JobState state, int limit, JobsCallback done) {
  importer::v1::ListJobsRequest req;
  req.set_state(state);
  req.set_limit(limit);
  Unary<importer::v1::ListJobsRequest, importer::v1::ListJobsResponse>(
      timeout_, std::move(req),
      [this](auto* ctx, auto* rq, auto* rs, auto cb) { stub_->async()->ListJobs(ctx, rq, rs, std::move(cb)); },
      [done = std::move(done)](const grpc::Status& s, importer::v1::ListJobsResponse r) {
        if (!s.ok()) {
          done(FromGrpc(s));
          return;
        }
        done(std::vector<importer::v1::Job>(std::make_move_iterator(r.mutable_jobs()->begin()),
                                            std::make_move_iterator(r.mutable_jobs()->end())));
      });
}

void GrpcImporterClient::CancelJob(int64_t job_id, JobCallback done) {
  importer::v1::CancelJobRequest req;
  req.set_job_id(job_id);
  Unary<importer::v1::CancelJobRequest, importer::v1::Job>(
      timeout_, std::move(req),
      [this](auto* ctx, auto* rq, auto* rs, auto cb) { stub_->async()->CancelJob(ctx, rq, rs, std::move(cb)); },
      [done = std::move(done)](const grpc::Status& s, importer::v1::Job j) {
        if (!s.ok()) {
          done(FromGrpc(s));
        } else {
          done(std::move(j));
        }
      });
}

}  // namespace nzbmesh::frontend
