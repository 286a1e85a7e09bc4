#include "common/log/log.h"

#include <gtest/gtest.h>

namespace nzbmesh::log {
namespace {

TEST(LogTest, FormatsLogfmtWithQuotingAndEscapes) {
  std::string line = FormatLine(absl::FromUnixMillis(1700000000123), Level::kWarning, "broker", "dial failed",
                                {{"provider", "main"}, {"error", "connection refused \"x\""}, {"n", 3}});
  EXPECT_EQ(line,
            "ts=2023-11-14T22:13:20.123Z level=warn svc=broker msg=\"dial failed\" provider=main "
            "error=\"connection refused \\\"x\\\"\" n=3");
}

}  // namespace
}  // namespace nzbmesh::log
