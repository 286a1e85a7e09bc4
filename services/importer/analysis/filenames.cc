#include "services/importer/analysis/filenames.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace nzbmesh::importer {
namespace {

// Extensions that make a quoted subject token or a name "meaningful".
bool IsKnownExtension(absl::string_view ext) {
  static const auto* const kKnown = new absl::flat_hash_set<std::string>{
      "mkv", "mp4", "m4v", "avi", "mov", "wmv", "mpg", "mpeg", "ts", "m2ts", "webm", "flv",
      "iso", "img", "mp3", "flac", "m4a", "aac", "ogg", "opus", "wav", "srt", "ass", "ssa",
      "sub", "idx", "vtt", "sup", "nfo", "sfv", "jpg", "jpeg", "png", "txt", "epub", "pdf",
      "cbz", "cbr", "rar", "7z", "zip", "par2", "nzb", "exe", "bin", "md5", "url"};
  if (kKnown->contains(ext)) return true;
  // .r00-.r99, .s00-.s99, .001-.999
  if (ext.size() == 3 && (ext[0] == 'r' || ext[0] == 's') && absl::ascii_isdigit(ext[1]) &&
      absl::ascii_isdigit(ext[2])) {
    return true;
  }
  return ext.size() == 3 && std::all_of(ext.begin(), ext.end(), absl::ascii_isdigit);
}

bool AllDigits(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), absl::ascii_isdigit);
}

// Length of the valid UTF-8 sequence at s[i], or 0 when invalid.
size_t Utf8SequenceLength(absl::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t len;
  uint32_t cp;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  // Reject overlong forms, surrogates and out-of-range code points.
  if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
      cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  // C1 control characters (U+0080..U+009F) and U+2028/2029 separators.
  if ((cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029) return 0;
  return len;
}

// Truncates `s` to at most `max_bytes` without splitting a UTF-8 character.
std::string Utf8Truncate(absl::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return std::string(s);
  size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return std::string(s.substr(0, end));
}

absl::string_view Stem(absl::string_view name) {
  const size_t dot = name.rfind('.');
  return dot == absl::string_view::npos || dot == 0 ? name : name.substr(0, dot);
}

}  // namespace

std::string Extension(absl::string_view filename) {
  const size_t slash = filename.find_last_of("/\\");
  if (slash != absl::string_view::npos) filename.remove_prefix(slash + 1);
  const size_t dot = filename.rfind('.');
  if (dot == absl::string_view::npos || dot == 0 || dot + 1 == filename.size()) return "";
  return absl::AsciiStrToLower(filename.substr(dot + 1));
}

std::optional<std::string> FilenameFromSubject(absl::string_view subject) {
  // 1. The last quoted token that has an extension.
  std::optional<std::string> best;
  size_t pos = 0;
  while (true) {
    const size_t open = subject.find('"', pos);
    if (open == absl::string_view::npos) break;
    const size_t close = subject.find('"', open + 1);
    if (close == absl::string_view::npos) break;
    absl::string_view token = absl::StripAsciiWhitespace(subject.substr(open + 1, close - open - 1));
    if (!token.empty() && token.find('.') != absl::string_view::npos && token.back() != '.') {
      best = std::string(token);
    }
    pos = close + 1;
  }
  if (best) return best;
  // 2. A whitespace-delimited token with a known extension, preferring the
  // one right before "yEnc" or "(1/N)".
  std::vector<absl::string_view> tokens =
      absl::StrSplit(subject, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  for (auto it = tokens.rbegin(); it != tokens.rend(); ++it) {
    absl::string_view t = *it;
    t = absl::StripPrefix(t, "[");
    t = absl::StripSuffix(t, "]");
    const std::string ext = Extension(t);
    if (!ext.empty() && IsKnownExtension(ext) && t.size() > ext.size() + 1) {
      return std::string(t);
    }
  }
  return std::nullopt;
}

std::optional<SubjectPart> PartFromSubject(absl::string_view subject) {
  std::optional<SubjectPart> found;
  size_t pos = 0;
  while ((pos = subject.find('(', pos)) != absl::string_view::npos) {
    const size_t close = subject.find(')', pos);
    if (close == absl::string_view::npos) break;
    absl::string_view inner = subject.substr(pos + 1, close - pos - 1);
    const size_t slash = inner.find('/');
    SubjectPart part;
    if (slash != absl::string_view::npos && AllDigits(inner.substr(0, slash)) &&
        AllDigits(inner.substr(slash + 1)) &&
        absl::SimpleAtoi(inner.substr(0, slash), &part.part) &&
        absl::SimpleAtoi(inner.substr(slash + 1), &part.total) && part.total > 0) {
      found = part;
    }
    pos = close;
  }
  return found;
}

bool LooksObfuscated(absl::string_view filename) {
  const size_t slash = filename.find_last_of("/\\");
  if (slash != absl::string_view::npos) filename.remove_prefix(slash + 1);
  const std::string ext = Extension(filename);
  absl::string_view stem = filename;
  std::string set_name;  // Owns the stem when it comes from ParseVolumeName.
  if (!ext.empty()) {
    if (!IsKnownExtension(ext)) {
      // "a1b2c3....d4e5" with a random "extension": judge the whole name.
      stem = filename;
    } else {
      stem = Stem(filename);
      // name.part01.rar / name.7z.001: judge the set name.
      VolumeName vn = ParseVolumeName(filename);
      if (vn.kind != VolumeKind::kNone) {
        set_name = std::move(vn.set_name);
        stem = set_name;
      }
    }
  }
  if (stem.size() < 16) return false;
  const bool all_hex = std::all_of(stem.begin(), stem.end(), absl::ascii_isxdigit);
  if (all_hex) return true;
  const bool all_alnum = std::all_of(stem.begin(), stem.end(), absl::ascii_isalnum);
  if (!all_alnum) return false;
  // Random alphanumerics mix case and digits without word structure: count
  // case changes and digit/letter transitions.
  int transitions = 0, digits = 0, upper = 0, lower = 0;
  for (size_t i = 0; i < stem.size(); ++i) {
    const char c = stem[i];
    digits += absl::ascii_isdigit(c);
    upper += absl::ascii_isupper(c);
    lower += absl::ascii_islower(c);
    if (i > 0) {
      const char p = stem[i - 1];
      const int kind_c = absl::ascii_isdigit(c) ? 0 : absl::ascii_isupper(c) ? 1 : 2;
      const int kind_p = absl::ascii_isdigit(p) ? 0 : absl::ascii_isupper(p) ? 1 : 2;
      transitions += kind_c != kind_p;
    }
  }
  const int kinds = (digits > 0) + (upper > 0) + (lower > 0);
  return kinds >= 2 && transitions * 4 >= static_cast<int>(stem.size());
}

std::string SanitizeFilename(absl::string_view name, size_t max_bytes) {
  std::string out;
  out.reserve(name.size());
  for (size_t i = 0; i < name.size();) {
    const size_t len = Utf8SequenceLength(name, i);
    if (len == 0) {
      out.push_back('_');  // Invalid UTF-8 byte.
      ++i;
      continue;
    }
    if (len == 1) {
      const char c = name[i];
      const auto uc = static_cast<unsigned char>(c);
      if (uc < 0x20 || uc == 0x7F) {
        // Control characters vanish; tabs and newlines become spaces.
        if (c == '\t' || c == '\n' || c == '\r') out.push_back(' ');
      } else if (c == '/' || c == '\\') {
        out.push_back('_');
      } else {
        out.push_back(c);
      }
    } else {
      out.append(name.data() + i, len);
    }
    i += len;
  }
  // No leading dots or spaces (hidden files, ".", ".."), no trailing ones
  // (Windows clients strip them and would then collide).
  size_t begin = out.find_first_not_of(". ");
  if (begin == std::string::npos) return "_";
  size_t end = out.find_last_not_of(". ");
  out = out.substr(begin, end - begin + 1);
  if (out.size() > max_bytes) {
    const std::string ext = Extension(out);
    if (!ext.empty() && ext.size() + 2 < max_bytes && ext.size() <= 16) {
      std::string stem = Utf8Truncate(out, max_bytes - ext.size() - 1);
      out = absl::StrCat(absl::StripSuffix(stem, "."), ".", out.substr(out.size() - ext.size()));
    } else {
      out = Utf8Truncate(out, max_bytes);
    }
  }
  return out.empty() ? "_" : out;
}

std::string SanitizePath(absl::string_view path) {
  std::string out;
  for (absl::string_view part : absl::StrSplit(path, absl::ByAnyChar("/\\"))) {
    if (part.empty() || part == "." || part == "..") continue;
    std::string clean = SanitizeFilename(part);
    if (!out.empty()) out.push_back('/');
    out += clean;
  }
  return out.empty() ? "_" : out;
}

std::string UniqueNamer::Claim(absl::string_view name) {
  std::string candidate(name);
  if (used_.insert(absl::AsciiStrToLower(candidate)).second) return candidate;
  const std::string ext = Extension(name);
  const absl::string_view stem =
      ext.empty() ? name : name.substr(0, name.size() - ext.size() - 1);
  const absl::string_view dot_ext = ext.empty() ? "" : name.substr(name.size() - ext.size() - 1);
  for (int n = 2;; ++n) {
    candidate = absl::StrCat(stem, " (", n, ")", dot_ext);
    if (used_.insert(absl::AsciiStrToLower(candidate)).second) return candidate;
  }
}

VolumeName ParseVolumeName(absl::string_view filename) {
  VolumeName v;
  const size_t slash = filename.find_last_of("/\\");
  if (slash != absl::string_view::npos) filename.remove_prefix(slash + 1);
  const std::string lower = absl::AsciiStrToLower(filename);
  absl::string_view l = lower;
  auto set_name = [&](size_t suffix_len) {
    return std::string(filename.substr(0, filename.size() - suffix_len));
  };
  int n = 0;
  if (absl::EndsWith(l, ".par2")) {
    absl::string_view stem = l.substr(0, l.size() - 5);
    const size_t vol = stem.rfind(".vol");
    if (vol != absl::string_view::npos) {
      absl::string_view spec = stem.substr(vol + 4);
      const size_t plus = spec.find('+');
      int first = 0, count = 0;
      if (plus != absl::string_view::npos && AllDigits(spec.substr(0, plus)) &&
          AllDigits(spec.substr(plus + 1)) && absl::SimpleAtoi(spec.substr(0, plus), &first) &&
          absl::SimpleAtoi(spec.substr(plus + 1), &count)) {
        v.kind = VolumeKind::kPar2Volume;
        v.set_name = std::string(filename.substr(0, vol));
        v.index = first;
        v.par2_blocks = count;
        return v;
      }
    }
    v.kind = VolumeKind::kPar2Index;
    v.set_name = set_name(5);
    return v;
  }
  if (absl::EndsWith(l, ".rar")) {
    absl::string_view stem = l.substr(0, l.size() - 4);
    const size_t part = stem.rfind(".part");
    if (part != absl::string_view::npos && AllDigits(stem.substr(part + 5)) &&
        stem.size() - part - 5 <= 6 && absl::SimpleAtoi(stem.substr(part + 5), &n)) {
      v.kind = VolumeKind::kRarPart;
      v.set_name = std::string(filename.substr(0, part));
      v.index = std::max(0, n - 1);
      return v;
    }
    v.kind = VolumeKind::kRar;
    v.set_name = set_name(4);
    return v;
  }
  const std::string ext = Extension(l);
  if (ext.size() == 3 && (ext[0] == 'r' || ext[0] == 's') && AllDigits(ext.substr(1)) &&
      absl::SimpleAtoi(absl::string_view(ext).substr(1), &n)) {
    v.kind = VolumeKind::kRarOld;
    v.set_name = set_name(4);
    v.index = 1 + n + (ext[0] == 's' ? 100 : 0);
    return v;
  }
  if (absl::EndsWith(l, ".7z")) {
    v.kind = VolumeKind::kSevenZip;
    v.set_name = set_name(3);
    return v;
  }
  if (ext.size() >= 3 && AllDigits(ext) && absl::SimpleAtoi(ext, &n) && n >= 1) {
    absl::string_view stem = l.substr(0, l.size() - ext.size() - 1);
    if (absl::EndsWith(stem, ".7z")) {
      v.kind = VolumeKind::kSevenZipSplit;
      v.set_name = std::string(filename.substr(0, stem.size() - 3));
    } else {
      v.kind = VolumeKind::kSplit;
      v.set_name = std::string(filename.substr(0, stem.size()));
    }
    v.index = n - 1;
    return v;
  }
  v.set_name = std::string(filename);
  return v;
}

std::vector<VolumeSet> GroupVolumeSets(const std::vector<std::string>& filenames) {
  struct Entry {
    VolumeName vn;
    int input;
  };
  std::vector<VolumeSet> sets;
  auto find_set = [&](const std::string& name, VolumeKind kind) -> VolumeSet& {
    for (VolumeSet& s : sets) {
      if (s.kind == kind && s.set_name == name) return s;
    }
    sets.push_back(VolumeSet{name, kind, {}, {}});
    return sets.back();
  };
  std::vector<Entry> par2;
  std::vector<std::vector<std::pair<int, int>>> order;  // Parallel to sets: (index, input).
  for (int i = 0; i < static_cast<int>(filenames.size()); ++i) {
    VolumeName vn = ParseVolumeName(filenames[i]);
    VolumeKind kind = vn.kind;
    switch (kind) {
      case VolumeKind::kNone:
        continue;
      case VolumeKind::kPar2Index:
      case VolumeKind::kPar2Volume:
        par2.push_back({std::move(vn), i});
        continue;
      case VolumeKind::kRarOld:
        kind = VolumeKind::kRar;
        break;
      case VolumeKind::kSevenZip:
        kind = VolumeKind::kSevenZipSplit;  // A lone .7z is a one-volume set.
        break;
      default:
        break;
    }
    VolumeSet& set = find_set(vn.set_name, kind);
    const size_t idx = &set - sets.data();
    if (order.size() <= idx) order.resize(idx + 1);
    order[idx].emplace_back(vn.index, i);
  }
  for (size_t s = 0; s < sets.size(); ++s) {
    std::sort(order[s].begin(), order[s].end());
    for (const auto& [index, input] : order[s]) sets[s].volumes.push_back(input);
    if (sets[s].kind == VolumeKind::kSevenZipSplit && sets[s].volumes.size() == 1 &&
        ParseVolumeName(filenames[sets[s].volumes[0]]).kind == VolumeKind::kSevenZip) {
      sets[s].kind = VolumeKind::kSevenZip;
    }
    for (const Entry& p : par2) {
      if (absl::EqualsIgnoreCase(p.vn.set_name, sets[s].set_name)) {
        sets[s].par2_files.push_back(p.input);
      }
    }
  }
  return sets;
}

FileFilter::FileFilter(FileFilterOptions options) : options_(std::move(options)) {
  for (const std::string& e : options_.allowed_extensions) {
    allowed_.insert(absl::AsciiStrToLower(absl::StripPrefix(e, ".")));
  }
}

bool FileFilter::Allows(absl::string_view path) const {
  if (options_.drop_samples && IsSample(path)) return false;
  if (allowed_.empty()) return true;
  return allowed_.contains(Extension(path));
}

bool IsSample(absl::string_view path) {
  const std::string lower = absl::AsciiStrToLower(path);
  std::vector<absl::string_view> parts = absl::StrSplit(lower, absl::ByAnyChar("/\\"));
  for (size_t i = 0; i < parts.size(); ++i) {
    absl::string_view part = parts[i];
    if (i + 1 == parts.size()) part = Stem(part);
    // Tokens separated by non-alphanumerics: "movie-sample", "sample.mkv",
    // "Movie.2020.SAMPLE"; but not "samples" inside a word like "resample".
    for (absl::string_view token :
         absl::StrSplit(part, absl::ByAnyChar(" .-_[]()"), absl::SkipEmpty())) {
      if (token == "sample") return true;
    }
  }
  return false;
}

}  // namespace nzbmesh::importer
