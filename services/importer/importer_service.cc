#include "services/importer/importer_service.h"

#include "absl/strings/str_cat.h"
#include "common/status/grpc_status.h"

namespace nzbmesh::importer {

void ToProto(const JobRecord& j, v1::Job* out) {
  out->set_job_id(j.id);
  out->set_state(static_cast<v1::JobState>(static_cast<int>(j.state)));
  out->set_name(j.name);
  out->set_category(j.category);
  out->set_priority(j.priority);
  out->set_attempts(j.attempts);
  out->set_failure_reason(static_cast<v1::FailureReason>(static_cast<int>(j.reason)));
  out->set_message(j.message);
  out->set_nzb_sha256(j.nzb_sha256);
  out->set_created_unix_ms(absl::ToUnixMillis(j.created));
  out->set_updated_unix_ms(absl::ToUnixMillis(j.updated));
  out->set_owner(j.owner);
  out->set_progress(j.progress);
  out->set_catalog_path(j.catalog_path);
}

void ToProto(const CatalogEntry& e, v1::Entry* out) {
  out->set_path(e.path);
  out->set_name(e.name);
  out->set_directory(e.directory);
  out->set_size(e.size);
  out->set_mtime_unix(absl::ToUnixSeconds(e.mtime));
  out->set_health(static_cast<v1::Health>(static_cast<int>(e.health)));
  out->set_etag(e.etag);
}

namespace {
// Moves the message-ids: a 70,000-segment layout is ~3 MB of strings.
void SegmentsToProto(std::vector<LayoutSegment>&& in, google::protobuf::RepeatedPtrField<v1::Segment>* out) {
  out->Reserve(static_cast<int>(in.size()));
  for (auto& s : in) {
    v1::Segment* p = out->Add();
    p->set_message_id(std::move(s.message_id));
    p->set_offset(s.offset);
    p->set_size(s.size);
  }
}
}  // namespace

void ToProto(FileLayoutRecord&& l, v1::FileLayout* out) {
  ToProto(l.entry, out->mutable_entry());
  SegmentsToProto(std::move(l.segments), out->mutable_segments());
  for (auto& v : l.volumes) {
    v1::Volume* pv = out->add_volumes();
    pv->set_name(v.name);
    pv->set_size(v.size);
    SegmentsToProto(std::move(v.segments), pv->mutable_segments());
  }
  for (const auto& e : l.extents) {
    v1::Extent* pe = out->add_extents();
    pe->set_volume(e.volume);
    pe->set_volume_offset(e.volume_offset);
    pe->set_file_offset(e.file_offset);
    pe->set_length(e.length);
  }
}

grpc::Status ImporterServiceImpl::SubmitNzb(grpc::ServerContext*, const v1::SubmitNzbRequest* req,
                                            v1::SubmitNzbResponse* resp) {
  Submission s;
  s.nzb = req->nzb();
  s.filename = req->filename();
  s.category = req->category();
  s.name = req->name();
  s.priority = req->priority();
  s.password = req->password();
  auto r = queue_->Submit(s, "grpc");
  if (!r.ok()) return ToGrpcStatus(r.status());
  resp->set_job_id(r->job_id);
  resp->set_duplicate(r->duplicate);
  return grpc::Status::OK;
}

grpc::Status ImporterServiceImpl::GetJob(grpc::ServerContext*, const v1::GetJobRequest* req, v1::Job* resp) {
  auto j = queue_->Get(req->job_id());
  if (!j.ok()) return ToGrpcStatus(j.status());
  ToProto(*j, resp);
  return grpc::Status::OK;
}

grpc::Status ImporterServiceImpl::ListJobs(grpc::ServerContext*, const v1::ListJobsRequest* req,
                                           v1::ListJobsResponse* resp) {
  std::optional<JobState> state;
  if (req->state() != v1::JOB_STATE_UNSPECIFIED) {
    if (req->state() < v1::QUEUED || req->state() > v1::CANCELLED) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat("unknown job state ", req->state()));
    }
    state = static_cast<JobState>(static_cast<int>(req->state()));
  }
  if (req->limit() < 0 || req->limit() > 10000) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "limit must be within 0..10000");
  }
  auto jobs = queue_->List(state, req->limit());
  if (!jobs.ok()) return ToGrpcStatus(jobs.status());
  for (const auto& j : *jobs) ToProto(j, resp->add_jobs());
  return grpc::Status::OK;
}

grpc::Status ImporterServiceImpl::CancelJob(grpc::ServerContext*, const v1::CancelJobRequest* req, v1::Job* resp) {
  auto j = queue_->Cancel(req->job_id());
  if (!j.ok()) return ToGrpcStatus(j.status());
  ToProto(*j, resp);
  return grpc::Status::OK;
}

grpc::Status ImporterServiceImpl::RetryJob(grpc::ServerContext*, const v1::RetryJobRequest* req, v1::Job* resp) {
  auto j = queue_->Retry(req->job_id());
  if (!j.ok()) return ToGrpcStatus(j.status());
  ToProto(*j, resp);
  return grpc::Status::OK;
}

grpc::Status CatalogServiceImpl::ListDirectory(grpc::ServerContext*, const v1::ListDirectoryRequest* req,
                                               v1::ListDirectoryResponse* resp) {
  auto entries = store_->ListDirectory(req->path().empty() ? "/" : req->path());
  if (!entries.ok()) return ToGrpcStatus(entries.status());
  for (const auto& e : *entries) ToProto(e, resp->add_entries());
  return grpc::Status::OK;
}

grpc::Status CatalogServiceImpl::Stat(grpc::ServerContext*, const v1::StatRequest* req, v1::Entry* resp) {
  auto e = store_->Stat(req->path());
  if (!e.ok()) return ToGrpcStatus(e.status());
  ToProto(*e, resp);
  return grpc::Status::OK;
}

grpc::Status CatalogServiceImpl::GetFileLayout(grpc::ServerContext*, const v1::GetFileLayoutRequest* req,
                                               v1::FileLayout* resp) {
  auto l = store_->GetFileLayout(req->path());
  if (!l.ok()) return ToGrpcStatus(l.status());
  ToProto(std::move(*l), resp);
  return grpc::Status::OK;
}

grpc::Status CatalogServiceImpl::DeletePath(grpc::ServerContext*, const v1::DeletePathRequest* req,
                                            v1::DeletePathResponse* resp) {
  auto n = store_->DeletePath(req->path());
  if (!n.ok()) return ToGrpcStatus(n.status());
  resp->set_files_deleted(*n);
  return grpc::Status::OK;
}

}  // namespace nzbmesh::importer
