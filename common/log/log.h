// Structured logging: one logfmt line per event on stderr,
//   ts=2026-11-25T16:00:00.123Z level=info svc=broker msg="dialed" provider=main ms=12
// Values are quoted when needed. Never pass secrets: there is no redaction.
#ifndef NZBMESH_COMMON_LOG_LOG_H_
#define NZBMESH_COMMON_LOG_LOG_H_

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace nzbmesh::log {

enum class Level { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

struct Field {
  template <typename T>
  Field(absl::string_view k, const T& v) : key(k), value(absl::StrCat(v)) {}
  Field(absl::string_view k, absl::string_view v) : key(k), value(v) {}
  Field(absl::string_view k, const char* v) : key(k), value(v) {}
  Field(absl::string_view k, const std::string& v) : key(k), value(v) {}
  Field(absl::string_view k, bool v) : key(k), value(v ? "true" : "false") {}
  absl::string_view key;
  std::string value;
};

// Process-wide settings; call once from main.
void SetServiceName(absl::string_view name);
void SetMinLevel(Level level);
bool Enabled(Level level);

void Write(Level level, absl::string_view msg, std::initializer_list<Field> fields = {});

inline void Debug(absl::string_view msg, std::initializer_list<Field> f = {}) { Write(Level::kDebug, msg, f); }
inline void Info(absl::string_view msg, std::initializer_list<Field> f = {}) { Write(Level::kInfo, msg, f); }
inline void Warning(absl::string_view msg, std::initializer_list<Field> f = {}) { Write(Level::kWarning, msg, f); }
inline void Error(absl::string_view msg, std::initializer_list<Field> f = {}) { Write(Level::kError, msg, f); }

// Formats one line (no trailing newline); exposed for tests.
std::string FormatLine(absl::Time now, Level level, absl::string_view service,
                       absl::string_view msg, std::initializer_list<Field> fields);

}  // namespace nzbmesh::log

#endif  // NZBMESH_COMMON_LOG_LOG_H_
