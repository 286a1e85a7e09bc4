#include "common/strings/escape.h"

#include <gtest/gtest.h>

namespace nzbmesh {
namespace {

TEST(EscapeTest, JsonEscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(JsonEscape("a\"b\\c\nd\x01"), "a\\\"b\\\\c\\nd\\u0001");
  EXPECT_EQ(JsonEscape("Film (2024) – ünïcode"), "Film (2024) – ünïcode");
}

TEST(EscapeTest, XmlEscapesMarkupAndReplacesForbiddenControls) {
  EXPECT_EQ(XmlEscape("<a href='x'>&\"</a>"), "&lt;a href=&apos;x&apos;&gt;&amp;&quot;&lt;/a&gt;");
  EXPECT_EQ(XmlEscape(std::string("a\x01" "b\tc", 5)), "a\xEF\xBF\xBD" "b\tc");
}

}  // namespace
}  // namespace nzbmesh
