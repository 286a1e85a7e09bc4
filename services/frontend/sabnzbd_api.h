// The SABnzbd-compatible API (/sabnzbd/api) that Sonarr, Radarr and Lidarr
// speak: version, get_config, get_cats, addfile, addurl, queue (+delete),
// history, fullstatus. JSON shaped as SABnzbd returns it. Asynchronous over
// ImporterClient (and NzbUrlClient for addurl).
#ifndef NZBMESH_SERVICES_FRONTEND_SABNZBD_API_H_
#define NZBMESH_SERVICES_FRONTEND_SABNZBD_API_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "services/frontend/catalog_client.h"
#include "services/frontend/http_util.h"
#include "services/frontend/nzb_url_client.h"

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
//
// mode=addurl: `name` is the NZB's URL; `urls` downloads it (caps, timeout,
// redirects: NzbUrlClient) and it is submitted exactly like addfile. The
// release name is `nzbname`, else the Content-Disposition file name, else the
// last segment of the URL path. Failures answer {"status":false,"error":...}
// naming the URL without its query (indexer API keys live there).
void HandleSabApi(const SabOptions& options, ImporterClient* importer, NzbUrlClient* urls,
                  std::map<std::string, std::string> params, std::vector<FormPart> files,
                  std::function<void(SabReply)> done);

}  // namespace nzbmesh::frontend

#endif  // NZBMESH_SERVICES_FRONTEND_SABNZBD_API_H_
