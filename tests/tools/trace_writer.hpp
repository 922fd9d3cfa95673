// A test-side trace writer: builds trace files in the format of
// <taiga/runtime/trace_format.hpp> with the header's own append_varint and
// append_frame, so the tool's tests do not depend on the recorder. Events
// are given per thread with absolute times; each generation is written as
// 'S', 'T', then per thread 'B' frames of at most `batch_size` events, then
// 'E'. `tasklet_script` adds the per-tasklet sequence numbers.
#pragma once

#include <taiga/runtime/trace_format.hpp>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

namespace taiga::test {

namespace tf = taiga::trace_format;

struct trace_header {
  std::uint64_t version = tf::version;
  std::uint64_t clock = 1;
  std::uint64_t pid = 4242;
  std::uint64_t runtime_id = 1;
  std::uint64_t start_time = 1000;
  std::uint64_t start_wall = 1700000000000000000ull;
  std::string build_id = "";
  std::string exe_path = "";
};

class trace_writer {
 public:
  explicit trace_writer(trace_header h = {}) {
    std::string p(tf::magic, sizeof tf::magic);
    tf::append_varint(p, h.version);
    tf::append_varint(p, h.clock);
    tf::append_varint(p, h.pid);
    tf::append_varint(p, h.runtime_id);
    tf::append_varint(p, h.start_time);
    tf::append_varint(p, h.start_wall);
    tf::append_string(p, h.build_id);
    tf::append_string(p, h.exe_path);
    tf::append_frame(out_, tf::frame_kind::header, p);
  }

  std::size_t batch_size = 3;  // small: tests see several batches per thread

  /// A string id of the current generation.
  std::uint64_t str(const std::string& s) {
    if (s.empty()) return 0;
    auto [it, added] = strings_.emplace(s, strings_.size() + 1);
    return it->second;
  }

  void thread(std::uint64_t id, tf::thread_kind kind, std::uint64_t worker,
              const std::string& name) {
    threads_[id] = {kind, worker, str(name)};
  }

  void event(std::uint64_t thread, std::uint64_t time, tf::event type,
             std::initializer_list<std::uint64_t> args) {
    events_[thread].push_back({time, type, std::vector<std::uint64_t>(args)});
  }

  /// Writes the generation so far and starts the next one.
  void end_generation(std::uint64_t dropped = 0, std::uint64_t end_time = 0) {
    std::string s;
    tf::append_varint(s, generation_);
    for (const auto& [text, id] : strings_) {
      tf::append_varint(s, id);
      tf::append_string(s, text);
    }
    tf::append_frame(out_, tf::frame_kind::strings, s);
    for (const auto& [id, t] : threads_) {
      std::string p;
      tf::append_varint(p, generation_);
      tf::append_varint(p, id);
      tf::append_varint(p, 1000 + id);
      tf::append_varint(p, static_cast<std::uint64_t>(t.kind));
      tf::append_varint(p, t.worker);
      tf::append_varint(p, t.name);
      tf::append_frame(out_, tf::frame_kind::thread, p);
    }
    std::uint64_t written = 0, last = 0;
    for (auto& [thread, list] : events_) {
      std::stable_sort(list.begin(), list.end(),
                       [](const ev& a, const ev& b) { return a.time < b.time; });
      for (std::size_t from = 0; from < list.size(); from += batch_size) {
        std::size_t n = std::min(batch_size, list.size() - from);
        std::string b;
        tf::append_varint(b, generation_);
        tf::append_varint(b, thread);
        std::uint64_t t = list[from].time;
        tf::append_varint(b, t);
        tf::append_varint(b, n);
        for (std::size_t i = from; i < from + n; ++i) {
          b.push_back(static_cast<char>(list[i].type));
          tf::append_varint(b, list[i].time - t);
          t = list[i].time;
          for (auto a : list[i].args) tf::append_varint(b, a);
          last = std::max(last, t);
        }
        written += n;
        tf::append_frame(out_, tf::frame_kind::batch, b);
      }
    }
    std::string e;
    tf::append_varint(e, generation_);
    tf::append_varint(e, written);
    tf::append_varint(e, dropped);
    tf::append_varint(e, end_time ? end_time : last);
    tf::append_frame(out_, tf::frame_kind::generation_end, e);
    ++generation_;
    events_.clear();
    strings_.clear();
    // Threads are described again in every generation (self-contained):
    // the caller registers them again, with names in the new string table.
    threads_.clear();
  }

  /// Skips generation numbers, as a flight recorder that dropped some would.
  void skip_generations(std::uint64_t n) { generation_ += n; }

  const std::string& bytes() const { return out_; }
  void save(const std::string& path) const {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(out_.data(), static_cast<std::streamsize>(out_.size()));
  }

 private:
  struct ev {
    std::uint64_t time;
    tf::event type;
    std::vector<std::uint64_t> args;
  };
  struct thread_desc {
    tf::thread_kind kind;
    std::uint64_t worker;
    std::uint64_t name;
  };
  std::string out_;
  std::uint64_t generation_ = 1;
  std::map<std::string, std::uint64_t> strings_;
  std::map<std::uint64_t, thread_desc> threads_;
  std::map<std::uint64_t, std::vector<ev>> events_;
};

/// Tasklet events with their sequence numbers counted per tasklet, as the
/// recorder counts them.
class tasklet_script {
 public:
  explicit tasklet_script(trace_writer& w) : w_(w) {}

  void spawn(std::uint64_t thread, std::uint64_t t, std::uint64_t id, std::uint64_t parent,
             const std::string& site, const std::string& name) {
    w_.event(thread, t, tf::event::spawn, {id, parent, w_.str(site), w_.str(name), seq_[id]++});
  }
  void run(std::uint64_t thread, std::uint64_t t, std::uint64_t id, std::uint64_t worker) {
    auto prev = last_worker_.count(id) ? last_worker_[id] + 1 : 0;
    last_worker_[id] = worker;
    w_.event(thread, t, tf::event::run, {id, worker, prev, seq_[id]++});
  }
  void park(std::uint64_t thread, std::uint64_t t, std::uint64_t id, tf::park_reason r,
            std::uint64_t object, const std::string& site) {
    w_.event(thread, t, tf::event::park,
             {id, static_cast<std::uint64_t>(r), object, w_.str(site), seq_[id]++});
  }
  void yield(std::uint64_t thread, std::uint64_t t, std::uint64_t id) {
    w_.event(thread, t, tf::event::yield, {id, seq_[id]++});
  }
  void unblock(std::uint64_t thread, std::uint64_t t, std::uint64_t id, std::uint64_t waker,
               tf::wake_how how = tf::wake_how::signaled) {
    w_.event(thread, t, tf::event::unblock,
             {id, waker, static_cast<std::uint64_t>(how), seq_[id]++});
  }
  void exit(std::uint64_t thread, std::uint64_t t, std::uint64_t id,
            tf::exit_how how = tf::exit_how::returned, const std::string& exception = "") {
    w_.event(thread, t, tf::event::exit,
             {id, static_cast<std::uint64_t>(how), w_.str(exception), seq_[id]++});
  }

 private:
  trace_writer& w_;
  std::map<std::uint64_t, std::uint64_t> seq_;
  std::map<std::uint64_t, std::uint64_t> last_worker_;
};

/// The demo trace most tests read: two workers and an outside thread; main
/// (1) spawns a producer (2) and a consumer (3), joins the producer; the
/// consumer parks on a channel until the producer wakes it; the producer
/// yields once; main finally runs 20 ms without a park (a lint finding).
/// Two generations; worker 1 steals once, spins, sleeps and is woken.
inline trace_writer demo_trace(trace_header h = {}) {
  using tf::event;
  using tf::park_reason;
  using tf::thread_kind;
  trace_writer w(h);
  tasklet_script s(w);
  auto threads = [&] {
    w.thread(1, thread_kind::worker, 0, "worker 0");
    w.thread(2, thread_kind::worker, 1, "worker 1");
    w.thread(3, thread_kind::outside, 0, "main thread");
  };
  threads();
  s.spawn(3, 1000, 1, 0, "main.cpp:10", "main");
  s.run(1, 2000, 1, 0);
  s.spawn(1, 3000, 2, 1, "main.cpp:20", "producer");
  s.spawn(1, 3500, 3, 1, "main.cpp:30", "consumer");
  s.park(1, 4000, 1, park_reason::join, 0x1000, "main.cpp:40");
  s.run(1, 4500, 2, 0);
  w.event(2, 4900, event::steal, {0, 1});
  s.run(2, 5000, 3, 1);
  s.park(2, 6000, 3, park_reason::channel_receive, 0x2000, "consumer.cpp:5");
  s.unblock(1, 7000, 3, 2);
  s.run(2, 7500, 3, 1);
  w.end_generation(0, 7600);
  threads();
  s.yield(1, 8000, 2);
  s.run(1, 8100, 2, 0);
  s.exit(2, 8500, 3);
  w.event(2, 8600, event::worker_spin, {1});
  s.exit(1, 9000, 2);
  s.unblock(1, 9000, 1, 2);
  w.event(2, 9000, event::worker_sleep, {1, 0});
  s.run(1, 9500, 1, 0);
  s.exit(1, 20009500, 1);
  w.event(1, 20000000, event::worker_wake, {1, 1});
  w.end_generation(0, 20010000);
  return w;
}

}  // namespace taiga::test
