// The trace's JSON: Chrome's trace-event format ({"traceEvents": [...]}), complete events ("X") for
// spans, counter events ("C") for items in flight, metadata ("M") naming the threads and I/O lanes.
#include "pixflow/engine/detail/trace.hpp"

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

namespace pixflow::detail {
namespace {

void json_string(std::ostream& out, const std::string& s) {
  out << '"';
  for (const char c : s) {
    switch (c) {
      case '"': out << "\\\""; break;
      case '\\': out << "\\\\"; break;
      case '\n': out << "\\n"; break;
      case '\r': out << "\\r"; break;
      case '\t': out << "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out << buf;
        } else {
          out << c;
        }
    }
  }
  out << '"';
}

/// Nanoseconds as the format's microseconds, to the nanosecond.
void micros(std::ostream& out, std::int64_t ns) {
  out << ns / 1000 << '.';
  const auto frac = ns % 1000;
  out << static_cast<char>('0' + frac / 100) << static_cast<char>('0' + frac / 10 % 10) << static_cast<char>('0' + frac % 10);
}

}  // namespace

bool Trace::write(const std::string& path, const std::vector<std::string>& names, const std::vector<std::string>& kinds) const {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return false;
  out << "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n";
  bool first = true;
  auto next = [&] {
    if (!first) out << ",\n";
    first = false;
  };
  std::map<std::uint32_t, std::string> threads;
  for (const Buffer& b : buffers_) {
    for (const Span& s : b.spans) {
      if (s.tid >= lane_base) {
        const std::uint32_t lane = s.tid - lane_base;
        threads.emplace(s.tid, names.at(lane / 10000u) + " #" + std::to_string(lane % 10000u + 1));
      } else {
        threads.emplace(s.tid, "thread " + std::to_string(s.tid));
      }
      next();
      out << "{\"name\": ";
      json_string(out, names.at(s.node));
      out << ", \"cat\": ";
      json_string(out, kinds.at(s.node));
      out << ", \"ph\": \"X\", \"ts\": ";
      micros(out, s.start);
      out << ", \"dur\": ";
      micros(out, s.end > s.start ? s.end - s.start : 0);
      out << ", \"pid\": 1, \"tid\": " << s.tid << ", \"args\": {\"item\": ";
      json_string(out, s.key.to_string());
      if (!s.failure.empty()) {
        out << ", \"failed\": ";
        json_string(out, s.failure);
      }
      out << "}}";
    }
    for (const Count& c : b.counts) {
      next();
      out << "{\"name\": ";
      json_string(out, names.at(c.node) + " in flight");
      out << ", \"ph\": \"C\", \"ts\": ";
      micros(out, c.ts);
      out << ", \"pid\": 1, \"args\": {\"items\": " << c.value << "}}";
    }
  }
  for (const auto& [tid, name] : threads) {
    next();
    out << "{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 1, \"tid\": " << tid << ", \"args\": {\"name\": ";
    json_string(out, name);
    out << "}}";
  }
  next();
  out << "{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": 1, \"args\": {\"name\": \"pixflow\"}}\n]}\n";
  out.flush();
  return static_cast<bool>(out);
}

}  // namespace pixflow::detail
