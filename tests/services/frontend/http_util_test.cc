#include "services/frontend/http_util.h"

#include "gtest/gtest.h"
#include "services/frontend/webdav.h"

namespace nzbmesh::frontend {
namespace {

TEST(DecodeTargetPath, MapsUnderPrefix) {
  EXPECT_EQ(DecodeTargetPath("/dav", "/dav").value(), "/");
  EXPECT_EQ(DecodeTargetPath("/dav/", "/dav").value(), "/");
  EXPECT_EQ(DecodeTargetPath("/dav/tv//a%20b/", "/dav").value(), "/tv/a b");
  EXPECT_EQ(DecodeTargetPath("/dav/%E2%9C%93", "/dav").value(), "/\xE2\x9C\x93");
}

TEST(DecodeTargetPath, RejectsTraversalAndBadBytes) {
  for (const char* p : {"/dav/..", "/dav/a/../b", "/dav/%2e%2e/x", "/dav/%2E%2e", "/dav/.", "/dav/a%00",
                        "/dav/a%2Fb", "/dav/a%5Cb", "/dav/a%", "/dav/a%4", "/dav/a%g0", "/davx/a", "/other"}) {
    EXPECT_EQ(DecodeTargetPath(p, "/dav").status().code(), absl::StatusCode::kInvalidArgument) << p;
  }
}

TEST(EncodePath, EscapesReservedCharacters) {
  EXPECT_EQ(EncodePath("/tv/A & B <1>?#%.mkv"), "/tv/A%20%26%20B%20%3C1%3E%3F%23%25.mkv");
}

TEST(ParseQuery, DecodesComponents) {
  auto q = ParseQuery("mode=addfile&nzbname=a+b%21&x&mode=second");
  EXPECT_EQ(q["mode"], "addfile");
  EXPECT_EQ(q["nzbname"], "a b!");
  EXPECT_EQ(q.count("x"), 1u);
}

TEST(Escaping, XmlAndJson) {
  EXPECT_EQ(XmlEscape("a<b>&\"'\x01"), "a&lt;b&gt;&amp;&quot;&apos;\xEF\xBF\xBD");
  EXPECT_EQ(JsonEscape("a\"b\\c\n\x01"), "a\\\"b\\\\c\\n\\u0001");
}

TEST(BasicAuth, Parses) {
  std::string u, p;
  ASSERT_TRUE(ParseBasicAuth("Basic cGxheWVyOnM6M2NyZXQ=", &u, &p));  // player:s:3cret
  EXPECT_EQ(u, "player");
  EXPECT_EQ(p, "s:3cret");
  EXPECT_FALSE(ParseBasicAuth("Bearer x", &u, &p));
  EXPECT_FALSE(ParseBasicAuth("Basic !!!", &u, &p));
}

TEST(Sha256Hex, KnownVector) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
}

TEST(ParseMultipart, FieldsAndFiles) {
  std::string body =
      "--B\r\nContent-Disposition: form-data; name=\"cat\"\r\n\r\ntv\r\n"
      "--B\r\nContent-Disposition: form-data; name=\"nzbfile\"; filename=\"x.nzb\"\r\n"
      "Content-Type: application/x-nzb\r\n\r\n<nzb>\r\n</nzb>\r\n--B--\r\n";
  auto parts = ParseMultipart("multipart/form-data; boundary=\"B\"", body);
  ASSERT_TRUE(parts.ok()) << parts.status();
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].name, "cat");
  EXPECT_EQ((*parts)[0].data, "tv");
  EXPECT_EQ((*parts)[1].filename, "x.nzb");
  EXPECT_EQ((*parts)[1].data, "<nzb>\r\n</nzb>");
  EXPECT_FALSE(ParseMultipart("multipart/form-data", body).ok());
  EXPECT_FALSE(ParseMultipart("multipart/form-data; boundary=B", "--B\r\nno end").ok());
}

TEST(ParsePropfind, Kinds) {
  EXPECT_EQ(ParsePropfind("").value().kind, PropfindRequest::Kind::kAllProp);
  EXPECT_EQ(ParsePropfind("<propfind xmlns=\"DAV:\"><propname/></propfind>").value().kind,
            PropfindRequest::Kind::kPropName);
  auto r = ParsePropfind("<D:propfind xmlns:D=\"DAV:\"><D:prop><D:getetag/><Z:x xmlns:Z=\"urn:z\"/></D:prop></D:propfind>");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->props.size(), 2u);
  EXPECT_EQ(r->props[0], std::make_pair(std::string("DAV:"), std::string("getetag")));
  EXPECT_EQ(r->props[1], std::make_pair(std::string("urn:z"), std::string("x")));
}

TEST(ParsePropfind, RejectsMalformed) {
  EXPECT_EQ(ParsePropfind("<propfind").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParsePropfind("<propfind><allprop/></propfind>").status().code(),  // no DAV: namespace
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParsePropfind("<propfind xmlns=\"DAV:\"/>").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RenderMultistatus, PropnameListsNamesOnly) {
  importer::v1::Entry dir;
  dir.set_path("/tv");
  dir.set_name("tv");
  dir.set_directory(true);
  PropfindRequest req;
  req.kind = PropfindRequest::Kind::kPropName;
  std::string xml = RenderMultistatus({dir}, "/dav", req);
  EXPECT_NE(xml.find("<D:href>/dav/tv/</D:href><D:propstat><D:prop><D:displayname/><D:getlastmodified/>"
                     "<D:getcontenttype/><D:resourcetype/><D:creationdate/></D:prop>"),
            std::string::npos)
      << xml;
}

}  // namespace
}  // namespace nzbmesh::frontend
