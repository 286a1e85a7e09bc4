// The SABnzbd-compatible API (/sabnzbd/api) that Sonarr, Radarr and Lidarr
// speak: version, get_config, get_cats, addfile, queue (+delete), history,
// fullstatus. JSON shaped as SABnzbd returns it. Asynchronous over ImporterClient.
#ifndef NZBMESH_SERVICES_FRONTEND_SABNZBD_API_H_
#define NZBMESH_SERVICES_FRONTEND_SABNZBD_API_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "services/frontend/catalog_client.h"
#include "services/frontend/http_util.h"

namespace nzbmesh::frontend {

struct SabOptions {
  std::string api_key;       // empty = only mode=version is answered
  std::string complete_dir;  // prefix of history `storage`
  std::vector<std::string> categories;
  std::string version = "4.3.2";  // what *arr apps see as the SABnzbd version
};

struct SabReply {
  int status = 200;
  std::string body;  // JSON
};

// `params` merges the query string and multipart text fields; `files` holds
// uploaded files. `done` runs exactly once, on any thread.
void HandleSabApi(const SabOptions& options, ImporterClient* importer, std::map<std::string, std::string> params,
                  std::vector<FormPart> files, std::function<void(SabReply)> done);

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_SABNZBD_API_H_
