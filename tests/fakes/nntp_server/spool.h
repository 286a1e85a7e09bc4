// Posting a folder of files to a FakeNntpServer (nntp_testserver --spool):
// what the demo and the end-to-end tests serve.
#ifndef NZBMESH_TESTS_FAKES_NNTP_SERVER_SPOOL_H_
#define NZBMESH_TESTS_FAKES_NNTP_SERVER_SPOOL_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "tests/fakes/nntp_server/nntp_server.h"

namespace nzbmesh::testing {

// Posts every regular file of `dir` (but *.nzb) in `part_size` articles and
// writes "<file>.nzb" next to it; a subdirectory is one release: all its
// files are posted and "<dir>.nzb" lists them. Message-ids are
// SpoolMessageIdPrefix(bytes, name) + ".<part>@...". Errors: the folder
// cannot be read.
absl::Status PostSpool(FakeNntpServer* server, const std::string& dir, int64_t part_size);

// "spool.<hash of the bytes>.<name>": a file's ids depend on that file
// alone, not on what else is in the spool, so several servers over copies of
// one spool hold the same articles under the same ids (several providers in
// the end-to-end tests), and a release imported from a spool stays readable
// when files are added to it later (a restarted demo). A file whose bytes
// changed gets new ids: the catalog's old layout then reads as missing, not
// as wrong bytes.
std::string SpoolMessageIdPrefix(const std::string& data, const std::string& name);

}  // namespace nzbmesh::testing

#endif  // NZBMESH_TESTS_FAKES_NNTP_SERVER_SPOOL_H_
