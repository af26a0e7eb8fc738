#include "pixflow/tasks/json.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>

namespace pixflow::tasks {

namespace {

using json = nlohmann::json;

/// A `const char*` that counts how many bytes the parser has taken from it, so that a parse callback
/// knows where it is. nlohmann's lexer reads one byte at a time and does not read ahead of a '[' or '{'
/// token, so when such a token's callback runs the count is the offset just past it.
class CountingIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  CountingIterator(const char* p, std::size_t* taken) : p_(p), taken_(taken) {}
  reference operator*() const { return *p_; }
  CountingIterator& operator++() {
    ++p_;
    ++*taken_;
    return *this;
  }
  CountingIterator operator++(int) {
    CountingIterator before = *this;
    ++*this;
    return before;
  }
  friend bool operator==(const CountingIterator& a, const CountingIterator& b) { return a.p_ == b.p_; }

 private:
  const char* p_;
  std::size_t* taken_;
};

/// Thrown by the parse callback when a container opens one level too deep; caught in parse_json.
struct TooDeep {
  std::size_t offset;
};

/// nlohmann's exception text without "[json.exception.parse_error.101] parse error at line 1, column 2: "
/// (or, for other exceptions, without the "[json.exception.out_of_range.406] " part).
std::string nlohmann_detail(const json::exception& e) {
  std::string text = e.what();
  if (text.rfind("[json.exception", 0) == 0) {
    if (const auto close = text.find("] "); close != std::string::npos) text = text.substr(close + 2);
  }
  if (text.rfind("parse error", 0) == 0) {
    if (const auto colon = text.find(": "); colon != std::string::npos) text = text.substr(colon + 2);
  }
  return text;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

JsonError cannot_read(int error) { return {std::string("cannot read: ") + std::strerror(error), std::nullopt, 0, 0}; }

JsonError too_large(std::size_t max_bytes) {
  return {"too large (more than " + describe_bytes(max_bytes) + ")", std::nullopt, 0, 0};
}

/// An error at `offset` of `text`, with its line and column.
JsonError located(std::string message, std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  const std::string_view before = text.substr(0, offset);
  const auto line = static_cast<std::size_t>(std::count(before.begin(), before.end(), '\n')) + 1;
  const auto last_newline = before.rfind('\n');
  const std::size_t column = last_newline == std::string_view::npos ? offset + 1 : offset - last_newline;
  return {std::move(message), offset, line, column};
}

}  // namespace

std::string JsonError::what() const {
  if (!offset) return message;
  return message + " at byte " + std::to_string(*offset);
}

std::string describe_bytes(std::size_t bytes) {
  constexpr std::size_t kKiB = 1024;
  constexpr std::size_t kMiB = kKiB * 1024;
  if (bytes >= kMiB && bytes % kMiB == 0) return std::to_string(bytes / kMiB) + " MiB";
  if (bytes >= kKiB && bytes % kKiB == 0) return std::to_string(bytes / kKiB) + " KiB";
  return std::to_string(bytes) + (bytes == 1 ? " byte" : " bytes");
}

JsonResult parse_json(std::string_view text, const JsonLimits& limits) {
  if (limits.max_bytes != 0 && text.size() > limits.max_bytes) return too_large(limits.max_bytes);

  std::size_t taken = 0;
  const CountingIterator first(text.data(), &taken);
  const CountingIterator last(text.data() + text.size(), &taken);
  const std::size_t max_depth = limits.max_depth;
  // `depth` is the number of containers around the one starting: the root array/object has 0.
  const json::parser_callback_t guard = [&taken, max_depth](int depth, json::parse_event_t event, json&) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        static_cast<std::size_t>(depth) >= max_depth)
      throw TooDeep{taken == 0 ? 0 : taken - 1};
    return true;
  };

  json document;
  try {
    document = json::parse(first, last, guard, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const TooDeep& e) {
    return located("too deeply nested (more than " + std::to_string(max_depth) + " levels)", text, e.offset);
  } catch (const json::parse_error& e) {
    // e.byte counts the bytes read when the error was seen, the offending one included (1-based).
    const std::size_t offset = e.byte == 0 ? 0 : e.byte - 1;
    // nlohmann ends the input at a NUL (for C strings): name the NUL rather than an "end of input".
    if (offset < text.size() && text[offset] == '\0') return located("unexpected NUL byte", text, offset);
    std::string message = nlohmann_detail(e);
    if (message.ends_with("; expected end of input")) message = "unexpected data after the JSON value";
    return located(std::move(message), text, offset);
  } catch (const json::exception& e) {  // out_of_range 406: a number like 1e400
    return located(nlohmann_detail(e), text, taken == 0 ? 0 : taken - 1);
  }
  // The value parsed and nothing but whitespace followed it up to the end or a NUL: a NUL there is data
  // nlohmann never looked at ("{}" NUL "garbage").
  if (const auto nul = text.find('\0'); nul != std::string_view::npos) return located("unexpected NUL byte", text, nul);
  return document;
}

JsonResult read_json_file(const std::filesystem::path& file, const JsonLimits& limits) {
  const std::size_t cap = limits.max_bytes != 0 ? limits.max_bytes : kJsonMaxBytes;
  const Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));  // NOLINT: POSIX vararg
  if (fd.get() < 0) return cannot_read(errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return cannot_read(errno);
  if (S_ISDIR(st.st_mode)) return cannot_read(EISDIR);
  // One byte past the cap tells "exactly the cap" from "more": a device or pipe never says its size.
  std::string text;
  constexpr std::size_t kFirstChunk = std::size_t{64} << 10;  // a pipe or device: grow from here
  const std::size_t guess = S_ISREG(st.st_mode) ? static_cast<std::size_t>(st.st_size) + 1 : kFirstChunk;
  text.resize(std::min(cap + 1, guess));
  std::size_t got = 0;
  for (;;) {
    if (got == text.size()) {
      if (text.size() > cap) break;
      text.resize(std::min(cap + 1, text.size() * 2 + 4096));  // a file that grew, or a pipe
    }
    const ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return cannot_read(errno);
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got > cap) return too_large(cap);
  text.resize(got);
  return parse_json(text, {cap, limits.max_depth});
}

}  // namespace pixflow::tasks
