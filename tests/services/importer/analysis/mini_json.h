// A minimal JSON reader for test fixtures (manifest.json). Test-only: no
// number precision guarantees beyond int64/double, no streaming, aborts the
// test on malformed input via the returned error string.
#ifndef NZBMESH_TESTS_SERVICES_IMPORTER_ANALYSIS_MINI_JSON_H_
#define NZBMESH_TESTS_SERVICES_IMPORTER_ANALYSIS_MINI_JSON_H_

#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

namespace nzbmesh::testing {

struct Json {
  enum Type { kNull, kBool, kNumber, kString, kArray, kObject } type = kNull;
  bool b = false;
  double number = 0;
  std::string str;
  std::vector<Json> array;
  std::map<std::string, Json> object;

  const Json& operator[](const std::string& key) const {
    static const Json kNullJson;
    auto it = object.find(key);
    return it == object.end() ? kNullJson : it->second;
  }
  int64_t Int() const { return static_cast<int64_t>(number); }
  bool IsNull() const { return type == kNull; }
};

class JsonParser {
 public:
  explicit JsonParser(absl::string_view s) : s_(s) {}

  bool Parse(Json* out) {
    bool ok = Value(out);
    Ws();
    return ok && pos_ == s_.size();
  }

 private:
  void Ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) ++pos_;
  }
  bool Lit(absl::string_view lit) {
    if (s_.substr(pos_, lit.size()) != lit) return false;
    pos_ += lit.size();
    return true;
  }
  static void Utf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  bool Hex4(uint32_t* v) {
    if (pos_ + 4 > s_.size()) return false;
    *v = static_cast<uint32_t>(std::strtoul(std::string(s_.substr(pos_, 4)).c_str(), nullptr, 16));
    pos_ += 4;
    return true;
  }
  bool String(std::string* out) {
    if (!Lit("\"")) return false;
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"') return true;
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) return false;
      c = s_[pos_++];
      switch (c) {
        case 'n': out->push_back('\n'); break;
        case 't': out->push_back('\t'); break;
        case 'r': out->push_back('\r'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'u': {
          uint32_t cp;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF && Lit("\\u")) {
            uint32_t lo;
            if (!Hex4(&lo)) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          Utf8(cp, out);
          break;
        }
        default: out->push_back(c);
      }
    }
    return false;
  }
  bool Value(Json* out) {
    Ws();
    if (pos_ >= s_.size()) return false;
    const char c = s_[pos_];
    if (c == '{') {
      ++pos_;
      out->type = Json::kObject;
      Ws();
      if (Lit("}")) return true;
      while (true) {
        Ws();
        std::string key;
        if (!String(&key)) return false;
        Ws();
        if (!Lit(":")) return false;
        if (!Value(&out->object[key])) return false;
        Ws();
        if (Lit("}")) return true;
        if (!Lit(",")) return false;
      }
    }
    if (c == '[') {
      ++pos_;
      out->type = Json::kArray;
      Ws();
      if (Lit("]")) return true;
      while (true) {
        out->array.emplace_back();
        if (!Value(&out->array.back())) return false;
        Ws();
        if (Lit("]")) return true;
        if (!Lit(",")) return false;
      }
    }
    if (c == '"') {
      out->type = Json::kString;
      return String(&out->str);
    }
    if (Lit("true")) {
      out->type = Json::kBool;
      out->b = true;
      return true;
    }
    if (Lit("false")) {
      out->type = Json::kBool;
      return true;
    }
    if (Lit("null")) return true;
    const char* begin = s_.data() + pos_;
    char* end = nullptr;
    std::string tmp(s_.substr(pos_, 64));
    out->number = std::strtod(tmp.c_str(), &end);
    if (end == tmp.c_str()) return false;
    pos_ += static_cast<size_t>(end - tmp.c_str());
    (void)begin;
    out->type = Json::kNumber;
    return true;
  }

  absl::string_view s_;
  size_t pos_ = 0;
};

}  // namespace nzbmesh::testing

#endif  // NZBMESH_TESTS_SERVICES_IMPORTER_ANALYSIS_MINI_JSON_H_
