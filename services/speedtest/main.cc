// nzbmesh speed-test service: provider speed tests through the broker's
// SPEEDTEST class, with dedupe, a result cache and history in PostgreSQL.
//   speedtest --config=nzbmesh.yaml
#include <cstdlib>

#include "common/config/config.h"
#include "common/grpc/credentials.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/service/service_main.h"
#include "nzbmesh/broker/v1/broker.grpc.pb.h"
#include "services/speedtest/result_store.h"
#include "services/speedtest/speed_tester.h"
#include "services/speedtest/speedtest_config.h"
#include "services/speedtest/speedtest_service.h"

int main(int argc, char** argv) {
  using namespace nzbmesh;
  const std::string config_path =
      InitService(argc, argv, "speedtest", "nzbmesh speedtest: provider speed tests through the broker");
  auto file = config::ConfigFile::Load(config_path);
  if (!file.ok()) {
    log::Error("cannot load config", {{"error", file.status().ToString()}});
    return 2;
  }
  auto cfg = speedtest::ParseSpeedTestConfig(*file);
  if (!cfg.ok()) {
    log::Error("invalid speedtest config", {{"error", cfg.status().ToString()}});
    return 2;
  }
  for (const auto& k : cfg->unknown_keys) log::Warning("unknown config key ignored", {{"key", k}});

  std::unique_ptr<speedtest::PgResultStore> store;
  if (!cfg->database_url_env.empty()) {
    const char* url = std::getenv(cfg->database_url_env.c_str());
    if (url == nullptr || *url == '\0') {
      log::Error("speedtest.database_url_env names an unset environment variable; set it or set "
                 "database_url_env: \"\" to run without history",
                 {{"env", cfg->database_url_env}});
      return 2;
    }
    auto s = speedtest::PgResultStore::Create(url);
    if (!s.ok()) {
      log::Error("cannot open the speed-test history database", {{"error", s.status().ToString()}});
      return 1;
    }
    store = std::move(*s);
  } else {
    log::Warning("no database configured: speed-test history (ListResults) is disabled");
  }

  auto channel = MakeChannel(cfg->broker, cfg->broker_tls);
  if (!channel.ok()) {
    log::Error("cannot create the broker channel", {{"broker", cfg->broker}, {"error", channel.status().ToString()}});
    return 2;
  }
  auto broker = broker::v1::Broker::NewStub(*channel);

  metrics::Registry registry;
  speedtest::SpeedTester tester(cfg->tester, broker.get(), store.get(), &registry);
  speedtest::SpeedTestService service(&tester);
  auto sm = ServiceMain::Start(cfg->service, {&service}, &registry);
  if (!sm.ok()) {
    log::Error("cannot start", {{"error", sm.status().ToString()}});
    return 1;
  }
  (*sm)->WaitForTermination();
  return 0;
}
