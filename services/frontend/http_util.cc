#include "services/frontend/http_util.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace nzbmesh::frontend {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

absl::StatusOr<std::string> DecodeTargetPath(absl::string_view path, absl::string_view prefix) {
  if (!absl::StartsWith(path, prefix) || (path.size() > prefix.size() && path[prefix.size()] != '/')) {
    return absl::InvalidArgumentError(absl::StrCat("path is not under ", prefix));
  }
  path.remove_prefix(prefix.size());
  std::string out;
  for (absl::string_view raw : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    std::string seg;
    for (size_t i = 0; i < raw.size(); ++i) {
      char c = raw[i];
      if (c == '%') {
        if (i + 2 >= raw.size()) {
          return absl::InvalidArgumentError("truncated percent-escape in path");
        }
        int hi = HexValue(raw[i + 1]), lo = HexValue(raw[i + 2]);
        if (hi < 0 || lo < 0) return absl::InvalidArgumentError("invalid percent-escape in path");
        c = static_cast<char>(hi * 16 + lo);
        i += 2;
        if (c == '/') return absl::InvalidArgumentError("encoded '/' in path");
        if (c == '\\') return absl::InvalidArgumentError("encoded '\\' in path");
      }
      if (c == '\0') return absl::InvalidArgumentError("NUL byte in path");
      seg.push_back(c);
    }
    if (seg == "." || seg == "..") return absl::InvalidArgumentError("'.' or '..' segment in path");
    absl::StrAppend(&out, "/", seg);
  }
  return out.empty() ? std::string("/") : out;
}

std::string EncodePath(absl::string_view path) {
  std::string out;
  for (unsigned char c : path) {
    if (absl::ascii_isalnum(c) || c == '/' || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppendFormat(&out, "%%%02X", c);
    }
  }
  return out;
}

std::string DecodeQueryComponent(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::map<std::string, std::string> ParseQuery(absl::string_view query) {
  std::map<std::string, std::string> out;
  for (absl::string_view kv : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    out.emplace(DecodeQueryComponent(p.first), DecodeQueryComponent(p.second));
  }
  return out;
}


std::string HtmlEscape(absl::string_view s) { return XmlEscape(s); }


std::string ContentTypeFor(absl::string_view name) {
  static const std::pair<const char*, const char*> kTypes[] = {
      {".mkv", "video/x-matroska"}, {".mk3d", "video/x-matroska"}, {".mka", "audio/x-matroska"},
      {".mp4", "video/mp4"},        {".m4v", "video/x-m4v"},       {".avi", "video/x-msvideo"},
      {".ts", "video/mp2t"},        {".m2ts", "video/mp2t"},       {".webm", "video/webm"},
      {".mov", "video/quicktime"},  {".wmv", "video/x-ms-wmv"},    {".mpg", "video/mpeg"},
      {".mpeg", "video/mpeg"},      {".flac", "audio/flac"},       {".mp3", "audio/mpeg"},
      {".m4a", "audio/mp4"},        {".srt", "application/x-subrip"}, {".ass", "text/x-ssa"},
      {".sub", "text/plain"},       {".nfo", "text/plain"},        {".txt", "text/plain"},
      {".jpg", "image/jpeg"},       {".jpeg", "image/jpeg"},       {".png", "image/png"},
      {".nzb", "application/x-nzb"}, {".iso", "application/x-iso9660-image"},
  };
  std::string lower = absl::AsciiStrToLower(name);
  for (const auto& [ext, type] : kTypes) {
    if (absl::EndsWith(lower, ext)) return type;
  }
  return "application/octet-stream";
}

std::string Sha256Hex(absl::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(md), n));
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool ParseBasicAuth(absl::string_view header, std::string* user, std::string* password) {
  absl::string_view h = absl::StripAsciiWhitespace(header);
  if (h.size() < 6 || !absl::EqualsIgnoreCase(h.substr(0, 6), "basic ")) return false;
  std::string decoded;
  if (!absl::Base64Unescape(absl::StripAsciiWhitespace(h.substr(6)), &decoded)) return false;
  size_t colon = decoded.find(':');
  if (colon == std::string::npos) return false;
  *user = decoded.substr(0, colon);
  *password = decoded.substr(colon + 1);
  return true;
}

absl::StatusOr<std::vector<FormPart>> ParseMultipart(absl::string_view content_type, absl::string_view body) {
  std::string boundary;
  for (absl::string_view param : absl::StrSplit(content_type, ';')) {
    param = absl::StripAsciiWhitespace(param);
    if (absl::StartsWithIgnoreCase(param, "boundary=")) {
      boundary = std::string(absl::StripPrefix(param.substr(9), "\""));
      if (!boundary.empty() && boundary.back() == '"') boundary.pop_back();
    }
  }
  if (boundary.empty()) return absl::InvalidArgumentError("multipart body without a boundary");
  const std::string delim = "--" + boundary;
  std::vector<FormPart> parts;
  size_t pos = body.find(delim);
  if (pos == absl::string_view::npos) return absl::InvalidArgumentError("multipart boundary not found in body");
  while (true) {
    pos += delim.size();
    if (body.substr(pos, 2) == "--") break;  // closing delimiter
    if (body.substr(pos, 2) != "\r\n") return absl::InvalidArgumentError("malformed multipart delimiter line");
    pos += 2;
    size_t head_end = body.find("\r\n\r\n", pos);
    if (head_end == absl::string_view::npos) return absl::InvalidArgumentError("multipart part without headers end");
    FormPart part;
    for (absl::string_view line : absl::StrSplit(body.substr(pos, head_end - pos), "\r\n")) {
      size_t colon = line.find(':');
      if (colon == absl::string_view::npos) continue;
      absl::string_view name = absl::StripAsciiWhitespace(line.substr(0, colon));
      absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
      if (absl::EqualsIgnoreCase(name, "content-type")) part.content_type = std::string(value);
      if (!absl::EqualsIgnoreCase(name, "content-disposition")) continue;
      for (absl::string_view p : absl::StrSplit(value, ';')) {
        p = absl::StripAsciiWhitespace(p);
        auto unquote = [](absl::string_view v) {
          v = absl::StripPrefix(v, "\"");
          v = absl::StripSuffix(v, "\"");
          return std::string(v);
        };
        if (absl::StartsWithIgnoreCase(p, "name=")) part.name = unquote(p.substr(5));
        if (absl::StartsWithIgnoreCase(p, "filename=")) part.filename = unquote(p.substr(9));
      }
    }
    size_t data_begin = head_end + 4;
    size_t next = body.find("\r\n" + delim, data_begin);
    if (next == absl::string_view::npos) return absl::InvalidArgumentError("multipart part is not terminated");
    part.data = std::string(body.substr(data_begin, next - data_begin));
    parts.push_back(std::move(part));
    pos = next + 2;
  }
  return parts;
}

}  // namespace nzbmesh::frontend
