// taiga::trace_reader from an installed taiga: reads a trace written with the
// format header's own helpers, without linking the runtime.
#include <taiga/trace/model.hpp>
#include <taiga/trace/reader.hpp>

#include <cstdio>
#include <string>

int main() {
  namespace tf = taiga::trace_format;
  std::string file, header(tf::magic, sizeof tf::magic);
  for (std::uint64_t v : {std::uint64_t{tf::version}, std::uint64_t{1}, std::uint64_t{1},
                          std::uint64_t{1}, std::uint64_t{0}, std::uint64_t{0}})
    tf::append_varint(header, v);
  tf::append_string(header, "");
  tf::append_string(header, "");
  tf::append_frame(file, tf::frame_kind::header, header);
  std::string batch, end;
  for (std::uint64_t v : {1, 1, 100, 1}) tf::append_varint(batch, v);  // gen, thread, base, count
  batch.push_back(static_cast<char>(tf::event::spawn));
  for (std::uint64_t v : {0, 7, 0, 0, 0, 0}) tf::append_varint(batch, v);  // dt, tid, ..., seq
  tf::append_frame(file, tf::frame_kind::batch, batch);
  for (std::uint64_t v : {1, 1, 0, 100}) tf::append_varint(end, v);
  tf::append_frame(file, tf::frame_kind::generation_end, end);

  taiga::trace::reader r;
  if (!r.open_bytes(file)) {
    std::printf("trace: %s\n", r.error().c_str());
    return 1;
  }
  auto m = taiga::trace::build_model(r);
  std::printf("trace: %llu tasklets, %llu events\n",
              static_cast<unsigned long long>(m.tasklets.size()),
              static_cast<unsigned long long>(m.events));
  return m.tasklets.size() == 1 && m.events == 1 ? 0 : 1;
}
