// 7z: signature header -> end header (plain, or LZMA-packed "encoded" header)
// -> folders, pack streams and files -> extents of the stored members.
// Multi-volume sets (.7z.001 ...) are one byte stream cut into volumes.
#include <algorithm>
#include <numeric>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"
#include "services/importer/analysis/archive_internal.h"
#include "services/importer/analysis/crc32.h"
#include "services/importer/analysis/filenames.h"
#include "services/importer/analysis/lzma_decoder.h"
#include "services/importer/analysis/unicode.h"

namespace nzbmesh::importer::archive_internal {
namespace {

constexpr absl::string_view kSignature("7z\xBC\xAF\x27\x1C", 6);
constexpr int64_t kSignatureHeaderSize = 32;

enum Id : uint64_t {
  kEnd = 0x00,
  kHeader = 0x01,
  kArchiveProperties = 0x02,
  kAdditionalStreamsInfo = 0x03,
  kMainStreamsInfo = 0x04,
  kFilesInfo = 0x05,
  kPackInfo = 0x06,
  kUnpackInfo = 0x07,
  kSubStreamsInfo = 0x08,
  kSize = 0x09,
  kCrc = 0x0A,
  kFolder = 0x0B,
  kCodersUnpackSize = 0x0C,
  kNumUnpackStream = 0x0D,
  kEmptyStream = 0x0E,
  kEmptyFile = 0x0F,
  kName = 0x11,
  kMTime = 0x14,
  kWinAttributes = 0x15,
  kEncodedHeader = 0x17,
  kDummy = 0x19,
};

const absl::string_view kCopyId("\x00", 1);
const absl::string_view kLzmaId("\x03\x01\x01", 3);
const absl::string_view kAesId("\x06\xF1\x07\x01", 4);

// Bounds-checked cursor over a header buffer; every failure is Corrupt.
class Cursor {
 public:
  explicit Cursor(absl::string_view b) : b_(b) {}

  bool done() const { return pos_ >= b_.size(); }
  size_t remaining() const { return b_.size() - pos_; }

  absl::StatusOr<uint8_t> Byte() {
    if (pos_ >= b_.size()) return Corrupt("7z header is truncated");
    return static_cast<uint8_t>(b_[pos_++]);
  }
  absl::StatusOr<absl::string_view> Bytes(uint64_t n) {
    if (n > remaining()) return Corrupt("7z header is truncated");
    absl::string_view out = b_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  absl::StatusOr<uint64_t> Fixed(int n) {
    NZB_ASSIGN_OR_RETURN(absl::string_view b, Bytes(n));
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[i]);
    return v;
  }
  // 7z's variable-length number: the leading 1-bits of the first byte count
  // the extra little-endian bytes.
  absl::StatusOr<uint64_t> Number() {
    NZB_ASSIGN_OR_RETURN(uint8_t first, Byte());
    uint8_t mask = 0x80;
    uint64_t value = 0;
    for (int i = 0; i < 8; ++i) {
      if ((first & mask) == 0) {
        const uint64_t high = first & (mask - 1u);
        return value | (high << (8 * i));
      }
      NZB_ASSIGN_OR_RETURN(uint8_t next, Byte());
      value |= static_cast<uint64_t>(next) << (8 * i);
      mask >>= 1;
    }
    return value;
  }
  // A count that must be plausible for the bytes left (each item takes at
  // least `min_bytes_each`), so hostile counts cannot allocate gigabytes.
  absl::StatusOr<uint64_t> Count(uint64_t limit) {
    NZB_ASSIGN_OR_RETURN(uint64_t n, Number());
    if (n > limit) return Corrupt("7z header count is out of range");
    return n;
  }
  absl::Status Skip(uint64_t n) { return Bytes(n).status(); }

 private:
  absl::string_view b_;
  size_t pos_ = 0;
};

absl::StatusOr<std::vector<bool>> BitVector(Cursor& c, uint64_t n) {
  std::vector<bool> v(n);
  uint8_t byte = 0, mask = 0;
  for (uint64_t i = 0; i < n; ++i) {
    if (mask == 0) {
      NZB_ASSIGN_OR_RETURN(byte, c.Byte());
      mask = 0x80;
    }
    v[i] = byte & mask;
    mask >>= 1;
  }
  return v;
}

// "AllAreDefined" byte, then a bit vector when it is 0.
absl::StatusOr<std::vector<bool>> DefinedVector(Cursor& c, uint64_t n) {
  NZB_ASSIGN_OR_RETURN(uint8_t all, c.Byte());
  if (all) return std::vector<bool>(n, true);
  return BitVector(c, n);
}

absl::StatusOr<std::vector<std::optional<uint32_t>>> Digests(Cursor& c, uint64_t n) {
  NZB_ASSIGN_OR_RETURN(std::vector<bool> defined, DefinedVector(c, n));
  std::vector<std::optional<uint32_t>> out(n);
  for (uint64_t i = 0; i < n; ++i) {
    if (defined[i]) {
      NZB_ASSIGN_OR_RETURN(uint64_t v, c.Fixed(4));
      out[i] = static_cast<uint32_t>(v);
    }
  }
  return out;
}

struct Coder {
  std::string id;
  uint64_t num_in = 1;
  uint64_t num_out = 1;
  std::string props;
};

struct Folder {
  std::vector<Coder> coders;
  std::vector<std::pair<uint64_t, uint64_t>> bind_pairs;  // (in index, out index)
  std::vector<uint64_t> packed_streams;
  std::vector<uint64_t> unpack_sizes;  // One per coder out stream.
  std::optional<uint32_t> crc;
  uint64_t num_substreams = 1;

  uint64_t total_out() const {
    uint64_t n = 0;
    for (const Coder& c : coders) n += c.num_out;
    return n;
  }
  // The out stream no bind pair consumes is the folder's output.
  uint64_t UnpackSize() const {
    for (uint64_t i = 0; i < unpack_sizes.size(); ++i) {
      bool bound = false;
      for (const auto& bp : bind_pairs) bound |= bp.second == i;
      if (!bound) return unpack_sizes[i];
    }
    return 0;
  }
  bool Encrypted() const {
    return std::any_of(coders.begin(), coders.end(), [](const Coder& c) { return c.id == kAesId; });
  }
  bool Copy() const {
    return std::all_of(coders.begin(), coders.end(),
                       [](const Coder& c) { return c.id == kCopyId || c.id.empty(); });
  }
  std::string Describe() const {
    std::string out;
    for (const Coder& c : coders) {
      absl::StrAppend(&out, out.empty() ? "" : "+", absl::BytesToHexString(c.id));
    }
    return out;
  }
};

struct StreamsInfo {
  uint64_t pack_pos = 0;
  std::vector<uint64_t> pack_sizes;
  std::vector<Folder> folders;
  std::vector<uint64_t> substream_sizes;  // All folders, in order.
};

constexpr uint64_t kMaxItems = 1u << 20;  // Files, folders or streams per archive.

absl::Status ParseFolder(Cursor& c, Folder* f) {
  NZB_ASSIGN_OR_RETURN(uint64_t num_coders, c.Count(64));
  if (num_coders == 0) return Corrupt("7z folder without coders");
  uint64_t total_in = 0;
  for (uint64_t i = 0; i < num_coders; ++i) {
    NZB_ASSIGN_OR_RETURN(uint8_t flag, c.Byte());
    if (flag & 0x80) return Corrupt("7z alternative coder methods are not supported");
    Coder coder;
    NZB_ASSIGN_OR_RETURN(absl::string_view id, c.Bytes(flag & 0x0F));
    coder.id = std::string(id);
    if (flag & 0x10) {
      NZB_ASSIGN_OR_RETURN(coder.num_in, c.Count(64));
      NZB_ASSIGN_OR_RETURN(coder.num_out, c.Count(64));
    }
    if (flag & 0x20) {
      NZB_ASSIGN_OR_RETURN(uint64_t n, c.Count(c.remaining()));
      NZB_ASSIGN_OR_RETURN(absl::string_view props, c.Bytes(n));
      coder.props = std::string(props);
    }
    total_in += coder.num_in;
    f->coders.push_back(std::move(coder));
  }
  const uint64_t total_out = f->total_out();
  if (total_out == 0) return Corrupt("7z folder without output streams");
  for (uint64_t i = 0; i + 1 < total_out; ++i) {
    NZB_ASSIGN_OR_RETURN(uint64_t in, c.Count(total_in));
    NZB_ASSIGN_OR_RETURN(uint64_t out, c.Count(total_out));
    f->bind_pairs.emplace_back(in, out);
  }
  if (total_in < f->bind_pairs.size()) return Corrupt("7z folder binds more streams than it has");
  const uint64_t num_packed = total_in - f->bind_pairs.size();
  if (num_packed == 1) {
    f->packed_streams.push_back(0);
  } else {
    for (uint64_t i = 0; i < num_packed; ++i) {
      NZB_ASSIGN_OR_RETURN(uint64_t idx, c.Count(total_in));
      f->packed_streams.push_back(idx);
    }
  }
  return absl::OkStatus();
}

absl::Status ParseStreamsInfo(Cursor& c, StreamsInfo* si) {
  NZB_ASSIGN_OR_RETURN(uint64_t id, c.Number());
  if (id == kPackInfo) {
    NZB_ASSIGN_OR_RETURN(si->pack_pos, c.Number());
    NZB_ASSIGN_OR_RETURN(uint64_t n, c.Count(kMaxItems));
    while (true) {
      NZB_ASSIGN_OR_RETURN(id, c.Number());
      if (id == kEnd) break;
      if (id == kSize) {
        for (uint64_t i = 0; i < n; ++i) {
          NZB_ASSIGN_OR_RETURN(uint64_t s, c.Number());
          si->pack_sizes.push_back(s);
        }
      } else if (id == kCrc) {
        NZB_RETURN_IF_ERROR(Digests(c, n).status());
      } else {
        return Corrupt("unexpected property in 7z PackInfo");
      }
    }
    if (si->pack_sizes.size() != n) return Corrupt("7z PackInfo without sizes");
    NZB_ASSIGN_OR_RETURN(id, c.Number());
  }
  if (id == kUnpackInfo) {
    NZB_ASSIGN_OR_RETURN(id, c.Number());
    if (id != kFolder) return Corrupt("7z UnpackInfo without folders");
    NZB_ASSIGN_OR_RETURN(uint64_t n, c.Count(std::min<uint64_t>(kMaxItems, c.remaining())));
    NZB_ASSIGN_OR_RETURN(uint8_t external, c.Byte());
    if (external) return Corrupt("7z external folder data is not supported");
    si->folders.resize(n);
    for (Folder& f : si->folders) NZB_RETURN_IF_ERROR(ParseFolder(c, &f));
    NZB_ASSIGN_OR_RETURN(id, c.Number());
    if (id != kCodersUnpackSize) return Corrupt("7z UnpackInfo without unpack sizes");
    for (Folder& f : si->folders) {
      for (uint64_t i = 0; i < f.total_out(); ++i) {
        NZB_ASSIGN_OR_RETURN(uint64_t s, c.Number());
        f.unpack_sizes.push_back(s);
      }
    }
    while (true) {
      NZB_ASSIGN_OR_RETURN(id, c.Number());
      if (id == kEnd) break;
      if (id == kCrc) {
        NZB_ASSIGN_OR_RETURN(auto crcs, Digests(c, n));
        for (uint64_t i = 0; i < n; ++i) si->folders[i].crc = crcs[i];
      } else {
        return Corrupt("unexpected property in 7z UnpackInfo");
      }
    }
    NZB_ASSIGN_OR_RETURN(id, c.Number());
  }
  bool have_sizes = false;
  if (id == kSubStreamsInfo) {
    NZB_ASSIGN_OR_RETURN(id, c.Number());
    if (id == kNumUnpackStream) {
      for (Folder& f : si->folders) {
        NZB_ASSIGN_OR_RETURN(f.num_substreams, c.Count(kMaxItems));
      }
      NZB_ASSIGN_OR_RETURN(id, c.Number());
    }
    uint64_t total = 0;
    for (const Folder& f : si->folders) total += f.num_substreams;
    if (total > kMaxItems) return Corrupt("7z has too many streams");
    for (const Folder& f : si->folders) {
      if (f.num_substreams == 0) continue;
      uint64_t sum = 0;
      if (id == kSize) {
        for (uint64_t i = 0; i + 1 < f.num_substreams; ++i) {
          NZB_ASSIGN_OR_RETURN(uint64_t s, c.Number());
          sum += s;
          if (sum < s) return Corrupt("7z stream sizes overflow");
          si->substream_sizes.push_back(s);
        }
      } else if (f.num_substreams != 1) {
        return Corrupt("7z SubStreamsInfo without sizes");
      }
      if (sum > f.UnpackSize()) return Corrupt("7z stream sizes exceed their folder");
      si->substream_sizes.push_back(f.UnpackSize() - sum);
    }
    have_sizes = true;
    if (id == kSize) {
      NZB_ASSIGN_OR_RETURN(id, c.Number());
    }
    while (id != kEnd) {
      if (id == kCrc) {
        uint64_t n = 0;
        for (const Folder& f : si->folders) {
          if (!(f.num_substreams == 1 && f.crc)) n += f.num_substreams;
        }
        NZB_RETURN_IF_ERROR(Digests(c, n).status());
      } else {
        return Corrupt("unexpected property in 7z SubStreamsInfo");
      }
      NZB_ASSIGN_OR_RETURN(id, c.Number());
    }
    NZB_ASSIGN_OR_RETURN(id, c.Number());
  }
  if (!have_sizes) {
    for (const Folder& f : si->folders) si->substream_sizes.push_back(f.UnpackSize());
  }
  if (id != kEnd) return Corrupt("7z StreamsInfo is not terminated");
  // Every folder's packed streams must exist.
  uint64_t packed = 0;
  for (const Folder& f : si->folders) packed += f.packed_streams.size();
  if (packed > si->pack_sizes.size()) return Corrupt("7z folders use more pack streams than exist");
  return absl::OkStatus();
}

struct FileEntry {
  std::string name;
  bool has_stream = true;
  bool is_directory = false;
  bool is_symlink = false;
  std::optional<absl::Time> mtime;
};


absl::Status ParseFilesInfo(Cursor& c, std::vector<FileEntry>* files) {
  NZB_ASSIGN_OR_RETURN(uint64_t n, c.Count(std::min<uint64_t>(kMaxItems, c.remaining() * 8 + 8)));
  files->resize(n);
  std::vector<bool> empty_stream(n, false);
  std::vector<bool> empty_file;
  uint64_t num_empty = 0;
  while (true) {
    NZB_ASSIGN_OR_RETURN(uint64_t type, c.Number());
    if (type == kEnd) break;
    NZB_ASSIGN_OR_RETURN(uint64_t size, c.Number());
    NZB_ASSIGN_OR_RETURN(absl::string_view data, c.Bytes(size));
    Cursor p(data);
    switch (type) {
      case kEmptyStream: {
        NZB_ASSIGN_OR_RETURN(empty_stream, BitVector(p, n));
        num_empty = std::count(empty_stream.begin(), empty_stream.end(), true);
        break;
      }
      case kEmptyFile: {
        NZB_ASSIGN_OR_RETURN(empty_file, BitVector(p, num_empty));
        break;
      }
      case kName: {
        NZB_ASSIGN_OR_RETURN(uint8_t external, p.Byte());
        if (external) return Corrupt("7z external names are not supported");
        absl::string_view rest = data.substr(1);
        size_t at = 0;
        for (uint64_t i = 0; i < n; ++i) {
          size_t end = at;
          while (end + 1 < rest.size() && !(rest[end] == 0 && rest[end + 1] == 0)) end += 2;
          if (end + 1 >= rest.size()) return Corrupt("7z file names are truncated");
          (*files)[i].name = Utf16LeToUtf8(rest.substr(at, end - at));
          at = end + 2;
        }
        break;
      }
      case kMTime: {
        NZB_ASSIGN_OR_RETURN(std::vector<bool> defined, DefinedVector(p, n));
        NZB_ASSIGN_OR_RETURN(uint8_t external, p.Byte());
        if (external) return Corrupt("7z external times are not supported");
        for (uint64_t i = 0; i < n; ++i) {
          if (!defined[i]) continue;
          NZB_ASSIGN_OR_RETURN(uint64_t ft, p.Fixed(8));
          // FILETIME: 100 ns ticks since 1601-01-01.
          const int64_t unix_seconds = static_cast<int64_t>(ft / 10000000) - 11644473600LL;
          (*files)[i].mtime = absl::FromUnixSeconds(unix_seconds);
        }
        break;
      }
      case kWinAttributes: {
        NZB_ASSIGN_OR_RETURN(std::vector<bool> defined, DefinedVector(p, n));
        NZB_ASSIGN_OR_RETURN(uint8_t external, p.Byte());
        if (external) return Corrupt("7z external attributes are not supported");
        for (uint64_t i = 0; i < n; ++i) {
          if (!defined[i]) continue;
          NZB_ASSIGN_OR_RETURN(uint64_t attr, p.Fixed(4));
          if (attr & 0x10) (*files)[i].is_directory = true;
          // High 16 bits hold a Unix mode when 0x8000 is set.
          if ((attr & 0x8000) && ((attr >> 16) & 0xF000) == 0xA000) (*files)[i].is_symlink = true;
        }
        break;
      }
      default:
        break;  // Times, kDummy padding, anti items: not needed.
    }
  }
  uint64_t empty_index = 0;
  for (uint64_t i = 0; i < n; ++i) {
    FileEntry& f = (*files)[i];
    if (empty_stream[i]) {
      f.has_stream = false;
      const bool is_empty_file = empty_index < empty_file.size() && empty_file[empty_index];
      if (!is_empty_file) f.is_directory = true;
      ++empty_index;
    }
  }
  return absl::OkStatus();
}

struct ParsedHeader {
  StreamsInfo main;
  std::vector<FileEntry> files;
};

absl::Status ParseHeader(Cursor& c, ParsedHeader* h) {
  NZB_ASSIGN_OR_RETURN(uint64_t id, c.Number());
  if (id == kArchiveProperties) {
    while (true) {
      NZB_ASSIGN_OR_RETURN(uint64_t type, c.Number());
      if (type == kEnd) break;
      NZB_ASSIGN_OR_RETURN(uint64_t size, c.Number());
      NZB_RETURN_IF_ERROR(c.Skip(size));
    }
    NZB_ASSIGN_OR_RETURN(id, c.Number());
  }
  if (id == kAdditionalStreamsInfo) {
    StreamsInfo ignored;
    NZB_RETURN_IF_ERROR(ParseStreamsInfo(c, &ignored));
    NZB_ASSIGN_OR_RETURN(id, c.Number());
  }
  if (id == kMainStreamsInfo) {
    NZB_RETURN_IF_ERROR(ParseStreamsInfo(c, &h->main));
    NZB_ASSIGN_OR_RETURN(id, c.Number());
  }
  if (id == kFilesInfo) {
    NZB_RETURN_IF_ERROR(ParseFilesInfo(c, &h->files));
    NZB_ASSIGN_OR_RETURN(id, c.Number());
  }
  if (id != kEnd) return Corrupt("7z header is not terminated");
  return absl::OkStatus();
}

// Reads a range of the concatenated 7z stream.
class StreamReader {
 public:
  StreamReader(CountingReader& reader, const std::vector<int>& order)
      : reader_(reader), order_(order) {
    int64_t at = 0;
    for (int v : order_) {
      starts_.push_back(at);
      at += reader_.volume_size(v);
    }
    size_ = at;
  }
  int64_t size() const { return size_; }

  absl::StatusOr<std::string> Read(int64_t offset, int64_t length) {
    if (offset < 0 || length < 0 || offset > size_ || length > size_ - offset) {
      return Corrupt("7z range lies outside the volume set (a volume is missing or truncated)");
    }
    std::string out;
    for (size_t i = 0; i < order_.size() && length > 0; ++i) {
      const int64_t vsize = reader_.volume_size(order_[i]);
      if (offset >= starts_[i] + vsize) continue;
      const int64_t in_vol = offset - starts_[i];
      const int64_t n = std::min(length, vsize - in_vol);
      NZB_ASSIGN_OR_RETURN(std::string part, reader_.Read(order_[i], in_vol, n));
      out += part;
      offset += n;
      length -= n;
    }
    return out;
  }

  // Splits the stream range [offset, offset+length) into volume extents.
  std::vector<ArchiveExtent> Extents(int64_t offset, int64_t length) const {
    std::vector<ArchiveExtent> out;
    int64_t file_offset = 0;
    for (size_t i = 0; i < order_.size() && length > 0; ++i) {
      const int64_t vsize = reader_.volume_size(order_[i]);
      if (offset >= starts_[i] + vsize) continue;
      const int64_t in_vol = offset - starts_[i];
      const int64_t n = std::min(length, vsize - in_vol);
      out.push_back({order_[i], in_vol, file_offset, n});
      offset += n;
      length -= n;
      file_offset += n;
    }
    return out;
  }

 private:
  CountingReader& reader_;
  const std::vector<int>& order_;
  std::vector<int64_t> starts_;
  int64_t size_ = 0;
};

// Folder start offsets in the stream (absolute), one per folder.
absl::StatusOr<std::vector<int64_t>> FolderOffsets(const StreamsInfo& si, int64_t stream_size) {
  std::vector<int64_t> pack_offsets;
  uint64_t at = kSignatureHeaderSize + si.pack_pos;
  if (si.pack_pos > static_cast<uint64_t>(stream_size)) return Corrupt("7z pack position out of range");
  for (uint64_t s : si.pack_sizes) {
    pack_offsets.push_back(static_cast<int64_t>(at));
    if (s > static_cast<uint64_t>(stream_size) || at + s > static_cast<uint64_t>(stream_size)) {
      return Corrupt("7z pack stream lies outside the volume set (missing or truncated volume)");
    }
    at += s;
  }
  std::vector<int64_t> out;
  size_t next = 0;
  for (const Folder& f : si.folders) {
    if (next >= pack_offsets.size()) return Corrupt("7z folder without a pack stream");
    out.push_back(pack_offsets[next]);
    next += f.packed_streams.size();
  }
  return out;
}

absl::Status BuildMembers(const ParsedHeader& h, const StreamReader* stream, int64_t stream_size,
                          ArchiveMapping* mapping) {
  const StreamsInfo& si = h.main;
  NZB_ASSIGN_OR_RETURN(std::vector<int64_t> folder_offsets, FolderOffsets(si, stream_size));
  size_t folder = 0;
  uint64_t in_folder = 0;      // Substreams of `folder` consumed so far.
  uint64_t folder_offset = 0;  // Bytes of `folder` consumed so far.
  size_t substream = 0;
  size_t pack_index = 0;       // First pack stream of `folder`.
  for (const FileEntry& f : h.files) {
    ArchiveMember m;
    m.raw_name = f.name;
    m.name = SanitizePath(f.name);
    m.mtime = f.mtime;
    m.is_directory = f.is_directory && !f.has_stream;
    m.is_symlink = f.is_symlink;
    if (!f.has_stream) {
      mapping->members.push_back(std::move(m));
      continue;
    }
    while (folder < si.folders.size() && in_folder >= si.folders[folder].num_substreams) {
      pack_index += si.folders[folder].packed_streams.size();
      ++folder;
      in_folder = 0;
      folder_offset = 0;
    }
    if (folder >= si.folders.size() || substream >= si.substream_sizes.size()) {
      return Corrupt("7z has more files with data than streams");
    }
    const Folder& fo = si.folders[folder];
    const uint64_t size = si.substream_sizes[substream];
    m.size = static_cast<int64_t>(size);
    if (fo.Encrypted()) {
      m.rejection = ArchiveRejection::kUnsupportedEncrypted;
      m.rejection_detail = "7z member is AES-encrypted (7zAES)";
    } else if (!fo.Copy()) {
      m.rejection = ArchiveRejection::kUnsupportedCompressed;
      m.rejection_detail = absl::StrCat("7z member is compressed (coders ", fo.Describe(), ")");
      if (fo.num_substreams > 1) mapping->solid = true;
    } else {
      if (fo.packed_streams.size() != 1 || pack_index >= si.pack_sizes.size() ||
          si.pack_sizes[pack_index] != fo.UnpackSize()) {
        return Corrupt("7z Copy folder's packed and unpacked sizes differ");
      }
      if (size > 0 && stream != nullptr) {
        m.extents = stream->Extents(folder_offsets[folder] + static_cast<int64_t>(folder_offset),
                                    static_cast<int64_t>(size));
      }
    }
    folder_offset += size;
    ++in_folder;
    ++substream;
    mapping->members.push_back(std::move(m));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Map7z(CountingReader& reader, const std::vector<int>& order,
                   const ArchiveMapOptions& options, ArchiveMapping* mapping) {
  StreamReader stream(reader, order);
  if (stream.size() < kSignatureHeaderSize) return Corrupt("7z volume is shorter than its signature header");
  NZB_ASSIGN_OR_RETURN(std::string sig, stream.Read(0, kSignatureHeaderSize));
  if (absl::string_view(sig).substr(0, 6) != kSignature) return Corrupt("7z signature missing");
  if (Crc32(absl::string_view(sig).substr(12, 20)) !=
      static_cast<uint32_t>(static_cast<uint8_t>(sig[8]) | (static_cast<uint8_t>(sig[9]) << 8) |
                            (static_cast<uint8_t>(sig[10]) << 16) |
                            (static_cast<uint32_t>(static_cast<uint8_t>(sig[11])) << 24))) {
    return Corrupt("7z start header CRC mismatch");
  }
  Cursor sc(absl::string_view(sig).substr(12));
  NZB_ASSIGN_OR_RETURN(uint64_t next_offset, sc.Fixed(8));
  NZB_ASSIGN_OR_RETURN(uint64_t next_size, sc.Fixed(8));
  NZB_ASSIGN_OR_RETURN(uint64_t next_crc, sc.Fixed(4));
  if (next_size == 0) return absl::OkStatus();  // Empty archive.
  if (next_size > static_cast<uint64_t>(options.max_header_bytes)) {
    return Corrupt("7z end header is larger than the configured cap");
  }
  if (next_offset > static_cast<uint64_t>(stream.size())) {
    return Corrupt("7z end header lies beyond the volume set (missing or truncated volume)");
  }
  NZB_ASSIGN_OR_RETURN(std::string header,
                       stream.Read(kSignatureHeaderSize + static_cast<int64_t>(next_offset),
                                   static_cast<int64_t>(next_size)));
  if (Crc32(header) != static_cast<uint32_t>(next_crc)) return Corrupt("7z end header CRC mismatch");

  for (int depth = 0;; ++depth) {
    Cursor c(header);
    NZB_ASSIGN_OR_RETURN(uint64_t id, c.Number());
    if (id == kHeader) {
      ParsedHeader parsed;
      NZB_RETURN_IF_ERROR(ParseHeader(c, &parsed));
      return BuildMembers(parsed, &stream, stream.size(), mapping);
    }
    if (id != kEncodedHeader || depth >= 4) return Corrupt("7z end header has an unknown type");
    StreamsInfo si;
    NZB_RETURN_IF_ERROR(ParseStreamsInfo(c, &si));
    if (si.folders.size() != 1) return Corrupt("7z encoded header must have one folder");
    const Folder& f = si.folders[0];
    if (f.Encrypted()) {
      mapping->headers_encrypted = true;
      mapping->rejection = ArchiveRejection::kUnsupportedEncrypted;
      mapping->rejection_detail = "7z headers are encrypted (7zAES, -mhe=on); no password support";
      return absl::OkStatus();
    }
    NZB_ASSIGN_OR_RETURN(std::vector<int64_t> offsets, FolderOffsets(si, stream.size()));
    const uint64_t packed_size = si.pack_sizes[0];
    const uint64_t unpack_size = f.UnpackSize();
    if (packed_size > static_cast<uint64_t>(options.max_header_bytes) ||
        unpack_size > static_cast<uint64_t>(options.max_decoded_header_bytes)) {
      return Corrupt("7z encoded header is larger than the configured cap");
    }
    NZB_ASSIGN_OR_RETURN(std::string packed,
                         stream.Read(offsets[0], static_cast<int64_t>(packed_size)));
    if (f.coders.size() == 1 && f.coders[0].id == kLzmaId) {
      absl::StatusOr<std::string> decoded = LzmaDecode(f.coders[0].props, packed, unpack_size,
                                                       options.max_decoded_header_bytes);
      if (!decoded.ok()) return Corrupt(absl::StrCat("7z header: ", decoded.status().message()));
      header = std::move(*decoded);
    } else if (f.Copy()) {
      header = std::move(packed);
    } else {
      mapping->rejection = ArchiveRejection::kUnsupportedCompressed;
      mapping->rejection_detail =
          absl::StrCat("7z header is compressed with coders ", f.Describe(), "; unsupported");
      return absl::OkStatus();
    }
    if (options.verify_header_crcs && f.crc && Crc32(header) != *f.crc) return Corrupt("7z decoded header CRC mismatch");
  }
}

absl::Status Parse7zHeaderForFuzzing(absl::string_view header, int64_t stream_size) {
  Cursor c(header);
  NZB_ASSIGN_OR_RETURN(uint64_t id, c.Number());
  ArchiveMapping mapping;
  if (id == kHeader) {
    ParsedHeader parsed;
    NZB_RETURN_IF_ERROR(ParseHeader(c, &parsed));
    return BuildMembers(parsed, nullptr, stream_size, &mapping);
  }
  if (id == kEncodedHeader) {
    StreamsInfo si;
    return ParseStreamsInfo(c, &si);
  }
  return Corrupt("unknown header type");
}

}  // namespace nzbmesh::importer::archive_internal
