// The `speedtest` section of nzbmesh.yaml:
//
//   speedtest:
//     grpc_listen: 127.0.0.1:50053
//     metrics_listen: 127.0.0.1:9094
//     broker: 127.0.0.1:50051
//     broker_tls: {ca_file: ..., cert_file: ..., key_file: ...}   # optional
//     database_url_env: NZBMESH_DATABASE_URL   # history; "" = no history
//     result_ttl: 60s
//     max_runs_per_caller: 6        # runs started per caller per rate_window; 0 = unlimited
//     rate_window: 1m
//     default_duration: 10s
//     max_duration: 2m
//     default_message_ids: [...]    # or default_nzb: /path/test.nzb
//     tests:                        # per provider (overrides the defaults)
//       - provider: main
//         message_ids: [...]        # and/or nzb: /path/test.nzb
#ifndef NZBMESH_SERVICES_SPEEDTEST_SPEEDTEST_CONFIG_H_
#define NZBMESH_SERVICES_SPEEDTEST_SPEEDTEST_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config/config.h"
#include "common/grpc/credentials.h"
#include "common/service/service_main.h"
#include "services/speedtest/speed_tester.h"

namespace nzbmesh::speedtest {

struct SpeedTestConfig {
  ServiceOptions service;
  std::string broker = "127.0.0.1:50051";
  ClientTlsOptions broker_tls;
  std::string database_url_env;  // "" = history disabled
  SpeedTesterOptions tester;
  std::vector<std::string> unknown_keys;
};

absl::StatusOr<SpeedTestConfig> ParseSpeedTestConfig(const config::ConfigFile& file);

// Message-ids of every segment of an NZB (without angle brackets), in file
// and segment order. INVALID_ARGUMENT when it is not an NZB or has none.
absl::StatusOr<std::vector<std::string>> MessageIdsFromNzb(const std::string& xml);

}  // namespace nzbmesh::speedtest

#endif  // NZBMESH_SERVICES_SPEEDTEST_SPEEDTEST_CONFIG_H_
