// The clients users actually point at the frontend, run for real against a
// FrontendServer on loopback: rclone's webdav backend (lsjson, cat with
// offset/count, copy, hashsum), ffprobe and ffmpeg over HTTP (probe, and a seek
// as Plex/Jellyfin do), and curl range requests. The served file is a short
// MKV made with ffmpeg at test time, cut into "segments" held by the fake
// fetcher, so every byte crosses the reader, the segment map and the range code.
//
// The tools are Debian packages that deploy/local/install-deps.sh installs
// (rclone, ffmpeg, curl, fuse3). A missing tool FAILS the test with that
// message; it is not skipped. `rclone mount` (FUSE, VFS cache off) lists and
// reads the tree through the kernel; only when the machine cannot mount FUSE
// at all (no usable /dev/fuse, or the mount is refused with a permission
// error) does that one test SKIP, with rclone's exact words.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "services/frontend/frontend_server.h"
#include "services/frontend/http_util.h"
#include "tests/services/frontend/fake_catalog.h"
#include "tests/services/frontend/fake_segment_fetcher.h"

namespace nzbmesh::frontend {
namespace {

using testing::FakeCatalog;
using testing::FakeImporter;
using testing::FakeSegmentFetcher;

constexpr char kUser[] = "player";
constexpr char kPassword[] = "s3cret-pass";
constexpr char kDir[] = "/movies/Sample Movie (2024)";
constexpr char kName[] = "sample & test.mkv";
constexpr int64_t kSegmentBytes = 20000;  // small, so every read crosses segment boundaries
constexpr int64_t kMtime = 1700000000;    // 2023-11-14T22:13:20Z

std::string TmpDir() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t != nullptr ? t : "/tmp";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Single-quotes `s` for /bin/sh.
std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

struct ToolRun {
  int exit_code = -1;
  std::string out;  // stdout, byte-exact
  std::string err;
};

// Runs `cmd` under /bin/sh with a hard time limit; stdout and stderr go to files.
ToolRun Sh(const std::string& cmd, int timeout_s = 60) {
  static int n = 0;
  std::string base = absl::StrCat(TmpDir(), "/cmd", ++n);
  std::string full = absl::StrCat("timeout -k 5 ", timeout_s, " /bin/sh -c ", Quote(cmd), " >", base, ".out 2>", base,
                                  ".err </dev/null");
  int rc = std::system(full.c_str());
  ToolRun r;
  r.exit_code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  r.out = ReadFile(base + ".out");
  r.err = ReadFile(base + ".err");
  return r;
}

// Empty when `tool` is on PATH, else what to do about it.
std::string MissingTool(const std::string& tool, const std::string& package) {
  if (Sh(absl::StrCat("command -v ", tool)).exit_code == 0) return "";
  return absl::StrCat(tool, " is not installed: this test drives the real ", tool,
                      ". Install the Debian package '", package, "' (deploy/local/install-deps.sh does).");
}

#define REQUIRE_TOOL(tool, package)                      \
  do {                                                   \
    std::string missing = MissingTool(tool, package);    \
    ASSERT_TRUE(missing.empty()) << missing;             \
  } while (0)

// Counts the data responses the clients started (each GET with a body).
class RecordingMetrics : public CountingFrontendMetrics {
 public:
  void StreamStarted() override {
    CountingFrontendMetrics::StreamStarted();
    streams_started.fetch_add(1);
  }
  std::atomic<int> streams_started{0};
};

class ClientInteropTest : public ::testing::Test {
 protected:
  // One media file and one server for the whole suite (the tools are slow to start).
  static void SetUpTestSuite() {
    env_ = new Env();
    env_->media_path = TmpDir() + "/source.mkv";
    std::string missing = MissingTool("ffmpeg", "ffmpeg");
    if (!missing.empty()) {
      env_->setup_error = missing;
      return;
    }
    // 3 s of 320x240 MPEG-4 video and MP2 audio in Matroska (cues at the end,
    // so a seek makes ffmpeg read the tail first, then jump back).
    ToolRun gen = Sh(absl::StrCat(
        "ffmpeg -nostdin -v error -y -f lavfi -i testsrc=duration=3:size=320x240:rate=25 "
        "-f lavfi -i sine=frequency=440:duration=3 -c:v mpeg4 -q:v 5 -c:a mp2 -shortest -f matroska ",
        Quote(env_->media_path)));
    env_->media = ReadFile(env_->media_path);
    if (gen.exit_code != 0 || env_->media.size() < 50000) {
      env_->setup_error = absl::StrCat("ffmpeg could not make the sample file (exit ", gen.exit_code, "): ", gen.err);
      return;
    }
    env_->sha256 = Sha256Hex(env_->media);

    importer::v1::FileLayout layout;
    const std::string path = absl::StrCat(kDir, "/", kName);
    int64_t size = static_cast<int64_t>(env_->media.size());
    for (int64_t off = 0, i = 0; off < size; off += kSegmentBytes, ++i) {
      std::string id = absl::StrCat("sample-", i, "@interop");
      int64_t n = std::min(kSegmentBytes, size - off);
      env_->fetcher.AddSegment(id, env_->media.substr(off, n));
      auto* s = layout.add_segments();
      s->set_message_id(id);
      s->set_offset(off);
      s->set_size(n);
    }
    auto* e = layout.mutable_entry();
    e->set_path(path);
    e->set_name(kName);
    e->set_size(size);
    e->set_mtime_unix(kMtime);
    e->set_etag("interop-v1");
    env_->catalog.AddFile(layout);

    FrontendServer::Options o;
    o.webdav_users = {{kUser, Sha256Hex(kPassword)}};
    o.io_threads = 1;
    auto server = FrontendServer::Create(o, {&env_->fetcher, &env_->caching, &env_->importer, &env_->metrics});
    if (!server.ok()) {
      env_->setup_error = server.status().ToString();
      return;
    }
    env_->server = std::move(*server);
    absl::Status st = env_->server->Start();
    if (!st.ok()) env_->setup_error = st.ToString();
  }

  static void TearDownTestSuite() {
    if (env_->server != nullptr) env_->server->Shutdown(absl::Seconds(1));
    delete env_;
    env_ = nullptr;
  }

  void SetUp() override { ASSERT_TRUE(env_->setup_error.empty()) << env_->setup_error; }

  static int port() { return env_->server->port(); }
  static const std::string& media() { return env_->media; }
  // The file's URL, percent-encoded, optionally with credentials.
  static std::string Url(bool credentials) {
    std::string auth = credentials ? absl::StrCat(kUser, ":", kPassword, "@") : "";
    return absl::StrCat("http://", auth, "127.0.0.1:", port(), "/dav", EncodePath(absl::StrCat(kDir, "/", kName)));
  }

  // An rclone command line against remote "nz:" configured from the environment.
  static std::string Rclone(const std::string& args) {
    static const std::string obscured = [] {
      ToolRun r = Sh(absl::StrCat("rclone obscure ", Quote(kPassword)));
      return std::string(absl::StripAsciiWhitespace(r.out));
    }();
    return absl::StrCat("env TZ=UTC RCLONE_CONFIG=", Quote(TmpDir() + "/no-rclone.conf"),
                        " XDG_CACHE_HOME=", Quote(TmpDir() + "/cache"),
                        " RCLONE_CONFIG_NZ_TYPE=webdav RCLONE_CONFIG_NZ_URL=http://127.0.0.1:", port(),
                        "/dav/ RCLONE_CONFIG_NZ_VENDOR=other RCLONE_CONFIG_NZ_USER=", kUser,
                        " RCLONE_CONFIG_NZ_PASS=", Quote(obscured),
                        " rclone --retries 1 --low-level-retries 1 --contimeout 5s --timeout 20s ", args);
  }
  static std::string RemoteFile() { return Quote(absl::StrCat("nz:", std::string(kDir).substr(1), "/", kName)); }

  struct Env {
    FakeSegmentFetcher fetcher;
    FakeCatalog catalog;
    CachingCatalogClient caching{&catalog, {}};
    FakeImporter importer;
    RecordingMetrics metrics;
    std::unique_ptr<FrontendServer> server;
    std::string media_path, media, sha256, setup_error;
  };
  static Env* env_;
};

ClientInteropTest::Env* ClientInteropTest::env_ = nullptr;

// ---- rclone (webdav backend) ----------------------------------------------

TEST_F(ClientInteropTest, RcloneListsTheTreeWithSizesAndTimes) {
  REQUIRE_TOOL("rclone", "rclone");
  ToolRun r = Sh(Rclone("lsjson -R nz:"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "{\"Path\":\"movies\",\"Name\":\"movies\",\"Size\":-1,")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "\"Path\":\"movies/Sample Movie (2024)\",\"Name\":\"Sample Movie (2024)\","))
      << r.out;
  EXPECT_TRUE(absl::StrContains(
      // rclone (Go) writes '&' as \u0026.
      r.out, absl::StrCat("{\"Path\":\"movies/Sample Movie (2024)/sample \\u0026 test.mkv\",\"Name\":\"sample \\u0026 test.mkv\","
                          "\"Size\":",
                          media().size(), ",\"MimeType\":\"video/x-matroska\",\"ModTime\":\"2023-11-14T22:13:20Z\","
                                          "\"IsDir\":false}")))
      << r.out;
}

TEST_F(ClientInteropTest, RcloneCatWithOffsetAndCountReturnsExactlyThoseBytes) {
  REQUIRE_TOOL("rclone", "rclone");
  // Starts mid-segment and spans several segment boundaries.
  ToolRun r = Sh(Rclone(absl::StrCat("cat --offset 12345 --count 54321 ", RemoteFile())));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(r.out.size(), 54321u);
  EXPECT_TRUE(r.out == media().substr(12345, 54321));
  // The tail: --offset alone is an open-ended range.
  r = Sh(Rclone(absl::StrCat("cat --offset ", media().size() - 1000, " ", RemoteFile())));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out == media().substr(media().size() - 1000));
}

TEST_F(ClientInteropTest, RcloneCopyAndHashsumMatchTheSource) {
  REQUIRE_TOOL("rclone", "rclone");
  std::string dest = TmpDir() + "/copy";
  ToolRun r = Sh(Rclone(absl::StrCat("copy ", Quote(absl::StrCat("nz:", std::string(kDir).substr(1))), " ", Quote(dest))));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string copied = ReadFile(absl::StrCat(dest, "/", kName));
  EXPECT_EQ(copied.size(), media().size());
  EXPECT_EQ(Sha256Hex(copied), env_->sha256);
  // rclone's own checksum of the served bytes (the webdav backend has no
  // server-side hashes, so --download reads the file through the frontend).
  r = Sh(Rclone(absl::StrCat("hashsum sha256 --download ", RemoteFile())));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrCat(env_->sha256, "  ", kName, "\n"));
  // And rclone agrees the copy equals the source.
  r = Sh(Rclone(absl::StrCat("check --download ", Quote(absl::StrCat("nz:", std::string(kDir).substr(1))), " ", Quote(dest))));
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(ClientInteropTest, RcloneWithWrongPasswordIsRefused) {
  REQUIRE_TOOL("rclone", "rclone");
  std::string cmd = Rclone("lsjson nz:");
  ToolRun obscured = Sh(absl::StrCat("rclone obscure wrong"));
  size_t at = cmd.find("RCLONE_CONFIG_NZ_PASS=");
  size_t end = cmd.find(' ', at);
  cmd.replace(at, end - at, absl::StrCat("RCLONE_CONFIG_NZ_PASS=", absl::StripAsciiWhitespace(obscured.out)));
  ToolRun r = Sh(cmd);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r.err, "401")) << r.err;
}

// ---- rclone mount (FUSE) -------------------------------------------------------

// True when `dir` is a mount point of this process's mount namespace.
bool IsMounted(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // "<id> <parent> <maj:min> <root> <mount point> ..." (octal escapes for spaces; none in our path)
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() > 4 && f[4] == dir) return true;
  }
  return false;
}

// Polls `pred` until it holds or `timeout` passes: mount state lives in the
// kernel, which offers no notification to wait on. Bounded by the deadline.
bool Eventually(const std::function<bool()>& pred, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (!pred()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

// `rclone mount` running in the background; unmounts and reaps on destruction
// whatever happened in the test.
class RcloneMount {
 public:
  RcloneMount(const std::string& command, std::string mountpoint, std::string log)
      : mountpoint_(std::move(mountpoint)), log_(std::move(log)) {
    std::string full = absl::StrCat("exec ", command, " >", log_, " 2>&1 </dev/null");
    pid_ = fork();
    if (pid_ == 0) {
      execl("/bin/sh", "sh", "-c", full.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~RcloneMount() {
    if (IsMounted(mountpoint_)) Sh(absl::StrCat("fusermount3 -u -z ", Quote(mountpoint_)));
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGTERM);
      Wait(absl::Seconds(10));
      if (!exited_) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
      }
    }
  }
  // Reaps rclone if it exited before `timeout`; true when it did.
  bool Wait(absl::Duration timeout) {
    return Eventually(
        [&] {
          if (exited_) return true;
          int status = 0;
          if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
          exited_ = true;
          exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          return true;
        },
        timeout);
  }
  bool exited() const { return exited_; }
  int exit_code() const { return exit_code_; }
  std::string log() const { return ReadFile(log_); }

 private:
  std::string mountpoint_, log_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int exit_code_ = -1;
};

TEST_F(ClientInteropTest, RcloneMountListsAndReadsThroughFuse) {
  REQUIRE_TOOL("rclone", "rclone");
  REQUIRE_TOOL("fusermount3", "fuse3");
  if (access("/dev/fuse", R_OK | W_OK) != 0) {
    GTEST_SKIP() << "FUSE is not usable here: /dev/fuse: " << std::strerror(errno);
  }
  const std::string mnt = TmpDir() + "/mnt";
  std::filesystem::create_directories(mnt);
  int before = env_->metrics.streams_started.load();
  RcloneMount mount(Rclone(absl::StrCat("mount nz: ", Quote(mnt),
                                        " --vfs-cache-mode off --read-only --dir-cache-time 1m --attr-timeout 1m")),
                    mnt, TmpDir() + "/rclone-mount.log");
  ASSERT_TRUE(Eventually([&] { return IsMounted(mnt) || mount.Wait(absl::ZeroDuration()); }, absl::Seconds(60)))
      << "rclone mount neither mounted nor exited within 60 s: " << mount.log();
  if (!IsMounted(mnt)) {
    std::string log = mount.log();
    if (absl::StrContains(log, "Operation not permitted") || absl::StrContains(log, "Permission denied") ||
        absl::StrContains(log, "permission denied")) {
      GTEST_SKIP() << "FUSE mounting is not permitted here (rclone mount exit " << mount.exit_code() << "): " << log;
    }
    FAIL() << "rclone mount exited " << mount.exit_code() << " without mounting: " << log;
  }

  // Listing: the tree and the file's size, through the kernel.
  const std::string dir = absl::StrCat(mnt, kDir);
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{kName});
  EXPECT_TRUE(std::filesystem::is_directory(absl::StrCat(mnt, "/movies")));
  const std::string file = absl::StrCat(dir, "/", kName);
  struct stat st{};
  ASSERT_EQ(stat(file.c_str(), &st), 0) << std::strerror(errno);
  EXPECT_EQ(static_cast<size_t>(st.st_size), media().size());
  EXPECT_EQ(st.st_mtime, kMtime);

  // The whole file: byte-exact.
  std::string all = ReadFile(file);
  EXPECT_EQ(all.size(), media().size());
  EXPECT_EQ(Sha256Hex(all), env_->sha256);

  // A read at an offset, mid-segment, crossing segment boundaries.
  int fd = open(file.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  std::string buf(54321, '\0');
  size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = pread(fd, buf.data() + got, buf.size() - got, 123457 + static_cast<off_t>(got));
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fd);
  EXPECT_EQ(got, buf.size());
  EXPECT_TRUE(buf == media().substr(123457, 54321));
  EXPECT_GE(env_->metrics.streams_started.load() - before, 1);  // the bytes came from the frontend

  // Clean unmount: fusermount3 -u succeeds, rclone exits 0, the mount is gone.
  ToolRun u = Sh(absl::StrCat("fusermount3 -u ", Quote(mnt)));
  EXPECT_EQ(u.exit_code, 0) << u.err;
  ASSERT_TRUE(mount.Wait(absl::Seconds(30))) << "rclone did not exit after the unmount: " << mount.log();
  EXPECT_EQ(mount.exit_code(), 0) << mount.log();
  EXPECT_FALSE(IsMounted(mnt));
}

// ---- ffprobe / ffmpeg over HTTP ----------------------------------------------

// What ffprobe says about the file, through `input`.
std::string Probe(const std::string& input) {
  ToolRun r = Sh(absl::StrCat("ffprobe -v error -show_entries format=format_name,duration,size:"
                          "stream=codec_type,codec_name,width,height -of default=noprint_wrappers=1 ",
                          Quote(input)));
  return r.exit_code == 0 ? r.out : absl::StrCat("ffprobe failed: ", r.err);
}

TEST_F(ClientInteropTest, FfprobeOverHttpSeesTheSameStreamsAsOnDisk) {
  REQUIRE_TOOL("ffprobe", "ffmpeg");
  std::string http = Probe(Url(/*credentials=*/true));
  EXPECT_EQ(http, Probe(env_->media_path));
  EXPECT_TRUE(absl::StrContains(http, "codec_name=mpeg4\ncodec_type=video\nwidth=320\nheight=240\n")) << http;
  EXPECT_TRUE(absl::StrContains(http, "codec_name=mp2\ncodec_type=audio\n")) << http;
  EXPECT_TRUE(absl::StrContains(http, absl::StrCat("format_name=matroska,webm\nduration=3.0"))) << http;
  EXPECT_TRUE(absl::StrContains(http, absl::StrCat("size=", media().size(), "\n"))) << http;
  // Without credentials the frontend says 401 and ffprobe reports it.
  std::string anonymous = Probe(Url(false));
  EXPECT_TRUE(absl::StrContains(anonymous, "401")) << anonymous;
}

TEST_F(ClientInteropTest, FfmpegSeekOverHttpDecodesTheSameFrameAsOnDisk) {
  REQUIRE_TOOL("ffmpeg", "ffmpeg");
  auto frame = [](const std::string& input) {
    ToolRun r = Sh(absl::StrCat("ffmpeg -nostdin -v error -ss 1.5 -i ", Quote(input),
                            " -map 0:v:0 -frames:v 1 -f framemd5 -"));
    return r.exit_code == 0 ? r.out : absl::StrCat("ffmpeg failed: ", r.err);
  };
  int before = env_->metrics.streams_started.load();
  std::string http = frame(Url(true));
  std::string disk = frame(env_->media_path);
  ASSERT_TRUE(absl::StrContains(disk, "0,")) << disk;
  EXPECT_EQ(http, disk);
  // Reading the header, the cues at the end and then the frame at 1.5 s takes
  // more than one range request.
  EXPECT_GE(env_->metrics.streams_started.load() - before, 2);
}

// ---- curl ----------------------------------------------------------------------

TEST_F(ClientInteropTest, CurlRangeRequests) {
  REQUIRE_TOOL("curl", "curl");
  std::string out = TmpDir() + "/curl.body";
  auto curl = [&](const std::string& args) {
    return Sh(absl::StrCat("curl -sS -u ", Quote(absl::StrCat(kUser, ":", kPassword)), " -o ", Quote(out),
                           " -w '%{http_code} %{size_download} %{content_type}' ", args, " ", Quote(Url(false))));
  };
  int64_t size = static_cast<int64_t>(media().size());
  ToolRun r = curl("-r 19990-40009");  // crosses two segment boundaries
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "206 20020 video/x-matroska");
  EXPECT_TRUE(ReadFile(out) == media().substr(19990, 20020));
  r = curl("-r -500");
  EXPECT_EQ(r.out, "206 500 video/x-matroska");
  EXPECT_TRUE(ReadFile(out) == media().substr(size - 500));
  r = curl(absl::StrCat("-r ", size, "-"));
  EXPECT_TRUE(absl::StartsWith(r.out, "416 ")) << r.out;
  r = curl("");
  EXPECT_EQ(r.out, absl::StrCat("200 ", size, " video/x-matroska"));
  EXPECT_EQ(Sha256Hex(ReadFile(out)), env_->sha256);
  // Two ranges: multipart/byteranges, each part exact.
  r = curl("-r 0-9,100000-100009");
  ASSERT_TRUE(absl::StartsWith(r.out, "206 ")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "multipart/byteranges; boundary=")) << r.out;
  std::string body = ReadFile(out);
  EXPECT_TRUE(absl::StrContains(body, absl::StrCat("Content-Range: bytes 0-9/", size, "\r\n\r\n", media().substr(0, 10))));
  EXPECT_TRUE(absl::StrContains(
      body, absl::StrCat("Content-Range: bytes 100000-100009/", size, "\r\n\r\n", media().substr(100000, 10))));
}

}  // namespace
}  // namespace nzbmesh::frontend
