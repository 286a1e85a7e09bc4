// yenc: decode or encode yEnc files from the command line.
//
//   yenc decode [--nntp] [--kernel=NAME] [--chunk=BYTES] IN OUT
//       IN is a clean yEnc stream (one or more parts) or, with --nntp, a file
//       of concatenated NNTP BODY replies ("222 ..." status line, dot-stuffed
//       body, "." line). Every part's CRC and size are verified; parts are
//       written to OUT at their =ypart offsets. Prints decode MB/s (decoded
//       bytes over thread CPU time spent in ArticleDecoder::Feed, CRC included).
//   yenc encode [--nntp] [--part-size=BYTES] [--line=N] IN OUT
//       Writes IN as yEnc parts (as NNTP BODY replies with --nntp).
#include <time.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/yenc/yenc.h"

namespace nzbmesh::yenc {
namespace {

struct CliOptions {
  std::string command;   // "decode" or "encode"
  bool nntp = false;     // NNTP BODY replies instead of a clean stream
  Kernel kernel = Kernel::kAuto;
  size_t chunk = 65536;  // decode: bytes per Feed call (0 = whole input)
  int64_t part_size = 768000;  // encode: decoded bytes per part
  int line = 128;              // encode: line length
  std::string in_path;
  std::string out_path;
};

int Usage() {
  std::cerr << "usage: yenc decode [--nntp] [--kernel=scalar|sse2|ssse3|avx2|avx512vbmi2]"
               " [--chunk=BYTES] IN OUT\n"
               "       yenc encode [--nntp] [--part-size=BYTES] [--line=N] IN OUT\n";
  return 2;
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  out->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

bool WriteFile(const std::string& path, absl::string_view data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  return static_cast<bool>(f);
}

// CPU time of this thread: the machine may be shared, so wall time would
// measure the neighbours.
double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Decodes one article starting at in[*pos]; advances *pos past it. Returns
// false (with *status OK) when only trailing junk was left.
bool DecodeOne(ArticleDecoder& decoder, absl::string_view in, size_t* pos, size_t chunk,
               std::vector<char>& buf, std::string* file, double* seconds, absl::Status* status) {
  decoder.Reset();
  *status = absl::OkStatus();
  std::string part;
  while (*pos < in.size() && !decoder.done()) {
    const absl::string_view piece = in.substr(*pos, chunk == 0 ? in.size() : chunk);
    const double start = ThreadCpuSeconds();
    absl::StatusOr<ArticleDecoder::FeedResult> r = decoder.Feed(piece, buf.data(), buf.size());
    *seconds += ThreadCpuSeconds() - start;
    if (!r.ok()) {
      *status = r.status();
      return true;
    }
    part.append(buf.data(), r->produced);
    *pos += r->consumed;
  }
  if (!decoder.done() && decoder.saw_trailer() == false && decoder.saw_header()) {
    // A clean stream may end without the final line break.
    absl::StatusOr<ArticleDecoder::FeedResult> r = decoder.Feed("\n", buf.data(), buf.size());
    if (r.ok()) part.append(buf.data(), r->produced);
  }
  if (!decoder.saw_header() && decoder.decoded_bytes() == 0 && !decoder.done()) return false;
  *status = decoder.Verify();
  if (!status->ok()) return true;
  const int64_t offset = decoder.header().part > 0 ? decoder.header().begin - 1 : 0;
  if (file->size() < static_cast<size_t>(offset) + part.size()) {
    file->resize(static_cast<size_t>(offset) + part.size());
  }
  std::memcpy(file->data() + offset, part.data(), part.size());
  return true;
}

int Decode(const CliOptions& options) {
  std::string in;
  if (!ReadFile(options.in_path, &in)) {
    std::cerr << "yenc: cannot read " << options.in_path << "\n";
    return 1;
  }
  ArticleDecoder::Options dopt;
  dopt.mode = options.nntp ? ArticleDecoder::Mode::kNntp : ArticleDecoder::Mode::kRaw;
  dopt.kernel = options.kernel;
  dopt.max_decoded_bytes = 0;
  ArticleDecoder decoder(dopt);
  std::vector<char> buf(options.chunk == 0 ? in.size() + 1 : options.chunk);
  std::string file;
  double seconds = 0;
  int64_t decoded = 0;
  int articles = 0;
  int failures = 0;
  size_t pos = 0;
  while (pos < in.size()) {
    if (options.nntp) {
      const size_t eol = in.find('\n', pos);
      const absl::string_view status_line =
          absl::string_view(in).substr(pos, eol == std::string::npos ? in.size() - pos : eol - pos);
      if (!absl::StartsWith(status_line, "222")) {
        std::cerr << "yenc: expected a '222' BODY status line at offset " << pos << ", got '"
                  << status_line.substr(0, 60) << "'\n";
        return 1;
      }
      if (eol == std::string::npos) break;
      pos = eol + 1;
    }
    absl::Status status;
    if (!DecodeOne(decoder, in, &pos, options.chunk, buf, &file, &seconds, &status)) break;
    ++articles;
    decoded += decoder.decoded_bytes();
    if (!status.ok()) {
      ++failures;
      std::cerr << "yenc: article " << articles << ": " << status << "\n";
      if (!decoder.done()) return 1;  // a sticky error: the stream cannot be resynchronised
    }
  }
  if (!WriteFile(options.out_path, file)) {
    std::cerr << "yenc: cannot write " << options.out_path << "\n";
    return 1;
  }
  const double mbps = seconds > 0 ? static_cast<double>(decoded) / seconds / 1e6 : 0;
  std::printf("%d article(s), %lld decoded bytes, %d failed, %.1f MB/s decoded, CPU time in Feed (kernel %s)\n",
              articles, static_cast<long long>(decoded), failures, mbps,
              KernelName(decoder.kernel()).c_str());
  return failures == 0 && articles > 0 ? 0 : 1;
}

int Encode(const CliOptions& options) {
  std::string in;
  if (!ReadFile(options.in_path, &in)) {
    std::cerr << "yenc: cannot read " << options.in_path << "\n";
    return 1;
  }
  const size_t slash = options.in_path.find_last_of('/');
  const std::string name =
      slash == std::string::npos ? options.in_path : options.in_path.substr(slash + 1);
  const int64_t part_size = options.part_size > 0 ? options.part_size : 768000;
  const int64_t total = in.empty() ? 1 : (static_cast<int64_t>(in.size()) + part_size - 1) / part_size;
  const uint32_t file_crc = Crc32Update(0, in.data(), in.size());
  std::string out;
  for (int64_t part = 1; part <= total; ++part) {
    EncodeOptions eopt;
    eopt.name = name;
    eopt.part = total > 1 ? part : 0;
    eopt.total = total > 1 ? total : 0;
    eopt.file_size = static_cast<int64_t>(in.size());
    eopt.begin = (part - 1) * part_size + 1;
    eopt.line_length = options.line;
    eopt.dot_stuff = options.nntp;
    eopt.include_file_crc = total > 1;
    eopt.file_crc32 = file_crc;
    const absl::string_view data = absl::string_view(in).substr((part - 1) * part_size, part_size);
    if (options.nntp) absl::StrAppend(&out, "222 0 <part", part, ".", name, "@nzbmesh> body\r\n");
    out += EncodePart(data, eopt);
    if (options.nntp) out += ".\r\n";
  }
  if (!WriteFile(options.out_path, out)) {
    std::cerr << "yenc: cannot write " << options.out_path << "\n";
    return 1;
  }
  std::printf("%lld part(s), %zu bytes in, %zu bytes out\n", static_cast<long long>(total),
              in.size(), out.size());
  return 0;
}

int Main(int argc, char** argv) {
  if (argc < 2) return Usage();
  CliOptions options;
  options.command = argv[1];
  std::vector<std::string> positional;
  for (int i = 2; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--nntp") {
      options.nntp = true;
    } else if (absl::ConsumePrefix(&arg, "--kernel=")) {
      bool found = false;
      for (Kernel k : {Kernel::kAuto, Kernel::kScalar, Kernel::kSse2, Kernel::kSsse3,
                       Kernel::kAvx2, Kernel::kAvx512Vbmi2}) {
        if (KernelName(k) == arg) {
          options.kernel = k;
          found = true;
        }
      }
      if (!found || !KernelSupported(options.kernel)) {
        std::cerr << "yenc: unknown or unsupported kernel '" << arg << "'\n";
        return 2;
      }
    } else if (absl::StartsWith(arg, "--chunk=")) {
      if (!absl::SimpleAtoi(arg.substr(8), &options.chunk)) return Usage();
    } else if (absl::StartsWith(arg, "--part-size=")) {
      if (!absl::SimpleAtoi(arg.substr(12), &options.part_size)) return Usage();
    } else if (absl::StartsWith(arg, "--line=")) {
      if (!absl::SimpleAtoi(arg.substr(7), &options.line) || options.line <= 0) return Usage();
    } else if (absl::StartsWith(arg, "--")) {
      return Usage();
    } else {
      positional.emplace_back(arg);
    }
  }
  if (positional.size() != 2) return Usage();
  options.in_path = positional[0];
  options.out_path = positional[1];
  if (options.command == "decode") return Decode(options);
  if (options.command == "encode") return Encode(options);
  return Usage();
}

}  // namespace
}  // namespace nzbmesh::yenc

int main(int argc, char** argv) { return nzbmesh::yenc::Main(argc, argv); }
