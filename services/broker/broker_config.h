// The `broker` section of nzbmesh.yaml → ServiceOptions + PoolOptions.
#ifndef NZBMESH_SERVICES_BROKER_BROKER_CONFIG_H_
#define NZBMESH_SERVICES_BROKER_BROKER_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config/config.h"
#include "common/service/service_main.h"
#include "services/broker/pool.h"

namespace nzbmesh::broker {

struct BrokerConfig {
  ServiceOptions service;
  PoolOptions pool;
  std::vector<std::string> unknown_keys;  // reported as warnings at start-up
};

// Reads and validates the broker section. Secrets come from password_env /
// password_file. Errors name the key.
absl::StatusOr<BrokerConfig> ParseBrokerConfig(const config::ConfigFile& file);

}  // namespace nzbmesh::broker

#endif  // NZBMESH_SERVICES_BROKER_BROKER_CONFIG_H_
