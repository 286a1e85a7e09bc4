// broker_bench_server: the server side of broker_benchmark in its own
// process, so the benchmark's clients do not share an address space (or an
// allocator, or gRPC's thread pools) with the broker.
//
//   broker_bench_server ARTICLES ARTICLE_BYTES CONNECTIONS DEPTH
//
// Posts ARTICLES articles of ARTICLE_BYTES random bytes (seed 1) as
// "bench-<i>@bench" to a fake news server, starts a broker (the real Pool and
// BrokerService behind the real ServiceMain gRPC server) with one provider of
// CONNECTIONS × DEPTH slots on it, prints "<nntp port> <grpc port>\n" on
// stdout once both listen, and serves until stdin reaches EOF (the benchmark
// closes it, or exits).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/metrics/metrics.h"
#include "common/service/service_main.h"
#include "services/broker/broker_service.h"
#include "services/broker/pool.h"
#include "tests/fakes/nntp_server/nntp_server.h"

int main(int argc, char** argv) {
  using namespace nzbmesh;
  int articles = 0, conns = 0, depth = 0;
  int64_t article_bytes = 0;
  if (argc != 5 || !absl::SimpleAtoi(argv[1], &articles) || !absl::SimpleAtoi(argv[2], &article_bytes) ||
      !absl::SimpleAtoi(argv[3], &conns) || !absl::SimpleAtoi(argv[4], &depth)) {
    std::fprintf(stderr, "usage: %s ARTICLES ARTICLE_BYTES CONNECTIONS DEPTH\n", argv[0]);
    return 2;
  }
  auto server = testing::FakeNntpServer::Start({});
  if (!server.ok()) {
    std::fprintf(stderr, "news server: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::mt19937_64 rng(1);
  for (int i = 0; i < articles; ++i) {
    std::string data(static_cast<size_t>(article_bytes), '\0');
    for (auto& c : data) c = static_cast<char>(rng());
    (*server)->PostYencArticle(absl::StrCat("bench-", i, "@bench"), data, "bench.bin");
  }

  metrics::Registry registry;
  broker::PoolOptions po;
  broker::ProviderOptions p;
  p.name = "bench";
  p.connection.host = "127.0.0.1";
  p.connection.port = (*server)->port();
  p.max_connections = conns;
  p.pipeline_depth = depth;
  po.providers = {p};
  auto pool = broker::Pool::Create(po, &registry);
  if (!pool.ok()) {
    std::fprintf(stderr, "pool: %s\n", pool.status().ToString().c_str());
    return 1;
  }
  broker::BrokerService service(pool->get());
  ServiceOptions so;
  so.name = "broker";
  so.metrics_listen = "";
  auto sm = ServiceMain::Start(so, {&service}, &registry);
  if (!sm.ok()) {
    std::fprintf(stderr, "broker: %s\n", sm.status().ToString().c_str());
    return 1;
  }
  std::printf("%d %d\n", (*server)->port(), (*sm)->grpc_port());
  std::fflush(stdout);

  char buf[64];
  while (read(STDIN_FILENO, buf, sizeof buf) > 0) {
  }
  (*sm)->Shutdown(absl::Seconds(1));
  (*pool)->Shutdown();
  return 0;
}
