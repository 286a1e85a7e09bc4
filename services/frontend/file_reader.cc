#include "services/frontend/file_reader.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace nzbmesh::frontend {
namespace {

bool IsTransient(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kAborted:
      return true;
    default:
      return false;
  }
}

}  // namespace

std::shared_ptr<FileReader> FileReader::Open(const ReaderEnv& env, std::shared_ptr<FileCache> file, int64_t begin,
                                             int64_t end, ReaderOptions options) {
  std::shared_ptr<FileReader> r(new FileReader(env, std::move(file), begin, end, std::move(options)));
  Actions a;
  {
    absl::MutexLock lock(&r->mu_);
    r->PumpLocked(&a);
  }
  r->Run(std::move(a));
  return r;
}

FileReader::FileReader(const ReaderEnv& env, std::shared_ptr<FileCache> file, int64_t begin, int64_t end,
                       ReaderOptions options)
    : env_(env),
      file_(std::move(file)),
      layout_(file_->layout_ptr()),
      begin_(std::clamp<int64_t>(begin, 0, layout_->size)),
      end_(std::clamp<int64_t>(end, begin_, layout_->size)),
      options_(std::move(options)) {
  absl::MutexLock lock(&mu_);
  pos_ = begin_;
  piece_ = layout_->PieceAt(begin_);
  window_ = std::clamp(options_.initial_read_ahead, 1, std::max(1, options_.max_read_ahead));
  stats_.position = pos_;
  session_ = options_.session;
}

FileReader::~FileReader() {
  // No fetch callback can be outstanding (each holds a reference), so only
  // ready slots remain; their segments carry their charges (BudgetCharge).
}

void FileReader::AttachSession(std::shared_ptr<const StreamSession> session) {
  absl::MutexLock lock(&mu_);
  if (closed() || drained_ || session_ != nullptr) return;
  session_ = std::move(session);
}

FetchOptions FileReader::FetchOptionsLocked() const {
  FetchOptions o;
  o.traffic_class = options_.traffic_class;
  o.stream_session_id = session_ != nullptr ? session_->id() : 0;
  return o;
}

void FileReader::Bump() {
  version_.fetch_add(1, std::memory_order_release);
  version_.notify_all();
}

void FileReader::PumpLocked(Actions* a) {
  if (closed() || drained_ || !failed_.ok()) return;
  const int max_window = std::max(1, options_.max_read_ahead);
  window_ = std::clamp(window_, 1, max_window);
  // Until the first segment has arrived at most fresh_read_ahead segments are
  // fetched (F10): the needed one does not share the broker's connections
  // with a burst of read-ahead.
  int want = ramped_ ? window_ : std::clamp(options_.fresh_read_ahead, 1, window_);
  if (!ramped_ && want > 1 && !fresh_delay_passed_ && env_.scheduler != nullptr &&
      options_.fresh_read_ahead_delay > absl::ZeroDuration()) {
    // The needed segment goes first, alone; its read-ahead follows if it is
    // not here within fresh_read_ahead_delay.
    want = 1;
    if (fresh_timer_ == 0) {
      std::weak_ptr<FileReader> weak = weak_from_this();
      fresh_timer_ = env_.scheduler->Schedule(options_.fresh_read_ahead_delay, [weak] {
        if (auto self = weak.lock()) self->OnFreshDelay();
      });
    }
  }
  if (options_.traffic_class == TrafficClass::kStream && want > 2) {
    // F13: no more in flight than the reader's fair share of the broker's
    // STREAM slots (plus the needed-now one), never below one read-ahead.
    // Beyond its share a reader's read-ahead only queues at the broker
    // behind everyone else's and holds memory without arriving sooner.
    const int share = file_->fetcher()->StreamShare();
    if (share > 0) want = std::min(want, std::max(2, 1 + share));
  }
  // The next `want` distinct segments from the read position.
  std::vector<int32_t> target;
  for (size_t i = piece_; i < layout_->pieces.size() && static_cast<int>(target.size()) < want; ++i) {
    const auto& p = layout_->pieces[i];
    if (p.file_offset >= end_) break;
    if (std::find(target.begin(), target.end(), p.segment) == target.end()) target.push_back(p.segment);
  }
  // Drop slots behind the reader (consumed) or outside the window.
  for (auto it = slots_.begin(); it != slots_.end();) {
    if (std::find(target.begin(), target.end(), it->first) != target.end()) {
      ++it;
      continue;
    }
    if (it->second.ticket != nullptr) a->cancel.push_back(std::move(it->second.ticket));
    if (it->second.retry_id != 0) a->cancel_retries.push_back(it->second.retry_id);
    slots_.erase(it++);
  }
  for (size_t k = 0; k < target.size(); ++k) {
    int32_t seg = target[k];
    if (slots_.contains(seg)) continue;
    if (auto data = file_->Lookup(seg); data != nullptr) {
      Slot& s = slots_[seg];
      s.state = SlotState::kReady;
      s.data = std::move(data);
      continue;
    }
    if (absl::Status missing = file_->KnownMissing(seg); !missing.ok()) {
      Slot& s = slots_[seg];
      s.state = SlotState::kFailed;
      s.status = missing;
      continue;
    }
    int64_t need = layout_->segments[seg].size;
    if (env_.budget != nullptr) {
      // Read-ahead takes its bytes from cached segments before it gives up
      // window (F11).
      if (k == 0) {
        // The segment the reader needs now is never refused.
        if (!env_.budget->ReserveOrReclaim(need)) env_.budget->ForceReserve(need);
      } else if (!env_.budget->ReserveOrReclaim(need)) {
        window_ = std::max<int>(1, static_cast<int>(k));  // shrink instead of growing memory
        break;
      }
    }
    Slot& s = slots_[seg];
    if (env_.budget != nullptr) s.charge = std::make_shared<BudgetCharge>(env_.budget, need);
    s.attempts = 1;
    s.fetch_id = next_fetch_id_++;
    a->fetch.push_back({seg, s.fetch_id, s.charge});
  }
  if (!target.empty()) {
    // The read position has reached a segment fetched as read-ahead: it is
    // needed now, so it must stop waiting behind other players' read-ahead
    // at the broker (F12). A fetch whose ticket Run() has not stored yet is
    // promoted there.
    auto now = slots_.find(target[0]);
    if (now != slots_.end() && now->second.state == SlotState::kPending && now->second.read_ahead &&
        !now->second.promoted && now->second.ticket != nullptr) {
      now->second.promoted = true;
      a->promote.push_back(target[0]);
    }
  }
  int in_flight = 0;
  for (const auto& [seg, slot] : slots_) {
    if (slot.state == SlotState::kPending) ++in_flight;
  }
  if (!ramped_ && !target.empty()) {
    auto first = slots_.find(target[0]);
    if (first != slots_.end() && first->second.state != SlotState::kPending) {
      // The first segment was cached: open the window (once; `ramped_` stops the recursion).
      ramped_ = true;
      CancelFreshTimerLocked(a);
      PumpLocked(a);
      return;
    }
  }
  stats_.window = want;
  stats_.max_window = std::max(stats_.max_window, want);
  stats_.in_flight = in_flight;
  stats_.max_in_flight = std::max(stats_.max_in_flight, in_flight);
}

FileReader::Take FileReader::TakeLocked(size_t max, absl::StatusOr<Chunk>* out) {
  if (!failed_.ok()) {
    *out = failed_;
    return Take::kError;
  }
  if (pos_ >= end_ || piece_ >= layout_->pieces.size()) {
    *out = Chunk{};
    return Take::kChunk;
  }
  const auto& piece = layout_->pieces[piece_];
  auto it = slots_.find(piece.segment);
  if (it == slots_.end() || it->second.state == SlotState::kPending) {
    if (it != slots_.end() && !it->second.stalled && ramped_) {
      // The consumer is faster than the window: grow it (doubling, capped).
      // Waiting for the first segment says nothing about the consumer's
      // speed, so it never grows the window.
      it->second.stalled = true;
      ++stats_.stalls;
      window_ = std::min(window_ * 2, std::max(1, options_.max_read_ahead));
    }
    return Take::kNotReady;
  }
  const auto& segref = layout_->segments[piece.segment];
  if (it->second.state == SlotState::kFailed) {
    const absl::Status& s = it->second.status;
    failed_ = absl::Status(s.code(), absl::StrCat("segment ", piece.segment, " of ", layout_->path, " (<",
                                                  segref.message_id, ">): ", s.message()));
    *out = failed_;
    return Take::kError;
  }
  const std::shared_ptr<const std::string>& data = it->second.data;
  int64_t piece_end = std::min(piece.file_offset + piece.length, end_);
  int64_t seg_off = piece.segment_offset + (pos_ - piece.file_offset);
  int64_t n = std::min<int64_t>(piece_end - pos_, static_cast<int64_t>(max));
  if (static_cast<int64_t>(data->size()) < seg_off + n) {
    failed_ = absl::DataLossError(absl::StrCat("segment ", piece.segment, " of ", layout_->path, " (<",
                                               segref.message_id, ">) decoded to ", data->size(),
                                               " bytes; the layout needs ", seg_off + n));
    *out = failed_;
    return Take::kError;
  }
  // The chunk shares the segment's ownership, and so its charge
  // (BudgetCharge): its bytes stay counted while the consumer still writes them.
  *out = Chunk{data, data->data() + seg_off, static_cast<size_t>(n)};
  pos_ += n;
  stats_.position = pos_;
  stats_.bytes_delivered += n;
  if (pos_ >= piece.file_offset + piece.length) ++piece_;
  return Take::kChunk;
}

void FileReader::Run(Actions a) {
  for (auto& t : a.cancel) t->Cancel();
  if (env_.scheduler != nullptr) {
    for (uint64_t id : a.cancel_retries) env_.scheduler->Cancel(id);
  }
  for (int32_t seg : a.promote) file_->Promote(seg);
  // The consumer first: its bytes go on their way before the new fetches are
  // started (each start costs the calling thread tens of µs in gRPC).
  if (a.deliver) a.deliver(std::move(a.delivery));
  if (!a.fetch.empty()) {
    FetchOptions opts;
    int32_t needed_now = -1;  // the segment at the read position
    {
      absl::MutexLock lock(&mu_);
      opts = FetchOptionsLocked();
      if (piece_ < layout_->pieces.size()) needed_now = layout_->pieces[piece_].segment;
    }
    auto self = shared_from_this();
    for (auto& [seg, id, charge] : a.fetch) {
      // Every other segment is read-ahead: the broker serves it after
      // needed-now fetches (B12).
      opts.read_ahead = seg != needed_now;
      std::unique_ptr<FileCache::Ticket> ticket =
          file_->Acquire(seg, opts, [self, seg = seg, id = id](absl::StatusOr<std::shared_ptr<const std::string>> r) {
            self->OnData(seg, id, std::move(r));
          },
          std::move(charge));
      if (ticket == nullptr) continue;
      bool keep = false;
      bool promote = false;
      {
        absl::MutexLock lock(&mu_);
        auto it = slots_.find(seg);
        if (it != slots_.end() && it->second.fetch_id == id && it->second.state == SlotState::kPending &&
            !drained_) {
          Slot& s = it->second;
          s.ticket = std::move(ticket);
          s.read_ahead = opts.read_ahead;
          // The reader may have reached it while the fetch was being started.
          s.promoted = s.read_ahead && piece_ < layout_->pieces.size() && layout_->pieces[piece_].segment == seg;
          promote = s.promoted;
          keep = true;
        }
      }
      if (!keep) ticket->Cancel();
      if (promote) file_->Promote(seg);
    }
  }
}

void FileReader::OnData(int32_t segment, uint64_t fetch_id, absl::StatusOr<std::shared_ptr<const std::string>> result) {
  Actions a;
  {
    absl::MutexLock lock(&mu_);
    auto it = slots_.find(segment);
    if (it == slots_.end() || it->second.fetch_id != fetch_id || it->second.state != SlotState::kPending ||
        drained_) {
      return;
    }
    Slot& s = it->second;
    s.ticket.reset();
    // This is the fresh reader's first segment arriving (F10).
    const bool first_arrival = result.ok() && !ramped_;
    if (result.ok()) {
      s.state = SlotState::kReady;
      s.data = *std::move(result);  // carries the segment's charge now
      s.charge.reset();
      ramped_ = true;  // before it, this was the only fetch: the first segment is here (F10)
      CancelFreshTimerLocked(&a);
    } else if (IsTransient(result.status()) && s.attempts < options_.max_fetch_attempts && !closed()) {
      s.fetch_id = next_fetch_id_++;
      if (env_.scheduler != nullptr) {
        std::weak_ptr<FileReader> weak = weak_from_this();
        uint64_t id = s.fetch_id;
        s.retry_id = env_.scheduler->Schedule(options_.retry_delay * s.attempts, [weak, segment, id] {
          if (auto self = weak.lock()) self->Retry(segment, id);
        });
      } else {
        a.fetch.push_back({segment, s.fetch_id, s.charge});
      }
      ++s.attempts;
    } else {
      s.state = SlotState::kFailed;
      s.status = result.status();
    }
    bool first_delivered = false;
    if (pending_read_) {
      absl::StatusOr<Chunk> out;
      if (TakeLocked(pending_max_, &out) != Take::kNotReady) {
        a.deliver = std::move(pending_read_);
        pending_read_ = nullptr;
        a.delivery = std::move(out);
        first_delivered = first_arrival;
      }
    }
    // The first segment of a fresh reader went straight to a waiting read:
    // the window opens at the consumer's next read (which pumps), so the
    // read-ahead it starts does not compete with these first bytes on their
    // way to the client (F10).
    if (!first_delivered) PumpAndServeParkedLocked(&a);
  }
  Bump();
  Run(std::move(a));
}

void FileReader::Retry(int32_t segment, uint64_t fetch_id) {
  if (closed()) return;
  Actions a;
  {
    absl::MutexLock lock(&mu_);
    auto it = slots_.find(segment);
    if (it == slots_.end() || it->second.fetch_id != fetch_id || it->second.retry_id == 0 || drained_) return;
    it->second.retry_id = 0;
    a.fetch.push_back({segment, fetch_id, it->second.charge});
  }
  Run(std::move(a));
}

void FileReader::CancelFreshTimerLocked(Actions* a) {
  if (fresh_timer_ != 0) a->cancel_retries.push_back(fresh_timer_);
  fresh_timer_ = 0;
}

void FileReader::OnFreshDelay() {
  if (closed()) return;
  Actions a;
  {
    absl::MutexLock lock(&mu_);
    fresh_delay_passed_ = true;
    fresh_timer_ = 0;
    if (ramped_ || drained_) return;  // the first segment won the race
    PumpAndServeParkedLocked(&a);
  }
  Run(std::move(a));
}

void FileReader::ReadAsync(size_t max_bytes, ChunkCallback done) {
  if (closed()) {
    done(absl::CancelledError("reader closed"));
    return;
  }
  Actions a;
  {
    absl::MutexLock lock(&mu_);
    if (pending_read_) {
      a.deliver = std::move(done);
      a.delivery = absl::FailedPreconditionError("a read is already outstanding on this reader");
    } else {
      absl::StatusOr<Chunk> out;
      if (TakeLocked(std::max<size_t>(1, max_bytes), &out) == Take::kNotReady) {
        pending_read_ = std::move(done);
        pending_max_ = std::max<size_t>(1, max_bytes);
      } else {
        a.deliver = std::move(done);
        a.delivery = std::move(out);
      }
      PumpAndServeParkedLocked(&a);
    }
  }
  Run(std::move(a));
}

bool FileReader::TakeableLocked() const {
  if (!failed_.ok() || pos_ >= end_ || piece_ >= layout_->pieces.size()) return true;
  auto it = slots_.find(layout_->pieces[piece_].segment);
  return it != slots_.end() && it->second.state != SlotState::kPending;
}

void FileReader::PumpAndServeParkedLocked(Actions* a) {
  PumpLocked(a);
  if (!pending_read_ || a->deliver || !TakeableLocked()) return;
  absl::StatusOr<Chunk> out;
  TakeLocked(pending_max_, &out);
  a->deliver = std::move(pending_read_);
  pending_read_ = nullptr;
  a->delivery = std::move(out);
}

absl::StatusOr<size_t> FileReader::Read(char* buf, size_t n) {
  if (n == 0) return 0;
  while (true) {
    if (closed()) return absl::CancelledError("reader closed");
    uint64_t v = version_.load(std::memory_order_acquire);
    Actions a;
    absl::StatusOr<Chunk> out;
    Take t;
    {
      absl::MutexLock lock(&mu_);
      t = TakeLocked(n, &out);
      PumpLocked(&a);
      // The pump may have taken the segment from the LRU: no fetch would wake us.
      if (t == Take::kNotReady && TakeableLocked()) t = TakeLocked(n, &out);
    }
    Run(std::move(a));
    if (t == Take::kError) return out.status();
    if (t == Take::kChunk) {
      if (out->size > 0) std::memcpy(buf, out->data, out->size);
      return out->size;
    }
    version_.wait(v, std::memory_order_acquire);
  }
}

void FileReader::Close() {
  // The interrupt: visible to blocked readers before any lock is taken (F8).
  if (closed_.exchange(true, std::memory_order_acq_rel)) return;
  Bump();
  auto self = shared_from_this();
  if (env_.closers != nullptr) {
    env_.closers->Run([self] { self->Drain(); });
  } else {
    Drain();
  }
}

void FileReader::Drain() {
  Actions a;
  {
    absl::MutexLock lock(&mu_);
    if (drained_) return;
    drained_ = true;
    for (auto& [seg, slot] : slots_) {
      if (slot.ticket != nullptr) a.cancel.push_back(std::move(slot.ticket));
      if (slot.retry_id != 0) a.cancel_retries.push_back(slot.retry_id);
    }
    CancelFreshTimerLocked(&a);
    slots_.clear();
    stats_.in_flight = 0;
    session_.reset();
    if (pending_read_) {
      a.deliver = std::move(pending_read_);
      pending_read_ = nullptr;
      a.delivery = absl::CancelledError("reader closed");
    }
  }
  Run(std::move(a));
  Bump();
}

FileReader::Stats FileReader::stats() const {
  absl::MutexLock lock(&mu_);
  Stats s = stats_;
  for (const auto& [seg, slot] : slots_) {
    if (slot.charge != nullptr) {
      s.reserved_bytes += slot.charge->bytes();
    } else if (slot.data != nullptr) {
      s.reserved_bytes += static_cast<int64_t>(slot.data->size());
    }
  }
  return s;
}

}  // namespace nzbmesh::frontend
