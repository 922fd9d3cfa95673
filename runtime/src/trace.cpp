// trace.cpp: the trace recorder. What it writes is trace_format.hpp; why the
// file looks as it does is docs/design/trace-format.md.
//
// ---------------------------------------------------------------------------
// Shape
//
// A runtime records into at most one `recorder` at a time
// (runtime_impl::tracer). Every thread that emits an event about that
// runtime (its workers, pool threads, sysmon, any outside thread that spawns
// or wakes one of its tasklets) writes into a buffer of its own, registered
// with the recorder on its first event and found again through a small
// thread-local cache. A buffer holds the thread's current batch, encoded as
// it goes (varints, time deltas). Full batches (64 KiB) go to the recorder's
// pending list; the recorder's own thread cuts a generation every second or
// every 4 MiB of pending batches, and writes it to the sink (a file, a
// user's function) or keeps it in memory (flight recorder).
//
// Invariants
//   T1 Off costs one relaxed load and a test per emission point
//      (detail::trace_on(): a process-wide count of recording runtimes); the
//      runtime's recorder pointer is read only behind it. A park arms its
//      wait word with its sequence number only while that count is non-zero,
//      so the park protocol's words are as before when nothing records.
//   T2 A buffer is written by its thread only, under its spinlock; the lock
//      is uncontended but for the cut, which takes every buffer's lock once
//      per generation. So a batch is never read while written, and a cut
//      sees every event emitted before it in the generation it cuts.
//   T3 Every string id an event carries belongs to the generation the event
//      lands in: ids are assigned under the buffer's lock from the current
//      generation's table, and the cut (holding every buffer lock) writes
//      that table, clears it and every buffer's id cache before any event of
//      the next generation can be written. A generation is self-contained.
//   T4 Nothing is lost silently: an event that finds no memory, or a batch
//      that finds the pending list over its hard limit (a sink slower than
//      the runtime), is counted in its buffer; the next batch of that
//      thread opens with a `dropped` event carrying the count, and the
//      generation's 'E' frame totals them.
//   T5 A recorder outlives every thread that may still hold it: stop()
//      retires it to the runtime, which frees it when it is destroyed (its
//      threads joined). A thread that read the pointer before stop() and
//      emits after the final cut finds `stopped` under its buffer lock and
//      writes nothing (the event happened after the trace ended).
//   T6 Emission never switches and never blocks on anything but a buffer's
//      spinlock, the string table's mutex (first use of a string in a
//      generation) and the pending list's mutex (once per 64 KiB): it runs
//      inside the park protocol, under channel locks, on tasklet stacks.
//      Files are written by the recorder's thread only.
#include "trace.hpp"

#include <cxxabi.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <taiga/runtime.hpp>
#include <taiga/runtime/trace.hpp>
#include <thread>
#include <typeinfo>
#include <unordered_map>
#include <vector>

#include "scheduler.hpp"
#include "tasklet_internal.hpp"

namespace taiga::detail {
std::atomic<std::uint32_t> trace_armed{0};
}

namespace taiga::internal::trace {

namespace tf = taiga::trace_format;
using detail::tasklet_frame;

namespace {

constexpr std::size_t batch_bytes = 64 * 1024;         // a buffer's batch, then pending
constexpr std::size_t generation_bytes = 4u << 20;     // cut at this much pending
constexpr std::int64_t generation_ns = 1'000'000'000;  // or this old
constexpr std::size_t pending_limit = 64u << 20;       // T4: drop past this
constexpr std::size_t event_room = 1 + 10 * (1 + tf::max_event_args);  // one event, at most

thread_local tf::thread_kind tls_kind = tf::thread_kind::outside;

int os_tid() noexcept {
  return static_cast<int>(::syscall(SYS_gettid));
}

std::string hex(const unsigned char* p, std::size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    s.push_back(digits[p[i] >> 4]);
    s.push_back(digits[p[i] & 15]);
  }
  return s;
}

// The executable's GNU build-id (the first object dl_iterate_phdr reports
// is the executable), in hex; empty when it has none.
std::string build_id() {
  std::string out;
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* arg) -> int {
        auto* o = static_cast<std::string*>(arg);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const auto& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_NOTE) continue;
          const char* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
          const char* end = p + ph.p_memsz;
          while (p + sizeof(ElfW(Nhdr)) <= end) {
            auto* nh = reinterpret_cast<const ElfW(Nhdr)*>(p);
            const char* name = p + sizeof(ElfW(Nhdr));
            const char* desc = name + ((nh->n_namesz + 3) & ~3u);
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
                std::memcmp(name, "GNU", 4) == 0) {
              *o = hex(reinterpret_cast<const unsigned char*>(desc), nh->n_descsz);
              return 1;
            }
            p = desc + ((nh->n_descsz + 3) & ~3u);
          }
        }
        return 1;  // only the first object: the executable
      },
      &out);
  return out;
}

std::string exe_path() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

std::string site_text(const detail::site_record* r) {
  taiga::source_location l = detail::to_location(r);
  std::string s = l.file_name() ? l.file_name() : "?";
  s += ':';
  s += std::to_string(l.line());
  if (l.function_name() && *l.function_name()) {
    s += " in ";
    s += l.function_name();
  }
  return s;
}

std::string type_text(const std::type_info* ti) {
  if (ti == nullptr) return {};
  int status = 0;
  char* d = abi::__cxa_demangle(ti->name(), nullptr, nullptr, &status);
  std::string s = status == 0 && d ? d : ti->name();
  std::free(d);
  return s;
}

bool write_all(int fd, const char* p, std::size_t n) noexcept {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

std::atomic<std::uint64_t> next_uid{1};

}  // namespace

// One thread's events for one recorder (T2).
struct thread_buffer {
  detail::spinlock lock;
  std::uint32_t id = 0;  // dense within the recorder, from 1
  int os_tid = 0;
  tf::thread_kind kind = tf::thread_kind::outside;
  unsigned worker = 0;
  std::string name;
  // Under `lock`:
  // The current batch's events: a fixed block written in place (no
  // allocation, no copy per event), flushed once it holds batch_bytes.
  std::unique_ptr<std::uint8_t[]> data{new std::uint8_t[batch_bytes + 4 * event_room]};
  std::size_t len = 0;
  std::int64_t base = 0, last = 0;
  std::uint32_t count = 0;
  std::uint64_t dropped = 0;                               // T4: not yet reported
  std::unordered_map<const void*, std::uint32_t> strings;  // this generation's ids (T3)
};

struct recorder {
  runtime_impl* rt = nullptr;
  const std::uint64_t uid = next_uid.fetch_add(1, std::memory_order_relaxed);
  taiga::trace::sink out;  // null: flight recorder
  taiga::trace::flight_options flight;
  bool flight_mode = false;
  std::size_t cut_bytes = generation_bytes;
  // T4: full batches waiting past this are dropped (and counted): a sink
  // slower than the runtime, or a flight recorder's thread starved of CPU,
  // must not grow memory without bound.
  std::size_t pending_cap = pending_limit;
  std::string header;          // the 'H' frame
  std::uint32_t since_ms = 1;  // its start (recording_since_ms)

  // Buffers and cuts. Order: mu, then buffer locks, then str_mu, then out_mu.
  std::mutex mu;
  std::vector<std::unique_ptr<thread_buffer>> buffers;
  std::uint64_t gen = 1;  // written under mu and every buffer lock; read under either
  bool stopped = false;   // likewise (T5)

  std::mutex str_mu;  // this generation's string table (T3)
  std::unordered_map<std::string, std::uint32_t> by_text;
  std::unordered_map<const void*, std::uint32_t> by_key;
  std::string table;  // its 'S' payload pairs, as assigned
  std::uint32_t next_string = 1;

  std::mutex out_mu;  // full batches, waiting for the cut
  std::condition_variable out_cv;
  std::vector<std::string> pending;
  std::size_t pending_bytes = 0;
  std::uint64_t gen_events = 0, gen_dropped = 0;
  bool quit = false;
  std::thread writer;

  // Flight recorder: complete generations, oldest first (under keep_mu).
  std::mutex keep_mu;
  std::deque<std::string> kept;
  std::size_t kept_bytes = 0;
  std::atomic<bool> flight_written{false};  // one trigger dump per recorder

  // sysmon's previous schedstat run delay per worker (sysmon only).
  std::vector<std::uint64_t> last_delay;

  std::uint32_t intern_locked(const void* key, std::string_view text) {
    if (key != nullptr) {
      auto it = by_key.find(key);
      if (it != by_key.end()) return it->second;
    }
    std::string s(text);
    auto it = by_text.find(s);
    std::uint32_t id;
    if (it != by_text.end()) {
      id = it->second;
    } else {
      id = next_string++;
      tf::append_varint(table, id);
      tf::append_string(table, s);
      by_text.emplace(std::move(s), id);
    }
    if (key != nullptr) by_key.emplace(key, id);
    return id;
  }

  // Under b.lock: moves b's batch to the pending list (or counts it as
  // dropped past the limit: T4).
  void flush_batch(thread_buffer& b) {
    if (b.count == 0) return;
    std::string frame;
    frame.reserve(b.len + 5 + 40);
    frame.append(5, '\0');  // kind and length, below
    tf::append_varint(frame, gen);
    tf::append_varint(frame, b.id);
    tf::append_varint(frame, static_cast<std::uint64_t>(b.base));
    tf::append_varint(frame, b.count);
    frame.append(reinterpret_cast<const char*>(b.data.get()), b.len);
    frame[0] = static_cast<char>(tf::frame_kind::batch);
    auto n = static_cast<std::uint32_t>(frame.size() - 5);
    for (int i = 0; i < 4; ++i) frame[1 + i] = static_cast<char>((n >> (8 * i)) & 0xff);
    bool notify = false;
    {
      std::lock_guard lk(out_mu);
      if (pending_bytes + frame.size() > pending_cap) {
        b.dropped += b.count;
        gen_dropped += b.count;
      } else {
        pending_bytes += frame.size();
        gen_events += b.count;
        pending.push_back(std::move(frame));
        notify = pending_bytes >= cut_bytes;
      }
    }
    b.len = 0;
    b.count = 0;
    if (notify) out_cv.notify_one();
  }

  // Cuts the current generation (mu held): T2, T3. Returns its bytes.
  std::string cut(bool final) {
    for (auto& b : buffers) b->lock.lock();
    std::string body;
    std::uint64_t g = gen;
    {
      std::lock_guard sl(str_mu);
      std::vector<std::uint32_t> names;
      names.reserve(buffers.size());
      for (auto& b : buffers) names.push_back(intern_locked(nullptr, b->name));
      for (auto& b : buffers) {
        try {
          flush_batch(*b);
        } catch (const std::bad_alloc&) {
          b->dropped += b->count;
          b->len = 0;
          b->count = 0;
        }
      }
      std::string s;
      tf::append_varint(s, g);
      s.append(table);
      tf::append_frame(body, tf::frame_kind::strings, s);
      for (std::size_t i = 0; i < buffers.size(); ++i) {
        thread_buffer& b = *buffers[i];
        std::string t;
        tf::append_varint(t, g);
        tf::append_varint(t, b.id);
        tf::append_varint(t, static_cast<std::uint64_t>(b.os_tid));
        tf::append_varint(t, static_cast<std::uint8_t>(b.kind));
        tf::append_varint(t, b.worker);
        tf::append_varint(t, names[i]);
        tf::append_frame(body, tf::frame_kind::thread, t);
        b.strings.clear();
      }
      by_text.clear();
      by_key.clear();
      table.clear();
      next_string = 1;
    }
    std::uint64_t events, dropped;
    {
      std::lock_guard ol(out_mu);
      for (auto& f : pending) body.append(f);
      pending.clear();
      pending_bytes = 0;
      events = std::exchange(gen_events, 0);
      dropped = std::exchange(gen_dropped, 0);
    }
    std::string e;
    tf::append_varint(e, g);
    tf::append_varint(e, events);
    tf::append_varint(e, dropped);
    tf::append_varint(e, static_cast<std::uint64_t>(now_ns()));
    tf::append_frame(body, tf::frame_kind::generation_end, e);
    gen = g + 1;
    if (final) {
      stopped = true;
      for (auto& b : buffers) {
        b->data.reset();  // nothing writes after `stopped` (T5)
        b->len = 0;
        b->strings.clear();
      }
    }
    for (auto& b : buffers) b->lock.unlock();
    return body;
  }

  void deliver(std::string&& g) {
    if (!flight_mode) {
      if (out) out(g);
      return;
    }
    std::lock_guard lk(keep_mu);
    kept_bytes += g.size();
    kept.push_back(std::move(g));
    while (kept.size() > 1 && kept_bytes > flight.max_bytes) {
      kept_bytes -= kept.front().size();
      kept.pop_front();
    }
  }

  void writer_loop() {
    std::int64_t last_cut = now_ns();
    for (;;) {
      bool quitting;
      {
        std::unique_lock lk(out_mu);
        auto left = std::chrono::nanoseconds(
            std::max<std::int64_t>(0, generation_ns - (now_ns() - last_cut)));
        out_cv.wait_for(lk, left, [&] { return quit || pending_bytes >= cut_bytes; });
        quitting = quit;
      }
      std::string g;
      {
        std::lock_guard lk(mu);
        if (stopped) return;
        g = cut(quitting);
      }
      last_cut = now_ns();
      deliver(std::move(g));
      if (quitting) return;
    }
  }

  // The calling thread's buffer (registering it on first use); null after
  // the final cut (T5).
  thread_buffer* register_thread() {
    auto b = std::make_unique<thread_buffer>();
    b->os_tid = os_tid();
    worker* w = this_worker();
    if (w != nullptr && w->rt == rt) {
      b->kind = tf::thread_kind::worker;
      b->worker = w->index;
      b->name = "worker " + std::to_string(w->index);
    } else {
      b->kind = tls_kind;
      switch (tls_kind) {
        case tf::thread_kind::pool:
          b->name = "blocking pool";
          break;
        case tf::thread_kind::sysmon:
          b->name = "sysmon";
          break;
        default: {
          char n[32] = {};
          if (pthread_getname_np(pthread_self(), n, sizeof n) != 0 || n[0] == 0)
            std::snprintf(n, sizeof n, "thread %d", b->os_tid);
          b->name = n;
          break;
        }
      }
    }
    std::lock_guard lk(mu);
    if (stopped) return nullptr;
    b->id = static_cast<std::uint32_t>(buffers.size() + 1);
    buffers.push_back(std::move(b));
    return buffers.back().get();
  }
};

namespace {

// The calling thread's buffers, by recorder: a thread that emits for two
// runtimes keeps both (T5 keeps the buffers alive; the uid tells a new
// recorder at an old one's address from it).
struct tls_entry {
  const recorder* rec = nullptr;
  std::uint64_t uid = 0;
  thread_buffer* buf = nullptr;
};
thread_local tls_entry tls_cache[4];
thread_local unsigned tls_next = 0;

thread_buffer* buffer_for(recorder* r) {
  for (auto& e : tls_cache)
    if (e.rec == r && e.uid == r->uid) return e.buf;
  thread_buffer* b = r->register_thread();
  if (b == nullptr) return nullptr;
  tls_cache[tls_next++ % 4] = tls_entry{r, r->uid, b};
  return b;
}

// One event's emission: the runtime's recorder and this thread's buffer,
// locked for the event's life. Falsy when nothing records (T1, T5).
class emitter {
 public:
  explicit emitter(const runtime_impl* rt) noexcept {
    if (rt == nullptr) return;
    r_ = rt->tracer.load(std::memory_order_acquire);
    if (r_ == nullptr) return;
    try {
      b_ = buffer_for(r_);
    } catch (...) {
      b_ = nullptr;  // no memory for a buffer: nothing to count it in either
    }
    if (b_ == nullptr) return;
    b_->lock.lock();
    if (r_->stopped) {
      b_->lock.unlock();
      b_ = nullptr;
    }
  }
  ~emitter() {
    if (b_) b_->lock.unlock();
  }
  emitter(const emitter&) = delete;
  emitter& operator=(const emitter&) = delete;
  explicit operator bool() const noexcept { return b_ != nullptr; }

  // A string id of this generation (T3); key: a pointer that names the
  // text for the program's life (a site record, a literal, a type), or null.
  template <class Text>
  std::uint32_t str(const void* key, Text&& text) noexcept {
    try {
      if (key != nullptr) {
        auto it = b_->strings.find(key);
        if (it != b_->strings.end()) return it->second;
      }
      std::uint32_t id;
      {
        std::lock_guard lk(r_->str_mu);
        id = r_->intern_locked(key, text());
      }
      if (key != nullptr) b_->strings.emplace(key, id);
      return id;
    } catch (...) {
      return 0;  // the empty string: the event still counts
    }
  }
  std::uint32_t text(std::string_view s) noexcept {
    return str(nullptr, [&] { return s; });
  }

  void event(tf::event type, std::initializer_list<std::uint64_t> args) noexcept {
    std::int64_t now = now_ns();
    if (b_->count == 0) {
      b_->base = now;
      b_->last = now;
      if (b_->dropped != 0) put(tf::event::dropped, now, {b_->dropped});
      b_->dropped = 0;
    }
    put(type, now, args);
    // The block has room for this event and the next (4 * event_room past
    // batch_bytes): the flush comes once it is past batch_bytes.
    if (b_->len >= batch_bytes) [[unlikely]] {
      try {
        r_->flush_batch(*b_);
      } catch (...) {  // no memory for the frame: T4
        std::uint32_t lost = b_->count;
        b_->dropped += lost;
        b_->len = 0;
        b_->count = 0;
        std::lock_guard lk(r_->out_mu);
        r_->gen_dropped += lost;
      }
    }
  }

  thread_buffer* buffer() const noexcept { return b_; }
  recorder* rec() const noexcept { return r_; }

 private:
  void put(tf::event type, std::int64_t now, std::initializer_list<std::uint64_t> args) noexcept {
    std::uint8_t* out = b_->data.get() + b_->len;
    std::size_t n = 0;
    out[n++] = static_cast<std::uint8_t>(type);
    std::int64_t dt = now - b_->last;
    n += tf::put_varint(out + n, static_cast<std::uint64_t>(dt > 0 ? dt : 0));
    if (dt > 0) b_->last = now;
    for (std::uint64_t a : args) n += tf::put_varint(out + n, a);
    b_->len += n;
    ++b_->count;
  }

  recorder* r_ = nullptr;
  thread_buffer* b_ = nullptr;
};

std::uint64_t current_tid() noexcept {
  worker* w = this_worker();
  return w && w->current ? w->current->id : 0;
}

std::uint64_t seq_of(std::uint32_t v) noexcept {
  return v & tf::seq_mask;
}

}  // namespace

void set_thread_kind(tf::thread_kind k) noexcept {
  tls_kind = k;
}

void spawn(tasklet_core* t) noexcept {
  // The name first, under the tasklet's lock (which guards it: the event
  // comes after the placement, and the tasklet may already run and rename
  // itself), and before this thread's buffer lock: finish() holds a
  // tasklet's lock while its wake-up emits, so the buffer lock never comes
  // first.
  std::string name_text;
  if (detail::tasklet_extra* x = detail::extra_if_any(t)) {
    try {
      std::lock_guard lk(t->lock);
      name_text = x->name;
    } catch (...) {  // no memory for the copy: the event goes without it
    }
  }
  emitter e(t->rt);
  if (!e) return;
  std::uint32_t site = t->site ? e.str(t->site, [&] { return site_text(t->site); }) : 0;
  std::uint32_t name = name_text.empty() ? 0 : e.text(name_text);
  e.event(tf::event::spawn, {t->id, current_tid(), site, name, 0});
}

void run(worker* w, tasklet_core* t) noexcept {
  emitter e(w->rt);
  if (!e) return;
  // First in prepare(): a tasklet that never ran (`created`) may have no
  // frame yet, or one adopted from the tasklet that ended before it
  // (exit_current): its first run is seq 1 from no worker, and a frame
  // start_fresh makes starts at 1 (tasklet_frame::trace_seq).
  tasklet_frame* f = t->frame.load(std::memory_order_relaxed);
  if (t->state.load(std::memory_order_relaxed) == tasklet_state::created) {
    if (f != nullptr) f->trace_seq = 1;
    e.event(tf::event::run, {t->id, w->index, 0, 1});
    return;
  }
  int prev_worker = f->last_worker.load(std::memory_order_relaxed);
  std::uint64_t seq = seq_of(++f->trace_seq);
  e.event(tf::event::run, {t->id, w->index, static_cast<std::uint64_t>(prev_worker + 1), seq});
}

void park(worker* w, tasklet_core* t) noexcept {
  emitter e(w->rt);
  tasklet_frame* f = t->frame.load(std::memory_order_relaxed);
  // The park and the unblock that ends it (its waker emits it with the
  // park's seq + 1, read from the wait word: park.cpp's P1).
  std::uint64_t seq = seq_of(f->trace_seq + 1u);
  f->trace_seq = static_cast<std::uint16_t>(f->trace_seq + 2u);
  if (!e) return;
  f->park_since_ms.store(static_cast<std::uint32_t>(now_ns() / 1'000'000),
                         std::memory_order_relaxed);
  auto reason = f->park_reason.load(std::memory_order_relaxed);
  const char* what = f->park_what.load(std::memory_order_relaxed);
  if (what != nullptr)  // a label of its own (prepare_wait stores null for the reason's name)
    e.event(tf::event::park_label, {t->id, e.str(what, [&] { return std::string_view(what); })});
  const detail::site_record* site = f->park_site.load(std::memory_order_relaxed);
  std::uint32_t site_id = site ? e.str(site, [&] { return site_text(site); }) : 0;
  auto object = reinterpret_cast<std::uintptr_t>(f->park_object.load(std::memory_order_relaxed));
  e.event(tf::event::park, {t->id, reason, object, site_id, seq});
}

void yield(worker* w, tasklet_core* t) noexcept {
  emitter e(w->rt);
  tasklet_frame* f = t->frame.load(std::memory_order_relaxed);
  std::uint64_t seq = seq_of(++f->trace_seq);
  if (e) e.event(tf::event::yield, {t->id, seq});
}

void exit(tasklet_core* t) noexcept {
  emitter e(t->rt);
  tasklet_frame* f = t->frame.load(std::memory_order_relaxed);
  std::uint64_t seq = seq_of(++f->trace_seq);
  if (!e) return;
  // run_tasklet's record: killed (a deadlock victim also keeps its
  // deadlock_error), or an error, or neither.
  tf::exit_how how = tf::exit_how::returned;
  const std::type_info* exc = nullptr;
  detail::tasklet_extra* x = detail::extra_if_any(t);  // written by this tasklet
  std::exception_ptr err = x ? x->error : nullptr;
  if (t->flags.load(std::memory_order_relaxed) & tasklet_core::flag_killed) {
    how = err ? tf::exit_how::deadlock : tf::exit_how::killed;
  } else if (err || (t->flags.load(std::memory_order_relaxed) & tasklet_core::flag_lost_error)) {
    how = tf::exit_how::exception;
    exc = err ? err.__cxa_exception_type() : nullptr;
  }
  std::uint32_t type = exc ? e.str(exc, [&] { return type_text(exc); }) : 0;
  e.event(tf::event::exit, {t->id, static_cast<std::uint64_t>(how), type, seq});
}

void steal(worker* w, unsigned victim, unsigned count) noexcept {
  emitter e(w->rt);
  if (e) e.event(tf::event::steal, {victim, count});
}

void worker_spin(worker* w) noexcept {
  emitter e(w->rt);
  if (e) e.event(tf::event::worker_spin, {w->index});
}

void worker_sleep(worker* w, std::int64_t deadline_ns) noexcept {
  emitter e(w->rt);
  if (!e) return;
  std::uint64_t d = deadline_ns == std::numeric_limits<std::int64_t>::max()
                        ? 0
                        : static_cast<std::uint64_t>(deadline_ns);
  e.event(tf::event::worker_sleep, {w->index, d});
  // A sleeping worker emits nothing: its batch goes now, so a cut while it
  // sleeps has nothing of it to wait for (and a reader of a live file sees
  // it up to its sleep).
  if (e.buffer()->count != 0) {
    try {
      e.rec()->flush_batch(*e.buffer());
    } catch (...) {
    }
  }
}

void worker_wake(worker* w) noexcept {
  emitter e(w->rt);
  if (!e) return;
  worker* me = this_worker();
  std::uint64_t by = me && me->rt == w->rt ? me->index + 1u : 0u;
  e.event(tf::event::worker_wake, {w->index, by});
}

void blocking(runtime_impl* rt, bool begin, std::uint64_t tid, std::uint64_t job) noexcept {
  emitter e(rt);
  if (e) e.event(begin ? tf::event::blocking_begin : tf::event::blocking_end, {tid, job});
}

void timer_fire(runtime_impl* rt, std::uint64_t tid) noexcept {
  emitter e(rt);
  if (e) e.event(tf::event::timer_fire, {tid});
}

void watchdog(runtime_impl* rt, std::uint64_t tid, std::int64_t ran_ns) noexcept {
  emitter e(rt);
  if (e) e.event(tf::event::watchdog, {tid, static_cast<std::uint64_t>(ran_ns)});
}

void deadlock(runtime_impl* rt, std::size_t parked) noexcept {
  emitter e(rt);
  if (e) e.event(tf::event::deadlock, {parked});
}

// The second field of /proc/thread-self/schedstat for `tid`: nanoseconds
// it spent runnable but not running (waiting for a CPU).
static std::uint64_t run_delay_of(int tid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", tid);
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  unsigned long long run = 0, wait = 0;
  if (std::sscanf(buf, "%llu %llu", &run, &wait) != 2) return 0;
  return wait;
}

void sample(runtime_impl* rt) noexcept {
  recorder* r = rt->tracer.load(std::memory_order_acquire);
  if (r == nullptr) return;
  std::size_t live = rt->live_count();
  std::uint64_t ready = rt->inject.size_approx();
  std::vector<std::uint64_t> lens;
  lens.reserve(rt->nworkers);
  for (auto& w : rt->workers) {
    std::uint64_t n = w->rq.size() + w->remote.size_approx() +
                      (w->next_slot.load(std::memory_order_relaxed) != nullptr ? 1 : 0);
    lens.push_back(n);
    ready += n;
  }
  if (r->last_delay.size() != rt->nworkers) r->last_delay.assign(rt->nworkers, 0);
  emitter e(rt);
  if (!e) return;
  for (unsigned i = 0; i < rt->nworkers; ++i) {
    int tid = rt->workers[i]->os_tid.load(std::memory_order_relaxed);
    std::uint64_t d = tid ? run_delay_of(tid) : 0;
    std::uint64_t delta = d >= r->last_delay[i] && r->last_delay[i] != 0 ? d - r->last_delay[i] : 0;
    r->last_delay[i] = d;
    e.event(tf::event::sample, {live, ready, i, lens[i], delta});
  }
}

// ---- start and stop -------------------------------------------------------

namespace {

std::string make_header(runtime_impl* rt) {
  std::string p(tf::magic, sizeof tf::magic);
  tf::append_varint(p, tf::version);
  tf::append_varint(p, 1);  // CLOCK_MONOTONIC ns (steady_clock: now_ns)
  tf::append_varint(p, static_cast<std::uint64_t>(::getpid()));
  tf::append_varint(p, rt->trace_id);
  tf::append_varint(p, static_cast<std::uint64_t>(now_ns()));
  auto wall = std::chrono::duration_cast<std::chrono::nanoseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  tf::append_varint(p, static_cast<std::uint64_t>(wall));
  static const std::string id = build_id();
  static const std::string exe = exe_path();
  tf::append_string(p, id);
  tf::append_string(p, exe);
  std::string f;
  tf::append_frame(f, tf::frame_kind::header, p);
  return f;
}

void install_fatal_handlers();

void begin(runtime_impl* rt, std::unique_ptr<recorder> r) {
  std::lock_guard lk(rt->trace_mu);
  if (rt->tracer.load(std::memory_order_relaxed) != nullptr)
    throw usage_error("taiga::trace: this runtime records already");
  if (rt->stopped.load()) throw usage_error("taiga::trace: the runtime has shut down");
  r->rt = rt;
  r->header = make_header(rt);
  // A millisecond early (a park in the start's own millisecond counts), and
  // never 0, which means "not recording".
  r->since_ms = static_cast<std::uint32_t>(now_ns() / 1'000'000) - 1u;
  if (r->since_ms == 0) r->since_ms = 1;
  if (!r->flight_mode && r->out) r->out(r->header);
  recorder* raw = r.get();
  rt->trace_retired.reserve(rt->trace_retired.size() + 1);
  raw->writer = std::thread([raw] { raw->writer_loop(); });
  rt->trace_retired.emplace_back(r.release());  // owned by the runtime from now on (T5)
  rt->tracer.store(raw, std::memory_order_release);
  detail::trace_armed.fetch_add(1, std::memory_order_relaxed);
  if (raw->flight_mode && !raw->flight.path.empty()) install_fatal_handlers();
}

recorder* flight_of(const runtime_impl* rt) noexcept {
  recorder* r = rt->tracer.load(std::memory_order_acquire);
  return r && r->flight_mode ? r : nullptr;
}

// Header + kept generations (+ the current one, cut now) into `fd`.
bool write_flight(recorder* r, int fd) {
  std::string g;
  {
    std::lock_guard lk(r->mu);
    if (!r->stopped) g = r->cut(false);
  }
  if (!g.empty()) r->deliver(std::move(g));
  std::lock_guard lk(r->keep_mu);
  bool ok = write_all(fd, r->header.data(), r->header.size());
  for (auto& k : r->kept) ok = ok && write_all(fd, k.data(), k.size());
  return ok;
}

runtime_impl* current_rt(const char* what) {
  runtime* r = runtime::current();
  if (r == nullptr)
    throw usage_error(std::string("taiga::trace::") + what +
                      " without a runtime argument outside a runtime's tasklets");
  return r->impl();
}

// ---- fatal signals --------------------------------------------------------
//
// The flight recorders with a path, for the handler: a fixed table of
// pointers, never resized, so the handler reads it without a lock. What the
// handler writes it reads without the recorder's locks (it cannot take them):
// `kept` may be changing on the recorder's thread at that instant, and then
// what it writes may be cut short; a generation written whole is whole.
// Async-signal-safe calls only: open, write, close, sigaction, raise.
constexpr int max_flight = 16;
std::atomic<recorder*> flight_table[max_flight];
std::once_flag handlers_once;
struct sigaction old_actions[32];
const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};

void fatal_handler(int sig) {
  static std::atomic<bool> once{false};
  if (!once.exchange(true)) {
    for (auto& slot : flight_table) {
      recorder* r = slot.load(std::memory_order_acquire);
      if (r == nullptr || r->flight.path.empty()) continue;
      int fd = ::open(r->flight.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) continue;
      write_all(fd, r->header.data(), r->header.size());
      // Not under keep_mu (a handler cannot lock): whole generations only
      // while nothing changes the deque; see above.
      for (auto& k : r->kept) write_all(fd, k.data(), k.size());
      ::close(fd);
    }
  }
  ::sigaction(sig, &old_actions[sig], nullptr);
  ::raise(sig);
}

void install_fatal_handlers() {
  std::call_once(handlers_once, [] {
    for (int s : fatal_signals) {
      struct sigaction sa {};
      sa.sa_handler = &fatal_handler;
      sigemptyset(&sa.sa_mask);
      sa.sa_flags = SA_RESETHAND | SA_ONSTACK;
      ::sigaction(s, &sa, &old_actions[s]);
    }
  });
}

void publish_flight(recorder* r, bool on) {
  for (auto& slot : flight_table) {
    recorder* expect = on ? nullptr : r;
    if (slot.compare_exchange_strong(expect, on ? r : nullptr)) return;
  }
}

std::atomic<int> env_traces{0};

}  // namespace

void stop_recording(runtime_impl* rt) noexcept {
  std::lock_guard lk(rt->trace_mu);
  recorder* r = rt->tracer.exchange(nullptr, std::memory_order_acq_rel);
  if (r == nullptr) return;
  detail::trace_armed.fetch_sub(1, std::memory_order_relaxed);
  if (r->flight_mode) publish_flight(r, false);
  {
    std::lock_guard ol(r->out_mu);
    r->quit = true;
  }
  r->out_cv.notify_one();
  if (r->writer.joinable()) r->writer.join();  // its last act: the final cut (T5)
  r->out = nullptr;                            // closes a file sink
  std::lock_guard kl(r->keep_mu);
  r->kept.clear();
  r->kept_bytes = 0;
}

std::uint32_t recording_since_ms(const runtime_impl* rt) noexcept {
  recorder* r = rt->tracer.load(std::memory_order_acquire);
  return r ? r->since_ms : 0;
}

void on_runtime_start(runtime_impl* rt) {
  const char* env = std::getenv("TAIGA_TRACE");
  if (env == nullptr || *env == 0) return;
  // The first runtime of the process takes the path; any later one (tests,
  // a process with several runtimes) appends its runtime id.
  std::string path = env;
  if (env_traces.fetch_add(1) != 0) path += "." + std::to_string(rt->trace_id);
  try {
    taiga::trace::start(*rt->owner, path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "taiga: TAIGA_TRACE=%s: %s\n", env, e.what());
  }
}

void on_runtime_shutdown(runtime_impl* rt) noexcept {
  stop_recording(rt);
}

void flight_trigger(runtime_impl* rt, const char* why) noexcept {
  recorder* r = flight_of(rt);
  if (r == nullptr || r->flight.path.empty()) return;
  if (r->flight_written.exchange(true)) return;  // the first trigger's picture
  int fd = ::open(r->flight.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  bool ok = false;
  try {
    ok = write_flight(r, fd);
  } catch (...) {
  }
  ::close(fd);
  std::fprintf(stderr, "taiga: %s: flight recorder %s %s\n", why,
               ok ? "written to" : "could not be written to", r->flight.path.c_str());
}

}  // namespace taiga::internal::trace

namespace taiga::detail {

void trace_unblock(std::uint64_t tid, const runtime_impl* rt, std::uint32_t word,
                   std::uint8_t how) noexcept {
  namespace tr = internal::trace;
  tr::emitter e(rt);
  if (!e) return;
  std::uint64_t seq =
      (((word >> internal::ww_seq_shift) & internal::ww_seq_mask) + 1u) & trace_format::seq_mask;
  e.event(trace_format::event::unblock, {tid, tr::current_tid(), how, seq});
}

void recorder_deleter::operator()(internal::trace::recorder* r) const noexcept {
  delete r;
}

}  // namespace taiga::detail

// ---- the public API ---------------------------------------------------------

namespace taiga::trace {

namespace tr = internal::trace;

void start(runtime& rt, sink s) {
  if (!s) throw usage_error("taiga::trace::start: an empty sink");
  auto r = std::make_unique<tr::recorder>();
  r->out = std::move(s);
  tr::begin(rt.impl(), std::move(r));
}

void start(runtime& rt, const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    throw std::system_error(errno, std::generic_category(), "taiga::trace::start: " + path);
  // The file closes when the recorder drops its sink (stop).
  auto file = std::shared_ptr<int>(new int(fd), [](int* p) {
    ::close(*p);
    delete p;
  });
  start(rt, [file](std::string_view b) { tr::write_all(*file, b.data(), b.size()); });
}

void start(const std::string& path) {
  start(*tr::current_rt("start")->owner, path);
}
void start(sink s) {
  start(*tr::current_rt("start")->owner, std::move(s));
}

void stop(runtime& rt) {
  tr::stop_recording(rt.impl());
}
void stop() {
  stop(*tr::current_rt("stop")->owner);
}

bool recording(const runtime& rt) noexcept {
  return rt.impl()->tracer.load(std::memory_order_acquire) != nullptr;
}

void start_flight_recorder(runtime& rt, flight_options o) {
  auto r = std::make_unique<tr::recorder>();
  r->flight_mode = true;
  if (o.max_bytes < 64 * 1024) o.max_bytes = 64 * 1024;
  r->cut_bytes = std::min(tr::generation_bytes, o.max_bytes / 4);
  r->pending_cap = o.max_bytes / 2;
  r->flight = std::move(o);
  tr::recorder* raw = r.get();
  tr::begin(rt.impl(), std::move(r));
  if (!raw->flight.path.empty()) tr::publish_flight(raw, true);
}

void write_flight_recorder(runtime& rt, const std::string& path) {
  tr::recorder* r = tr::flight_of(rt.impl());
  if (r == nullptr) throw usage_error("taiga::trace: this runtime has no flight recorder");
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "taiga::trace: " + path);
  bool ok = tr::write_flight(r, fd);
  ::close(fd);
  if (!ok) throw std::system_error(errno, std::generic_category(), "taiga::trace: " + path);
}

std::size_t flight_recorder_bytes(const runtime& rt) noexcept {
  tr::recorder* r = tr::flight_of(rt.impl());
  if (r == nullptr) return 0;
  std::lock_guard lk(r->keep_mu);
  return r->kept_bytes;
}

namespace {
detail::runtime_impl* annotated_rt() noexcept {
  runtime* r = runtime::current();
  return r ? r->impl() : nullptr;
}
}  // namespace

void region_begin(std::string_view name) {
  if (!detail::trace_on()) return;
  tr::emitter e(annotated_rt());
  if (e) e.event(trace_format::event::region_begin, {tr::current_tid(), e.text(name)});
}

void region_end(std::string_view name) {
  if (!detail::trace_on()) return;
  tr::emitter e(annotated_rt());
  if (e) e.event(trace_format::event::region_end, {tr::current_tid(), e.text(name)});
}

void log(std::string_view category, std::string_view message) {
  if (!detail::trace_on()) return;
  tr::emitter e(annotated_rt());
  if (e) e.event(trace_format::event::log, {tr::current_tid(), e.text(category), e.text(message)});
}

void counter(std::string_view name, std::uint64_t value) {
  if (!detail::trace_on()) return;
  tr::emitter e(annotated_rt());
  if (e) e.event(trace_format::event::counter, {e.text(name), value});
}

}  // namespace taiga::trace
