#include "services/frontend/webdav.h"

#include <pugixml.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "services/frontend/http_util.h"
#include "services/frontend/range.h"

namespace nzbmesh::frontend {
namespace {

constexpr absl::string_view kDav = "DAV:";

// Namespace URI and local name of an element, resolving xmlns declarations
// on the element and its ancestors.
std::pair<std::string, std::string> QName(const pugi::xml_node& n) {
  absl::string_view name = n.name();
  std::string prefix, local;
  size_t colon = name.find(':');
  if (colon == absl::string_view::npos) {
    local = std::string(name);
  } else {
    prefix = std::string(name.substr(0, colon));
    local = std::string(name.substr(colon + 1));
  }
  std::string attr = prefix.empty() ? "xmlns" : "xmlns:" + prefix;
  for (pugi::xml_node p = n; p; p = p.parent()) {
    if (p.type() != pugi::node_element) break;
    if (pugi::xml_attribute a = p.attribute(attr.c_str())) return {a.value(), local};
  }
  return {"", local};
}

const char* const kLiveProps[] = {"displayname", "getcontentlength", "getlastmodified", "getetag",
                                  "getcontenttype", "resourcetype", "creationdate"};

// Value XML of a DAV: live property, or false when it does not apply.
bool PropValue(const importer::v1::Entry& e, absl::string_view name, std::string* out) {
  absl::Time mtime = absl::FromUnixSeconds(e.mtime_unix());
  if (name == "displayname") {
    *out = XmlEscape(e.name());
  } else if (name == "getcontentlength") {
    if (e.directory()) return false;
    *out = absl::StrCat(e.size());
  } else if (name == "getlastmodified") {
    *out = HttpDate(mtime);
  } else if (name == "getetag") {
    if (e.directory()) return false;
    *out = XmlEscape(EntityTag(e));
  } else if (name == "getcontenttype") {
    *out = e.directory() ? "httpd/unix-directory" : ContentTypeFor(e.name());
  } else if (name == "resourcetype") {
    *out = e.directory() ? "<D:collection/>" : "";
  } else if (name == "creationdate") {
    *out = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", mtime, absl::UTCTimeZone());
  } else {
    return false;
  }
  return true;
}

std::string Href(const importer::v1::Entry& e, absl::string_view prefix) {
  std::string path = e.path().empty() ? "/" : e.path();
  std::string href = absl::StrCat(prefix, EncodePath(path));
  if (e.directory() && !absl::EndsWith(href, "/")) href += "/";
  return XmlEscape(href);
}

}  // namespace

absl::StatusOr<PropfindRequest> ParsePropfind(absl::string_view body) {
  PropfindRequest req;
  bool blank = true;
  for (char c : body) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') blank = false;
  }
  if (blank) return req;
  pugi::xml_document doc;
  // parse_default skips DOCTYPE and never resolves external entities.
  pugi::xml_parse_result res = doc.load_buffer(body.data(), body.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!res) return absl::InvalidArgumentError(absl::StrCat("malformed PROPFIND body: ", res.description()));
  pugi::xml_node root = doc.document_element();
  if (QName(root) != std::make_pair(std::string(kDav), std::string("propfind"))) {
    return absl::InvalidArgumentError("PROPFIND body root is not DAV:propfind");
  }
  bool seen = false;
  for (pugi::xml_node c : root.children()) {
    if (c.type() != pugi::node_element) continue;
    auto [ns, local] = QName(c);
    if (ns != kDav) continue;
    if (local == "allprop") {
      req.kind = PropfindRequest::Kind::kAllProp;
      seen = true;
    } else if (local == "propname") {
      req.kind = PropfindRequest::Kind::kPropName;
      seen = true;
    } else if (local == "prop") {
      req.kind = PropfindRequest::Kind::kProp;
      seen = true;
      for (pugi::xml_node p : c.children()) {
        if (p.type() == pugi::node_element) req.props.push_back(QName(p));
      }
    }
  }
  if (!seen) return absl::InvalidArgumentError("PROPFIND body names none of allprop, propname, prop");
  return req;
}

std::string RenderMultistatus(const std::vector<importer::v1::Entry>& entries, absl::string_view href_prefix,
                              const PropfindRequest& request) {
  std::string out = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">\n";
  for (const auto& e : entries) {
    absl::StrAppend(&out, "<D:response><D:href>", Href(e, href_prefix), "</D:href>");
    std::string found, missing;
    std::string v;
    if (request.kind == PropfindRequest::Kind::kProp) {
      int ns_counter = 0;
      for (const auto& [ns, local] : request.props) {
        if (ns == kDav && PropValue(e, local, &v)) {
          absl::StrAppend(&found, "<D:", local, ">", v, "</D:", local, ">");
        } else if (ns == kDav) {
          absl::StrAppend(&missing, "<D:", XmlEscape(local), "/>");
        } else {
          absl::StrAppend(&missing, "<X", ns_counter, ":", XmlEscape(local), " xmlns:X", ns_counter, "=\"",
                          XmlEscape(ns), "\"/>");
          ++ns_counter;
        }
      }
    } else {
      for (const char* name : kLiveProps) {
        if (!PropValue(e, name, &v)) continue;
        if (request.kind == PropfindRequest::Kind::kPropName) {
          absl::StrAppend(&found, "<D:", name, "/>");
        } else {
          absl::StrAppend(&found, "<D:", name, ">", v, "</D:", name, ">");
        }
      }
    }
    if (!found.empty() || missing.empty()) {
      absl::StrAppend(&out, "<D:propstat><D:prop>", found, "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>");
    }
    if (!missing.empty()) {
      absl::StrAppend(&out, "<D:propstat><D:prop>", missing,
                      "</D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>");
    }
    absl::StrAppend(&out, "</D:response>\n");
  }
  out += "</D:multistatus>\n";
  return out;
}

std::string PropfindFiniteDepthBody() {
  return "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
         "<D:error xmlns:D=\"DAV:\"><D:propfind-finite-depth/></D:error>\n";
}

std::string RenderHtmlListing(const importer::v1::Entry& dir, const std::vector<importer::v1::Entry>& children,
                              absl::string_view href_prefix) {
  std::string title = HtmlEscape(dir.path().empty() ? "/" : dir.path());
  std::string out = absl::StrCat("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ", title,
                                 "</title></head><body><h1>Index of ", title, "</h1><table>\n");
  if (dir.path() != "/" && !dir.path().empty()) {
    absl::StrAppend(&out, "<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
  }
  for (const auto& c : children) {
    std::string name = c.name() + (c.directory() ? "/" : "");
    absl::StrAppend(&out, "<tr><td><a href=\"", Href(c, href_prefix), "\">", HtmlEscape(name), "</a></td><td>",
                    c.directory() ? "-" : absl::StrCat(c.size()), "</td><td>",
                    HttpDate(absl::FromUnixSeconds(c.mtime_unix())), "</td></tr>\n");
  }
  out += "</table></body></html>\n";
  return out;
}

std::string EntityTag(const importer::v1::Entry& e) {
  if (!e.etag().empty()) {
    if (absl::StartsWith(e.etag(), "\"")) return e.etag();
    return absl::StrCat("\"", e.etag(), "\"");
  }
  return absl::StrCat("\"", e.size(), "-", e.mtime_unix(), "\"");
}

}  // namespace nzbmesh::frontend
