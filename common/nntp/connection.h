// A blocking NNTP client connection (RFC 3977, RFC 4643 AUTHINFO USER/PASS,
// RFC 4642 STARTTLS) over TCP or TLS (OpenSSL 3).
//
// Threading: a Connection is used by one thread at a time (the broker runs
// one thread per connection). Every method blocks that thread with
// poll()-based timeouts; none blocks forever. The only thread-safe method is
// Interrupt(), which another thread calls to make a blocked call return.
//
// Pipelining: Send*() only appends a command to an output buffer; Flush()
// writes everything buffered. Replies are read with Read*() in the order the
// commands were sent; each Read*() must match the oldest outstanding command.
//
// Body decoding: a BODY (or ARTICLE) reply is decoded by yenc::ArticleDecoder
// straight out of the connection's read buffer (reads of up to 256 KiB);
// dot-unstuffing, terminator detection, yEnc decoding and CRC32 happen in
// one pass, with no per-line copies and no per-article allocation.
//
// Errors (absl::Status codes):
//   NOT_FOUND          article missing (430, 423); connection stays usable.
//   RESOURCE_EXHAUSTED with the connection-limit payload: 400/502 greeting,
//                      502 during AUTHINFO (IsConnectionLimit()).
//                      Without the payload: a body over max_body_bytes.
//   UNAUTHENTICATED    481/482/480 and other AUTHINFO failures.
//   DEADLINE_EXCEEDED  dial, first-byte or stall timeout (IsTimeout()).
//   UNAVAILABLE        network errors, connection closed by the peer, 400/502
//                      mid-session, TLS handshake I/O failures.
//   FAILED_PRECONDITION TLS certificate/host name verification failed, an
//                      unusable tls_ca_file, or an API misuse (e.g. Read*()
//                      that does not match the oldest outstanding command).
//   CANCELLED          the call was unblocked by Interrupt().
//   INTERNAL           malformed reply (bad status line, missing terminator,
//                      garbage yEnc headers) or an unexpected reply code;
//                      also a BODY that is not yEnc ("article is not yEnc
//                      encoded": drained to its terminator, the connection
//                      stays usable).
//   DATA_LOSS          yEnc CRC/size mismatch: the decoded bytes ARE in *out
//                      and the connection stays usable.
// After any error other than NOT_FOUND, DATA_LOSS, "not yEnc" and an
// unexpected single-line reply code, usable() is false and last_error() says
// why; every later call fails with FAILED_PRECONDITION quoting that error.
//
// Process-wide side effect: the first Dial() sets SIGPIPE to SIG_IGN if it is
// still SIG_DFL (OpenSSL writes with write(2), which raises SIGPIPE on a
// closed peer).
#ifndef NZBMESH_COMMON_NNTP_CONNECTION_H_
#define NZBMESH_COMMON_NNTP_CONNECTION_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/yenc/yenc.h"

typedef struct ssl_st SSL;

namespace nzbmesh::nntp {

enum class TlsMode {
  kNone,      // plain TCP (usually port 119)
  kImplicit,  // TLS from the first byte (usually port 563)
  kStartTls,  // plain TCP, then STARTTLS before AUTHINFO
};

struct ConnectionOptions {
  std::string host;  // name or IP literal; also the name verified in the certificate
  int port = 119;
  TlsMode tls = TlsMode::kNone;
  // Verify the server certificate chain and that it names `host`. Turning it
  // off is for providers with broken certificates only.
  bool tls_verify = true;
  // Extra trusted CA (PEM), e.g. a test's self-signed certificate; "" = only
  // the system store.
  std::string tls_ca_file;
  // Empty username = no AUTHINFO.
  std::string username, password;
  // Whole Dial(): TCP connect + TLS + greeting + STARTTLS + AUTHINFO + MODE READER.
  absl::Duration dial_timeout = absl::Seconds(10);
  // From waiting for a reply (command sent) to its first byte.
  absl::Duration first_byte_timeout = absl::Seconds(10);
  // Rolling: the longest gap between two reads once a reply's bytes flow.
  absl::Duration stall_timeout = absl::Seconds(8);
  // Decoded bytes per article above this fail with RESOURCE_EXHAUSTED.
  int64_t max_body_bytes = 64 << 20;
  // Send MODE READER after AUTHINFO. Without it a server that answers
  // "401 MODE-READER" gets MODE READER once and the command is retried.
  bool mode_reader = false;
};

// NOT_FOUND: the article is missing (430/423).
bool IsArticleMissing(const absl::Status& s);
// RESOURCE_EXHAUSTED carrying the connection-limit payload (400/502 at the
// greeting, 502 during AUTHINFO): the provider refuses more connections.
bool IsConnectionLimit(const absl::Status& s);
// DEADLINE_EXCEEDED: dial, first-byte or stall timeout.
bool IsTimeout(const absl::Status& s);
// The payload type URL that marks a connection-limit status.
inline constexpr absl::string_view kConnectionLimitPayload =
    "type.nzbmesh.dev/nntp.ConnectionLimit";

struct BodyInfo {
  yenc::PartHeader header;    // =ybegin / =ypart
  yenc::PartTrailer trailer;  // =yend
  uint32_t crc32 = 0;         // CRC32 of the decoded bytes
  bool crc_checked = false;   // =yend carried pcrc32 (or crc32 of a single-part post)
  int64_t decoded_size = 0;
};

// Reply to GROUP (211 count low high name).
struct GroupInfo {
  int64_t count = 0, low = 0, high = 0;
  std::string name;
};

class Connection {
 public:
  // Connects (non-blocking connect, every address of `host` in turn), does
  // the TLS handshake (implicit) or STARTTLS, reads the greeting, AUTHINFO,
  // and MODE READER if asked — all within dial_timeout.
  static absl::StatusOr<std::unique_ptr<Connection>> Dial(const ConnectionOptions& options);

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();  // closes the socket (no QUIT)

  // --- Pipelined article commands. Send* only buffers; Flush() writes. ---
  // `message_id` with or without <>; <> are added when missing.
  void SendBody(absl::string_view message_id);
  void SendStat(absl::string_view message_id);
  void SendArticle(absl::string_view message_id);  // read with ReadBody()
  void SendHead(absl::string_view message_id);     // read with ReadHead()
  // Writes every buffered command (stall_timeout per write).
  absl::Status Flush();

  // Reads the reply to the oldest outstanding command, which must be BODY or
  // ARTICLE, and decodes its yEnc payload into *out (cleared first; its
  // capacity is reused, so pass a pooled buffer). On DATA_LOSS *out holds the
  // decoded bytes and last_body() the yEnc metadata.
  absl::StatusOr<BodyInfo> ReadBody(std::string* out);
  // Reply to the oldest outstanding STAT: OK = exists; NOT_FOUND = missing.
  absl::Status ReadStat();
  // Reply to the oldest outstanding HEAD: the header lines, unstuffed, each
  // ending in CRLF, into *out.
  absl::Status ReadHead(std::string* out);
  // Reads and discards the next reply whatever its command (BODY bodies are
  // skipped without decoding), so a cancelled request leaves the connection
  // reusable. Honors first_byte/stall timeouts and `limit` for the whole
  // reply. OK means the connection is in sync again (the reply itself may
  // have been 430).
  absl::Status DiscardBody(absl::Duration limit);

  // --- Single round trips; no pipelined commands may be outstanding. ---
  absl::Status Date();  // keepalive: DATE -> 111
  absl::StatusOr<std::vector<std::string>> Capabilities();
  absl::StatusOr<GroupInfo> Group(absl::string_view name);  // 411 -> NOT_FOUND
  absl::Status ModeReader();
  // Best effort: writes QUIT without waiting for the reply, then closes.
  void Quit();

  // --- Sending while a reply is read (B15) ---
  // `hook` runs on the reading thread while ReadBody() or ReadStat() waits
  // for bytes of a reply: before each wait, and at once when Wake() is
  // called during one. It may Send*() and Flush() commands (their replies
  // come after every reply before them); it must not read. A caller that
  // hands this connection more work while a long reply is arriving thereby
  // gets the command to the server one reply earlier, so the server's
  // latency for it overlaps the reply in progress — what pipelining is for.
  // DiscardBody() does not run it: a drain that hits its limit closes the
  // connection, and commands sent behind it would be lost with it.
  // Call before the reads, on their thread; nullptr removes the hook.
  void SetSendHook(std::function<void()> hook);
  // Thread-safe: a read waiting for bytes runs the hook now (a read that is
  // not waiting runs it at its next wait). Requires a hook to have been set
  // once; otherwise a no-op.
  void Wake();

  // Commands sent or buffered whose replies are not read yet.
  int outstanding() const { return visible_outstanding_; }
  // False after any error other than NOT_FOUND / DATA_LOSS (see above).
  bool usable() const { return usable_; }
  // Why the connection is unusable ("" while usable).
  std::string last_error() const { return last_error_; }
  // Thread-safe: shuts the socket down (shutdown(SHUT_RDWR)) so a read or
  // write blocked on another thread returns promptly with CANCELLED. The
  // connection is then unusable. The Connection must outlive the call.
  void Interrupt();
  // Changes the first-byte timeout for later replies (the broker adapts it to
  // the provider's measured latency). Same thread as the reads.
  void SetFirstByteTimeout(absl::Duration d) { first_byte_timeout_ = d; }
  absl::Duration first_byte_timeout() const { return first_byte_timeout_; }
  // The server's greeting line, e.g. "200 news.example.com ready".
  const std::string& greeting() const { return greeting_; }
  // yEnc metadata of the last ReadBody() (also on DATA_LOSS).
  const BodyInfo& last_body() const { return last_body_; }
  // "host:port", for messages.
  const std::string& peer() const { return peer_; }
  bool tls_active() const { return ssl_ != nullptr; }

 private:
  struct Pending {
    std::string verb;    // "BODY", "STAT", "ARTICLE", "HEAD", "MODE READER"
    std::string arg;     // "<id>"
    bool hidden = false; // reply is read and dropped internally (401 retry)
    bool retried = false;
  };

  explicit Connection(const ConnectionOptions& options);

  absl::Status Connect();
  absl::Status TlsHandshake();
  absl::Status Greeting();
  absl::Status Authenticate();

  void Enqueue(absl::string_view verb, absl::string_view message_id);
  // Sends one command and reads its status line (no pipelining).
  absl::StatusOr<int> RoundTrip(absl::string_view verb, absl::string_view line,
                                std::string* text);

  // Reads the status line of the oldest visible command, first consuming the
  // replies of hidden ones and handling "401 MODE-READER". Pops the command
  // into *cmd.
  absl::StatusOr<int> ReadReplyStatus(absl::string_view expected_verb1,
                                      absl::string_view expected_verb2, Pending* cmd,
                                      std::string* text);
  absl::Status SkipHiddenReplies();
  absl::Status DrainMultiLine();
  absl::Status ReadMultiLineLines(std::vector<std::string>* lines);
  // Reads one line (CRLF stripped) into *line; the view is valid until the
  // next read. `first_of_reply` applies first_byte_timeout to the first byte.
  absl::Status ReadLine(absl::string_view* line, bool first_of_reply, size_t max_len);
  // Reads more bytes into the buffer, waiting until `deadline`.
  absl::Status ReadMore(absl::Time deadline, bool first_byte);
  absl::Status WriteAll(absl::string_view data);
  // Waits for the socket to become readable/writable until `deadline`.
  absl::Status WaitFd(bool for_write, absl::Time deadline, bool first_byte);
  absl::Time Deadline(absl::Duration d) const;
  // Runs the send hook if a read that allows it is in progress (B15).
  void RunSendHook();

  // Marks the connection unusable with `s` (returned for convenience).
  absl::Status Fail(absl::Status s);
  absl::Status CheckUsable() const;
  absl::Status TimeoutError(bool first_byte) const;
  absl::Status Unexpected(absl::string_view what, int code, absl::string_view text);
  void CloseSocket();

  const ConnectionOptions options_;
  absl::Duration first_byte_timeout_;  // starts as options_.first_byte_timeout
  const std::string peer_;
  int fd_ = -1;  // written only by Connect() and CloseSocket(); see fd_mu_
  SSL* ssl_ = nullptr;

  // Buffered unsent commands and the queue of commands awaiting replies.
  std::string wbuf_;
  std::deque<Pending> pending_;
  int visible_outstanding_ = 0;
  bool mode_reader_sent_ = false;

  // Read buffer: bytes [rpos_, rend_) are received and not consumed.
  std::unique_ptr<char[]> rbuf_;
  size_t rpos_ = 0, rend_ = 0;

  yenc::ArticleDecoder decoder_;
  BodyInfo last_body_;

  std::string current_;       // command being answered, for messages
  absl::Time dial_deadline_ = absl::InfiniteFuture();
  absl::Time op_deadline_ = absl::InfiniteFuture();
  bool writing_ = false;      // inside WriteAll(), for timeout messages
  bool usable_ = true;
  std::string last_error_;
  std::string greeting_;

  // Send hook (B15): the eventfd Wake() signals (-1 until a hook is set;
  // written once, before Wake() can be called), whether the current read
  // allows the hook, and whether the hook is running (no re-entry).
  std::function<void()> send_hook_;
  std::atomic<int> wake_fd_{-1};
  bool hook_allowed_ = false;
  bool in_hook_ = false;

  // Protects closing the socket against a concurrent Interrupt().
  absl::Mutex fd_mu_;
  bool closed_ ABSL_GUARDED_BY(fd_mu_) = false;
  std::atomic<bool> interrupted_{false};
};

}  // namespace nzbmesh::nntp

#endif  // NZBMESH_COMMON_NNTP_CONNECTION_H_
