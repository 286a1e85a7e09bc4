// FakeNntpServer: a real NNTP server on loopback (port 0) with an in-memory
// article store, fault injection and counters that storm tests assert on
// directly (see docs/INVARIANTS.md).
//
// Threading model: one accept thread; one thread per connection that both
// reads commands and writes replies (a single thread, so TLS needs no
// locking). Commands are read as soon as they arrive — also while a reply is
// being delayed, gated, throttled or written — so "received, not yet
// answered" is exact under pipelining. Replies go out in command order. The
// test thread calls the public methods; all of them are thread-safe.
//
// Counting rules:
//   * "article commands" are BODY, STAT, ARTICLE and HEAD by message-id.
//     Only they count towards max_in_flight / max_in_flight_per_connection
//     (so dial-time AUTHINFO or DATE keepalives do not blur B2/B5 numbers).
//   * calls(id) counts BODY, STAT and ARTICLE (not HEAD) when the command is
//     received.
//   * Every accepted TCP connection counts in current/max_concurrent
//     connections and connections_accepted(), including ones rejected with
//     502 by max_connections_before_502 (also counted in
//     connections_rejected()).
#ifndef NZBMESH_TESTS_FAKES_NNTP_SERVER_NNTP_SERVER_H_
#define NZBMESH_TESTS_FAKES_NNTP_SERVER_NNTP_SERVER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace nzbmesh::testing {

class FakeNntpServer {
 public:
  struct Options {
    // TCP port on 127.0.0.1; 0 = any free port (tests), see port().
    int port = 0;
    // AUTHINFO USER/PASS required before article commands (480 otherwise).
    bool require_auth = false;
    std::string username, password;
    // 0 = normal AUTHINFO. Otherwise AUTHINFO USER is answered with this code
    // (481, 482, 502, ...) to exercise the client's error paths.
    int auth_reply_code = 0;
    // Implicit TLS from the first byte (needs cert_file/key_file).
    bool tls = false;
    // Offer STARTTLS (needs cert_file/key_file; ignored when tls is set).
    bool starttls = false;
    std::string cert_file, key_file;  // PEM
    // Greeting code: 200 (posting allowed), 201, or 400/502 (then closed).
    int greeting_code = 200;
    // 0 = off. Otherwise, while K connections are being served, a new one
    // gets "502 too many connections" and is closed.
    int max_connections_before_502 = 0;
    // Article commands get "401 MODE-READER" until MODE READER is sent.
    bool require_mode_reader = false;
    // The one newsgroup GROUP knows (every article is in it).
    std::string group = "alt.binaries.nzbmesh.test";
  };

  // Fault injected into the reply to an article command. Set per message-id
  // with SetFault() or for every article with SetDefaultFault(); a per-id
  // fault replaces the default.
  struct Fault {
    // Reply not sent before received + latency (pipelined commands overlap
    // their latencies, as on a real link).
    absl::Duration latency = absl::ZeroDuration();
    // 0 = unlimited. Throttles the reply (status line + body) to this rate.
    int64_t bytes_per_second = 0;
    // -1 = off. Sends this many bytes of the reply, then closes the
    // connection (0 = close without answering).
    int64_t drop_after_bytes = -1;
    // -1 = off. Sends this many bytes of the reply, then stalls (sends
    // nothing more, keeps the connection) until Stop().
    int64_t stall_after_bytes = -1;
    // Never answer (stall forever, until Stop()); same as stall_after_bytes = 0.
    bool stall = false;
    // Answer 430 as if the article did not exist.
    bool missing = false;
    // Answer 423 instead of 430 when missing.
    bool missing_423 = false;
    // 0 = off. Answer with this code (400/502) and close the connection.
    int close_with_code = 0;
    // Flip one decoded byte (the yEnc stays valid; the CRC does not match).
    bool corrupt = false;
    // Hostile yEnc inside an otherwise well-framed reply (status line, body,
    // ".\r\n"); applied to the article's real body:
    enum class Yenc {
      kIntact,
      // The last data line is dropped: the part decodes to fewer bytes than
      // its =ypart/=yend declare (and the CRC no longer matches).
      kShortPart,
      // =yend size= claims one byte more than the part holds; data and
      // pcrc32 are intact.
      kWrongSize,
      // The =yend line is missing (a post truncated before its trailer).
      kNoYend,
    };
    Yenc yenc = Yenc::kIntact;
    // A reply that never ends: everything but the terminating ".\r\n" is
    // sent, then the connection stays open and silent until the client
    // closes it (or Stop()).
    bool no_terminator = false;
    // Non-empty: sent verbatim instead of the real reply (malformed replies).
    std::string raw_reply;
    // How many replies this fault applies to; -1 = forever. It is consumed
    // when the reply is produced, then the fault disappears.
    int times = -1;
  };

  // Holds replies to matching article commands until released. A held reply
  // also holds the replies queued behind it on the same connection.
  class Gate {
   public:
    // Lets `n` more held replies through (in no particular order).
    void Release(int n = 1);
    // Opens the gate for good.
    void ReleaseAll();
    // Replies currently held at this gate.
    int waiting() const;
    // Replies that went through.
    int passed() const;
    const std::string& message_id() const { return message_id_; }

   private:
    friend class FakeNntpServer;
    Gate(FakeNntpServer* server, std::string message_id)
        : server_(server), message_id_(std::move(message_id)) {}
    void Enter();
    bool TryPass();
    void Leave();

    FakeNntpServer* const server_;
    const std::string message_id_;
    // Protects the gate's state.
    mutable absl::Mutex mu_;
    int permits_ ABSL_GUARDED_BY(mu_) = 0;
    bool open_ ABSL_GUARDED_BY(mu_) = false;
    int waiting_ ABSL_GUARDED_BY(mu_) = 0;
    int passed_ ABSL_GUARDED_BY(mu_) = 0;
  };

  // One received command, in wire order (across connections: the order the
  // server read them).
  struct CommandRecord {
    absl::Time received;
    int connection_id = 0;  // 1-based, in accept order
    std::string command;    // verb, upper case ("BODY", "AUTHINFO USER", ...)
    std::string message_id; // without <>; "" for other commands
  };

  // One posted article of a file.
  struct Segment {
    std::string message_id;  // without <>
    int number = 0;          // 1-based part number
    int64_t offset = 0;      // of the decoded bytes in the file
    int64_t size = 0;        // decoded bytes
    int64_t bytes = 0;       // encoded article size (the NZB's bytes=)
    uint32_t crc32 = 0;      // of the decoded part
  };
  struct PostedFile {
    std::string name;
    int64_t size = 0;
    uint32_t crc32 = 0;
    std::vector<Segment> segments;
  };

  // Starts listening on 127.0.0.1:0. Fails on bad TLS material.
  static absl::StatusOr<std::unique_ptr<FakeNntpServer>> Start(const Options& options);
  ~FakeNntpServer();  // Stop()

  int port() const { return port_; }
  // Closes the listener and every connection, unblocks everything held
  // (gates, stalls, latency) and joins all threads. Idempotent.
  void Stop();

  // --- Article store (thread-safe; may be called while serving). ---
  // Stores `body` as the article's body exactly as it goes on the wire:
  // CRLF lines, already dot-stuffed, without the final ".\r\n" (the server
  // appends it). `message_id` with or without <>.
  void PostArticle(std::string message_id, std::string body);
  // yEnc-encodes `data` as one part (yenc::EncodePart with dot-stuffing) and
  // posts it.
  void PostYencArticle(std::string message_id, absl::string_view data, absl::string_view name);
  // Encodes a file into parts of `part_size` decoded bytes (multi-part yEnc,
  // =ypart, file crc32 on the last part) posted as
  // "<prefix>.<n>@nzbmesh.test", n = 1..N.
  PostedFile PostFile(absl::string_view name, absl::string_view data, int64_t part_size,
                      absl::string_view message_id_prefix);
  void RemoveArticle(absl::string_view message_id);
  bool HasArticle(absl::string_view message_id) const;

  // --- Faults. ---
  void SetFault(absl::string_view message_id, const Fault& fault);
  void SetDefaultFault(const Fault& fault);
  void ClearFaults();  // per-id and default
  // The next command received on any connection gets `code` (400 or 502)
  // and its connection is closed (a mid-session "service discontinued").
  void FailNextCommand(int code);
  // Closes every open connection now (as if the server restarted them).
  void DropAllConnections();
  // Changes Options::max_connections_before_502 at run time (0 = off).
  void SetConnectionLimit(int k);
  // Holds replies for `message_id` ("" = every article command) until
  // released. Owned by the server; valid until it is destroyed. A specific
  // gate wins over the "" gate.
  Gate* AddGate(absl::string_view message_id);
  // Opens and forgets every gate (the Gate objects stay valid).
  void ClearGates();

  // --- Counters (thread-safe). ---
  int max_concurrent_connections() const;
  int current_connections() const;
  int connections_accepted() const;
  int connections_rejected() const;  // 502 by max_connections_before_502
  int in_flight() const;             // article commands received, not fully answered
  int max_in_flight() const;
  int max_in_flight_per_connection() const;
  int calls(absl::string_view message_id) const;
  int64_t total_commands() const;
  std::vector<CommandRecord> command_log() const;
  // Ids (CommandRecord::connection_id) of the connections still open.
  std::vector<int> open_connection_ids() const;
  // Zeroes the high-water marks (to the current values), calls, totals and
  // the log. Open connections stay open.
  void ResetCounters();

  // Polls `cond` (it may call the counters) until it is true or `timeout`
  // passes; wakes early on any server event. Returns the last value of cond.
  bool WaitFor(const std::function<bool()>& cond, absl::Duration timeout);

 private:
  struct Conn;
  struct Command;
  struct Article;

  explicit FakeNntpServer(const Options& options);
  void AcceptLoop();
  void Serve(Conn* c);
  void ReapFinished() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Notify() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WakeAll();

  // Connection I/O helpers (connection thread only).
  enum class Poll { kOk, kClosed };
  // One wait: reads commands that arrived, then (if none did) polls the socket
  // and the wake eventfd until `deadline`. kClosed: stop serving.
  Poll PollOnce(Conn* c, absl::Time deadline, bool want_write, bool* writable);
  bool WaitUntil(Conn* c, absl::Time t);
  void ReadCommands(Conn* c);
  void ParseCommands(Conn* c);
  bool SendRaw(Conn* c, absl::string_view data);
  bool Answer(Conn* c, Command& cmd);
  bool AnswerArticle(Conn* c, Command& cmd);
  bool TlsAccept(Conn* c);
  void FinishCommand(Conn* c, const Command& cmd);

  Fault LookupFault(const std::string& id, bool* found);
  Gate* LookupGate(const std::string& id);

  const Options options_;
  SSL_CTX* ssl_ctx_ = nullptr;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd that wakes the accept loop
  int port_ = 0;
  std::thread accept_thread_;

  // Protects everything below.
  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  int64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, std::shared_ptr<const Article>> articles_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Fault> faults_ ABSL_GUARDED_BY(mu_);
  bool has_default_fault_ ABSL_GUARDED_BY(mu_) = false;
  Fault default_fault_ ABSL_GUARDED_BY(mu_);
  int fail_next_command_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::unique_ptr<Gate>> gates_ ABSL_GUARDED_BY(mu_);
  std::vector<Gate*> active_gates_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Conn>> conns_ ABSL_GUARDED_BY(mu_);
  int next_conn_id_ ABSL_GUARDED_BY(mu_) = 0;
  int served_connections_ ABSL_GUARDED_BY(mu_) = 0;
  int connection_limit_ ABSL_GUARDED_BY(mu_) = 0;  // Options::max_connections_before_502, adjustable
  int current_connections_ ABSL_GUARDED_BY(mu_) = 0;
  int max_concurrent_connections_ ABSL_GUARDED_BY(mu_) = 0;
  int connections_accepted_ ABSL_GUARDED_BY(mu_) = 0;
  int connections_rejected_ ABSL_GUARDED_BY(mu_) = 0;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int max_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int max_in_flight_per_connection_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, int> calls_ ABSL_GUARDED_BY(mu_);
  int64_t total_commands_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<CommandRecord> log_ ABSL_GUARDED_BY(mu_);
};

// NZB 1.1 XML for posted files: one <file> per file with poster, date,
// subject "<prefix>"name" yEnc (1/N)", <groups>, and <segments> with bytes=
// and number=.
struct NzbOptions {
  std::string poster = "nzbmesh test <test@nzbmesh.test>";
  int64_t date = 1700000000;  // unix seconds
  std::vector<std::string> groups = {"alt.binaries.nzbmesh.test"};
  std::string subject_prefix;  // e.g. "[1/3] - "
  std::map<std::string, std::string> meta;  // <head><meta type=key>value</meta>
};
std::string MakeNzb(const std::vector<FakeNntpServer::PostedFile>& files,
                    const NzbOptions& options = NzbOptions());

}  // namespace nzbmesh::testing

#endif  // NZBMESH_TESTS_FAKES_NNTP_SERVER_NNTP_SERVER_H_
