// HttpClient against the real nginx fixture (and, for misbehaviour nginx cannot produce on demand, a tiny
// raw TCP server in this file: a body that stalls, a body of unknown length, a redirect to file://, a
// scripted sequence of answers for retries: 500 then 200, 429/503 with Retry-After, a lying Content-Length).
#include "pixflow/tasks/http.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace std::chrono_literals;
using pixflow::tasks::HttpClient;
using pixflow::tasks::HttpOptions;
using pixflow::tasks::HttpRequest;
using pixflow::tasks::HttpResponse;

namespace {

/// Collects responses by index and counts callback calls, so tests can check "exactly once".
class Collector {
 public:
  HttpClient::Callback callback(std::size_t index) {
    return [this, index](HttpResponse r) {
      std::lock_guard lock(mutex_);
      ++calls_[index];
      threads_.push_back(std::this_thread::get_id());
      responses_[index] = std::move(r);
      cv_.notify_all();
    };
  }
  /// Waits until `count` distinct requests have completed; false on timeout.
  bool wait_for(std::size_t count, std::chrono::milliseconds timeout = 15s) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return responses_.size() >= count; });
  }
  HttpResponse get(std::size_t index) {
    std::lock_guard lock(mutex_);
    return responses_.at(index);
  }
  std::map<std::size_t, int> calls() {
    std::lock_guard lock(mutex_);
    return calls_;
  }
  std::vector<std::thread::id> threads() {
    std::lock_guard lock(mutex_);
    return threads_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<std::size_t, HttpResponse> responses_;
  std::map<std::size_t, int> calls_;
  std::vector<std::thread::id> threads_;
};

/// One request, waited for.
HttpResponse fetch(HttpClient& client, const std::string& url, std::vector<std::string> headers = {}) {
  Collector c;
  client.submit({url, std::move(headers)}, c.callback(0));
  REQUIRE(c.wait_for(1));
  return c.get(0);
}

/// A loopback TCP server, one connection at a time, that answers connection i with the raw reply
/// replies[i] (the last one for every later connection), then keeps the connection open for `hold` (or
/// until destroyed) before closing it. It records the last request's head and counts requests.
class RawServer {
 public:
  RawServer(std::string reply, std::chrono::milliseconds hold)
      : RawServer(std::vector<std::string>{std::move(reply)}, hold) {}
  RawServer(std::vector<std::string> replies, std::chrono::milliseconds hold)
      : replies_(std::move(replies)), hold_(hold) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd_, 8) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      throw std::runtime_error("bind/listen failed");
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~RawServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  RawServer(const RawServer&) = delete;
  RawServer& operator=(const RawServer&) = delete;

  [[nodiscard]] std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::string last_request() {
    std::lock_guard lock(mutex_);
    return request_;
  }
  /// Requests answered so far.
  std::size_t requests() const { return served_.load(); }

 private:
  bool wait_readable(int fd, int ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, ms) > 0;
  }
  void serve() {
    while (!stop_) {
      if (!wait_readable(fd_, 50)) continue;
      const int conn = ::accept(fd_, nullptr, nullptr);
      if (conn < 0) continue;
      std::string head;
      char buf[4096];
      while (!stop_ && head.find("\r\n\r\n") == std::string::npos && wait_readable(conn, 2000)) {
        const ssize_t n = ::recv(conn, buf, sizeof buf, 0);
        if (n <= 0) break;
        head.append(buf, static_cast<std::size_t>(n));
      }
      {
        std::lock_guard lock(mutex_);
        request_ = head;
      }
      const std::string& reply = replies_[std::min(served_.load(), replies_.size() - 1)];
      ++served_;
      std::size_t sent = 0;
      while (sent < reply.size()) {
        const ssize_t n = ::send(conn, reply.data() + sent, reply.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<std::size_t>(n);
      }
      const auto until = std::chrono::steady_clock::now() + hold_;
      while (!stop_ && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(20ms);
      ::close(conn);
    }
  }

  std::vector<std::string> replies_;
  std::atomic<std::size_t> served_{0};
  std::chrono::milliseconds hold_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::string request_;
  std::thread thread_;
};

/// A loopback port with nothing listening on it (bound, then released).
std::uint16_t closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// A complete HTTP/1.1 reply that closes its connection.
std::string reply(const std::string& status_line, const std::string& headers = "", const std::string& body = "") {
  return "HTTP/1.1 " + status_line + "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n" + headers + "\r\n" + body;
}

/// Seconds since `start`.
double since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// An HTTP date (RFC 7231 IMF-fixdate) `seconds` from now.
std::string http_date(int seconds) {
  const std::time_t when = std::time(nullptr) + seconds;
  std::tm tm{};
  gmtime_r(&when, &tm);
  char text[64];
  const std::size_t n = std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(text, n);
}

/// Waits (up to 5 s) until `done()` holds.
template <class Predicate>
bool eventually(Predicate done) {
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

TEST_CASE("HttpResponse: ok and failure_reason", "[http]") {
  HttpResponse r;
  r.status = 200;
  CHECK(r.ok());
  CHECK(r.failure_reason().empty());
  r.status = 204;
  CHECK(r.ok());
  r.status = 302;
  CHECK_FALSE(r.ok());
  CHECK(r.failure_reason() == "http 302");
  r.status = 200;
  r.error = "timed out";
  CHECK_FALSE(r.ok());
  CHECK(r.failure_reason() == "timed out");
}

TEST_CASE("HttpClient: a photo downloads byte-identical", "[http][server]") {
  HttpClient client;
  const std::string base = pixflow::test::server_url();
  for (const std::string name : {"tiny.jpg", "aqua.jpg"}) {
    const std::string url = base + "/photos/" + name;
    HttpResponse r = fetch(client, url);
    INFO(url << ": " << r.failure_reason());
    CHECK(r.ok());
    CHECK(r.status == 200);
    CHECK(r.error.empty());
    CHECK(r.failure_reason().empty());
    CHECK(r.content_type == "image/jpeg");
    CHECK(r.url == url);
    CHECK(r.effective_url == url);
    CHECK(r.seconds > 0);
    CHECK(r.body == pixflow::test::read_bytes(pixflow::test::photo(name)));
  }
  CHECK(client.in_flight() == 0);
  CHECK(client.peak_in_flight() == 1);
}

TEST_CASE("HttpClient: statuses are reported, not errors", "[http][server]") {
  HttpClient client;
  const std::string base = pixflow::test::server_url();
  HttpResponse missing = fetch(client, base + "/no/such/thing.jpg");
  CHECK(missing.status == 404);
  CHECK(missing.attempts == 1);  // other 4xx are final: never retried
  CHECK(missing.error.empty());
  CHECK_FALSE(missing.ok());
  CHECK(missing.failure_reason() == "http 404");

  HttpResponse page = fetch(client, base + "/text/page.html");
  CHECK(page.ok());
  CHECK(page.content_type == "text/html");  // nginx sends "text/html" (parameters would be dropped)
  CHECK_FALSE(page.body.empty());
}

TEST_CASE("HttpClient: redirects are followed up to max_redirects", "[http][server]") {
  const std::string base = pixflow::test::server_url();
  SECTION("a redirect lands on the photo") {
    HttpClient client;
    HttpResponse r = fetch(client, base + "/redirect/tiny.jpg");
    INFO(r.failure_reason());
    CHECK(r.ok());
    CHECK(r.url == base + "/redirect/tiny.jpg");
    CHECK(r.effective_url != r.url);
    CHECK(ends_with(r.effective_url, "/photos/tiny.jpg"));
    CHECK(r.content_type == "image/jpeg");
    CHECK(r.body == pixflow::test::read_bytes(pixflow::test::photo("tiny.jpg")));
  }
  SECTION("a redirect loop stops") {
    HttpClient client({.max_redirects = 3});
    HttpResponse r = fetch(client, base + "/redirect-loop");
    CHECK(r.error == "too many redirects");
    CHECK_FALSE(r.ok());
    CHECK(r.failure_reason() == "too many redirects");
  }
  SECTION("a redirect to file:// is refused") {
    RawServer server("HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n\r\n", 0ms);
    HttpClient client;
    HttpResponse r = fetch(client, server.url("/to-file"));
    CHECK(r.error == "unsupported scheme (file)");
    CHECK(r.body.empty());
  }
}

TEST_CASE("HttpClient: max_bytes caps the body", "[http][server]") {
  SECTION("a known Content-Length above the cap") {
    HttpClient client({.max_bytes = 1u << 20});
    HttpResponse r = fetch(client, pixflow::test::server_url() + "/big.bin");
    CHECK(r.error == "too large (> 1048576 bytes)");
    CHECK(r.body.size() <= (1u << 20));
  }
  SECTION("a body of unknown length, stopped while it streams") {
    RawServer server("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n" +
                         std::string(300000, 'x'),
                     0ms);
    HttpClient client({.max_bytes = 100000});
    HttpResponse r = fetch(client, server.url("/endless"));
    CHECK(r.error == "too large (> 100000 bytes)");
    CHECK(r.status == 200);
    CHECK(r.body.size() <= 100000);
  }
  SECTION("a body under the cap passes") {
    HttpClient client({.max_bytes = 4u << 20});
    HttpResponse r = fetch(client, pixflow::test::server_url() + "/big.bin");
    CHECK(r.ok());
    CHECK(r.body.size() == (3u << 20));
  }
}

TEST_CASE("HttpClient: only http and https URLs are opened", "[http]") {
  HttpClient client;
  CHECK(fetch(client, "file:///etc/passwd").error == "unsupported scheme (file)");
  CHECK(fetch(client, "FTP://127.0.0.1/x").error == "unsupported scheme (ftp)");
  CHECK(fetch(client, "gopher2://127.0.0.1/x").error == "unsupported scheme (gopher2)");
  CHECK(fetch(client, "not a url").error == "invalid url");
  CHECK(fetch(client, "http://").error == "invalid url");
  HttpResponse r = fetch(client, "file:///etc/passwd");
  CHECK(r.status == 0);
  CHECK(r.body.empty());
  CHECK(r.failure_reason() == "unsupported scheme (file)");
  CHECK(client.peak_in_flight() == 0);  // none of them ever became a transfer
}

TEST_CASE("HttpClient: connection refused", "[http]") {
  const std::string url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/x.jpg";
  SECTION("no retries") {
    HttpClient client({.retries = 0});
    HttpResponse r = fetch(client, url);
    INFO(r.error);
    CHECK(r.error.rfind("cannot connect", 0) == 0);
    CHECK(r.status == 0);
    CHECK(r.attempts == 1);
  }
  SECTION("a connect error is retried") {
    HttpClient client({.retries = 2, .backoff_s = 0.01});
    HttpResponse r = fetch(client, url);
    INFO(r.error);
    CHECK(r.error.rfind("cannot connect", 0) == 0);
    CHECK(r.attempts == 3);
  }
}

TEST_CASE("HttpClient: request headers and user agent are sent", "[http]") {
  RawServer server("HTTP/1.1 200 OK\r\nContent-Type: Text/Plain; charset=UTF-8\r\nContent-Length: 2\r\n\r\nok", 0ms);
  HttpClient client({.user_agent = "pixflow-test/1"});
  HttpResponse r = fetch(client, server.url("/h"), {"Authorization: Client-ID abc123"});
  CHECK(r.ok());
  CHECK(r.content_type == "text/plain");
  CHECK(std::string(r.body.begin(), r.body.end()) == "ok");
  const std::string head = server.last_request();
  CHECK(head.find("Authorization: Client-ID abc123\r\n") != std::string::npos);
  CHECK(head.find("User-Agent: pixflow-test/1\r\n") != std::string::npos);
}

TEST_CASE("HttpClient: timeouts", "[http][server]") {
  SECTION("the whole transfer takes longer than timeout_s") {
    HttpClient client({.timeout_s = 0.5, .retries = 0});
    HttpResponse r = fetch(client, pixflow::test::server_url() + "/slow/aqua.jpg");  // ~2 s at 20 kB/s
    CHECK(r.error == "timed out");
    CHECK(r.attempts == 1);
    CHECK(r.seconds < 1.5);
  }
  SECTION("a timed-out transfer is retried") {
    HttpClient client({.timeout_s = 0.3, .retries = 1, .backoff_s = 0.01});
    HttpResponse r = fetch(client, pixflow::test::server_url() + "/slow/aqua.jpg");
    CHECK(r.error == "timed out");
    CHECK(r.attempts == 2);
    CHECK(r.seconds >= 0.6);  // both attempts, first start to last end
  }
  SECTION("a body that stops arriving") {
    // Headers, then silence. (curl averages the speed over a few seconds, so a burst of body bytes
    // before the silence would postpone the verdict by that window.)
    RawServer server("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nContent-Type: image/jpeg\r\n\r\n", 5000ms);
    HttpClient client({.stall_timeout_s = 1, .retries = 0});
    HttpResponse r = fetch(client, server.url("/stall"));
    CHECK(r.error == "stalled (no data for 1 s)");
    CHECK(r.attempts == 1);
    CHECK(r.status == 200);
    CHECK(r.seconds < 4);
  }
  SECTION("a server that accepts and never answers: the header timeout, not timeout_s") {
    RawServer server("", 5000ms);  // reads the request, sends nothing, holds the connection 5 s
    HttpClient client({.timeout_s = 20, .header_timeout_s = 1, .stall_timeout_s = 10, .retries = 0});
    HttpResponse r = fetch(client, server.url("/mute"));
    CHECK(r.error == "no response (header timeout 1 s)");
    CHECK(r.status == 0);
    CHECK(r.attempts == 1);
    CHECK(r.seconds < 4);
  }
  SECTION("headers that never end count as no response, even after a first line") {
    RawServer server("HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n", 5000ms);
    HttpClient client({.timeout_s = 20, .header_timeout_s = 1, .stall_timeout_s = 10, .retries = 0});
    HttpResponse r = fetch(client, server.url("/half-head"));
    CHECK(r.error == "no response (header timeout 1 s)");
    CHECK(r.seconds < 4);
  }
  SECTION("no response is retried like a stall") {
    RawServer server("", 3000ms);
    HttpClient client({.timeout_s = 20, .header_timeout_s = 0.5, .retries = 1, .backoff_s = 0.01});
    HttpResponse r = fetch(client, server.url("/mute"));
    CHECK(r.error == "no response (header timeout 0.5 s)");
    CHECK(r.attempts == 2);
  }
  SECTION("a body slower than min_speed_bytes_s over a stall_timeout_s window") {
    // nginx's /slow/ sends 20 kB bursts once a second (gaps of ~1.0 s, so no stall_timeout_s of 1 here):
    // under 100 kB/s, although the bytes never stop for long.
    HttpClient client({.timeout_s = 20, .stall_timeout_s = 2, .min_speed_bytes_s = 100'000, .retries = 0});
    HttpResponse r = fetch(client, pixflow::test::server_url() + "/slow/dune.jpg");  // ~9 s at 20 kB/s
    INFO(r.error);
    CHECK(r.error == "too slow (under 100000 B/s for 2 s)");
    CHECK(r.status == 200);
    CHECK(r.seconds < 6);  // one to two windows, far from the ~9 s the body would take
  }
  SECTION("the default minimum speed passes a slow but real link") {
    HttpClient client({.timeout_s = 20, .stall_timeout_s = 2, .retries = 0});
    HttpResponse r = fetch(client, pixflow::test::server_url() + "/slow/dune.jpg");  // 4 windows at 20 kB/s
    INFO(r.error);
    CHECK(r.error.empty());
    CHECK(r.ok());
  }
  SECTION("time spent waiting in the client's queue does not count") {
    // Two ~2 s transfers, one at a time: the second finishes ~4 s after submit, its own transfer takes ~2 s.
    HttpClient client({.max_in_flight = 1, .timeout_s = 3});
    Collector c;
    const std::string url = pixflow::test::server_url() + "/slow/storm-rotated.jpg";
    client.submit({url, {}}, c.callback(0));
    client.submit({url, {}}, c.callback(1));
    REQUIRE(c.wait_for(2));
    for (std::size_t i : {0u, 1u}) {
      INFO(i << ": " << c.get(i).failure_reason());
      CHECK(c.get(i).ok());
      CHECK(c.get(i).seconds < 3);
    }
  }
}

TEST_CASE("HttpClient: max_in_flight caps transfers; the rest wait in the client's queue", "[http][server]") {
  HttpClient client({.max_in_flight = 3});
  Collector c;
  const std::string base = pixflow::test::server_url();
  std::atomic<std::size_t> worst{0};
  std::vector<std::string> urls;
  for (int i = 0; i < 12; ++i) urls.push_back(base + (i < 3 ? "/slow/storm-rotated.jpg" : "/slow/tiny.jpg"));
  for (std::size_t i = 0; i < urls.size(); ++i) {
    client.submit({urls[i], {}}, [&, cb = c.callback(i)](HttpResponse r) {
      std::size_t now = client.in_flight();
      std::size_t seen = worst.load();
      while (now > seen && !worst.compare_exchange_weak(seen, now)) {
      }
      cb(std::move(r));
    });
  }
  REQUIRE(c.wait_for(12));
  for (std::size_t i = 0; i < urls.size(); ++i) {
    INFO(urls[i] << ": " << c.get(i).failure_reason());
    CHECK(c.get(i).ok());
  }
  CHECK(client.peak_in_flight() == 3);
  CHECK(worst.load() <= 3);
  CHECK(client.in_flight() == 0);
  CHECK(c.get(0).body == pixflow::test::read_bytes(pixflow::test::photo("storm-rotated.jpg")));
  CHECK(c.get(11).body == pixflow::test::read_bytes(pixflow::test::photo("tiny.jpg")));
}

TEST_CASE("HttpClient: per_host caps transfers to one host:port", "[http][server]") {
  HttpClient client({.max_in_flight = 8, .per_host = 2});
  Collector c;
  const std::string base = pixflow::test::server_url();  // http://127.0.0.1:PORT
  const std::string other = "http://localhost:" + base.substr(base.rfind(':') + 1);  // same server, another host
  for (std::size_t i = 0; i < 8; ++i) client.submit({(i < 4 ? base : other) + "/photos/tiny.jpg", {}}, c.callback(i));
  REQUIRE(c.wait_for(8));
  for (std::size_t i = 0; i < 8; ++i) {
    INFO(i << ": " << c.get(i).failure_reason());
    CHECK(c.get(i).ok());
  }
  CHECK(client.peak_in_flight() == 4);  // 2 per host, though 8 were allowed
}

TEST_CASE("HttpClient: submit from many threads at once", "[http][server]") {
  HttpClient client({.max_in_flight = 8});
  Collector c;
  const std::string base = pixflow::test::server_url();
  constexpr std::size_t kThreads = 6;
  constexpr std::size_t kEach = 15;
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (std::size_t i = 0; i < kEach; ++i) {
        const std::size_t index = t * kEach + i;
        client.submit({base + (index % 2 == 0 ? "/photos/tiny.jpg" : "/photos/aqua.jpg"), {}}, c.callback(index));
      }
    });
  for (auto& th : threads) th.join();
  REQUIRE(c.wait_for(kThreads * kEach));
  const auto tiny = pixflow::test::read_bytes(pixflow::test::photo("tiny.jpg"));
  const auto aqua = pixflow::test::read_bytes(pixflow::test::photo("aqua.jpg"));
  for (std::size_t index = 0; index < kThreads * kEach; ++index) {
    HttpResponse r = c.get(index);
    INFO(index << ": " << r.failure_reason());
    CHECK(r.ok());
    CHECK(r.body == (index % 2 == 0 ? tiny : aqua));
  }
  for (const auto& [index, calls] : c.calls()) CHECK(calls == 1);
  CHECK(client.peak_in_flight() <= 8);
}

TEST_CASE("HttpClient: callbacks may submit again, and may throw", "[http][server]") {
  HttpClient client;
  Collector c;
  const std::string base = pixflow::test::server_url();
  // A chain like the gallery listing: each page's callback asks for the next one.
  std::function<void(std::size_t)> fetch_page = [&](std::size_t page) {
    client.submit({base + "/photos/tiny.jpg", {}}, [&, page, cb = c.callback(page)](HttpResponse r) {
      cb(std::move(r));
      if (page < 4) fetch_page(page + 1);
    });
  };
  fetch_page(0);
  REQUIRE(c.wait_for(5));
  for (std::size_t i = 0; i < 5; ++i) CHECK(c.get(i).ok());

  client.submit({base + "/photos/tiny.jpg", {}}, [](HttpResponse) { throw std::runtime_error("callback bug"); });
  HttpResponse after = fetch(client, base + "/photos/tiny.jpg");  // the loop thread survived
  CHECK(after.ok());
}

TEST_CASE("HttpClient: callbacks run on the loop thread", "[http][server]") {
  HttpClient client;
  Collector c;
  client.submit({pixflow::test::server_url() + "/photos/tiny.jpg", {}}, c.callback(0));
  client.submit({"file:///etc/passwd", {}}, c.callback(1));  // fails before curl, still on the loop thread
  REQUIRE(c.wait_for(2));
  const auto threads = c.threads();
  REQUIRE(threads.size() == 2);
  CHECK(threads[0] != std::this_thread::get_id());
  CHECK(threads[0] == threads[1]);
}

TEST_CASE("HttpClient: cancel_all completes everything pending with \"cancelled\"", "[http][server]") {
  HttpClient client({.max_in_flight = 2});
  Collector c;
  const std::string base = pixflow::test::server_url();
  for (std::size_t i = 0; i < 6; ++i) client.submit({base + "/slow/aqua.jpg", {}}, c.callback(i));
  const auto started = std::chrono::steady_clock::now();
  while (client.in_flight() < 2 && std::chrono::steady_clock::now() - started < 2s) std::this_thread::sleep_for(5ms);
  client.cancel_all();  // returns once every callback has run
  const auto calls = c.calls();
  REQUIRE(calls.size() == 6);
  for (std::size_t i = 0; i < 6; ++i) {
    CHECK(calls.at(i) == 1);
    CHECK(c.get(i).error == "cancelled");
  }
  CHECK(client.in_flight() == 0);

  HttpResponse later = fetch(client, base + "/photos/tiny.jpg");  // the client still works
  CHECK(later.ok());
}

TEST_CASE("HttpClient: destruction cancels running and queued transfers, each callback once", "[http][server]") {
  Collector c;
  const std::string base = pixflow::test::server_url();
  constexpr std::size_t kCount = 10;
  std::atomic<std::size_t> resubmitted{0};
  {
    HttpClient client({.max_in_flight = 4});
    for (std::size_t i = 0; i < kCount; ++i) client.submit({base + "/slow/aqua.jpg", {}}, c.callback(i));
    // One whose callback submits again while the client shuts down: that one is cancelled too.
    client.submit({base + "/slow/aqua.jpg", {}}, [&, cb = c.callback(kCount)](HttpResponse r) {
      cb(std::move(r));
      client.submit({base + "/photos/tiny.jpg", {}}, [&, cb2 = c.callback(kCount + 1)](HttpResponse r2) {
        ++resubmitted;
        cb2(std::move(r2));
      });
    });
    const auto started = std::chrono::steady_clock::now();
    while (client.in_flight() < 4 && std::chrono::steady_clock::now() - started < 2s)
      std::this_thread::sleep_for(5ms);
    CHECK(client.in_flight() == 4);
  }  // destroyed with 4 running and 7 queued
  const auto calls = c.calls();
  REQUIRE(calls.size() == kCount + 2);
  for (const auto& [index, n] : calls) {
    INFO(index);
    CHECK(n == 1);
    CHECK(c.get(index).error == "cancelled");
  }
  CHECK(resubmitted.load() == 1);
}

TEST_CASE("HttpClient: options are validated and kept", "[http]") {
  CHECK_THROWS_AS(HttpClient({.max_in_flight = 0}), std::invalid_argument);
  CHECK_THROWS_AS(HttpClient({.per_host = 0}), std::invalid_argument);
  CHECK_THROWS_AS(HttpClient({.retries = -1}), std::invalid_argument);
  CHECK_THROWS_AS(HttpClient({.backoff_s = -0.5}), std::invalid_argument);
  CHECK_THROWS_AS(HttpClient({.header_timeout_s = -1}), std::invalid_argument);
  CHECK_THROWS_AS(HttpClient({.min_speed_bytes_s = std::numeric_limits<double>::infinity()}), std::invalid_argument);
  CHECK_THROWS_AS(HttpClient({.max_retry_wait_s = std::numeric_limits<double>::quiet_NaN()}), std::invalid_argument);
  CHECK_THROWS_AS(HttpClient({.rate_per_host = -1}), std::invalid_argument);
  CHECK_THROWS_AS(HttpClient({.rate_per_host = std::numeric_limits<double>::infinity()}), std::invalid_argument);
  {
    const HttpClient defaults;
    CHECK(defaults.options().retries == 3);
    CHECK(defaults.options().backoff_s == 0.5);
    CHECK(defaults.options().max_retry_wait_s == 30);
    CHECK(defaults.options().rate_per_host == 0);
  }
  HttpClient client({.max_in_flight = 7, .per_host = 2, .timeout_s = 9});
  CHECK(client.options().max_in_flight == 7);
  CHECK(client.options().per_host == 2);
  CHECK(client.options().timeout_s == 9);
}

TEST_CASE("HttpClient retries: 500 twice, then 200", "[http]") {
  RawServer server({reply("500 Internal Server Error", "", "oops"), reply("500 Internal Server Error", "", "oops"),
                    reply("200 OK", "", "ok")},
                   0ms);
  HttpClient client({.retries = 3, .backoff_s = 0.01});
  HttpResponse r = fetch(client, server.url("/flaky"));
  INFO(r.failure_reason());
  CHECK(r.ok());
  CHECK(r.attempts == 3);
  CHECK(std::string(r.body.begin(), r.body.end()) == "ok");  // the failed attempts' bodies are gone
  CHECK(server.requests() == 3);
  CHECK(client.in_flight() == 0);
}

TEST_CASE("HttpClient retries: 503 forever ends after retries, with the last status", "[http]") {
  RawServer server(reply("503 Service Unavailable", "", "busy"), 0ms);
  HttpClient client({.retries = 2, .backoff_s = 0.1});
  const auto start = std::chrono::steady_clock::now();
  HttpResponse r = fetch(client, server.url("/down"));
  const double took = since(start);
  CHECK(r.status == 503);
  CHECK(r.error.empty());
  CHECK(r.failure_reason() == "http 503");
  CHECK(r.attempts == 3);
  CHECK(server.requests() == 3);
  CHECK(std::string(r.body.begin(), r.body.end()) == "busy");  // the last attempt's body
  // Waits 0.1 then 0.2, each jittered into its upper half: at least 0.05 + 0.1 s in all.
  CHECK(took >= 0.15);
  CHECK(took < 10);
}

TEST_CASE("HttpClient retries: 429 and 503 honour Retry-After", "[http]") {
  SECTION("429 with Retry-After in seconds, then 200") {
    RawServer server({reply("429 Too Many Requests", "Retry-After: 1\r\n"), reply("200 OK", "", "ok")}, 0ms);
    HttpClient client({.retries = 2, .backoff_s = 0.01});  // a backoff alone would retry at once
    const auto start = std::chrono::steady_clock::now();
    HttpResponse r = fetch(client, server.url("/limited"));
    const double took = since(start);
    INFO(r.failure_reason());
    CHECK(r.ok());
    CHECK(r.attempts == 2);
    CHECK(took >= 0.95);
    CHECK(took < 5);
  }
  SECTION("503 with Retry-After as an HTTP date, then 200") {
    // Two seconds ahead at whole-second resolution: between 1 and 2 s from when the client reads it.
    RawServer server({reply("503 Service Unavailable", "Retry-After: " + http_date(2) + "\r\n"), reply("200 OK", "", "ok")},
                     0ms);
    HttpClient client({.retries = 2, .backoff_s = 0.01});
    const auto start = std::chrono::steady_clock::now();
    HttpResponse r = fetch(client, server.url("/maintenance"));
    const double took = since(start);
    INFO(r.failure_reason());
    CHECK(r.ok());
    CHECK(r.attempts == 2);
    CHECK(took >= 0.9);
    CHECK(took < 5);
  }
  SECTION("a Retry-After beyond max_retry_wait_s waits only the cap, then retries") {
    RawServer server({reply("503 Service Unavailable", "Retry-After: 3600\r\n"), reply("200 OK", "", "ok")}, 0ms);
    HttpClient client({.retries = 1, .backoff_s = 0.01, .max_retry_wait_s = 0.3});
    const auto start = std::chrono::steady_clock::now();
    HttpResponse r = fetch(client, server.url("/later"));
    const double took = since(start);
    INFO(r.failure_reason());
    CHECK(r.ok());
    CHECK(r.attempts == 2);
    CHECK(took >= 0.28);
    CHECK(took < 5);
  }
}

TEST_CASE("HttpClient retries: final failures are not retried", "[http][server]") {
  HttpClient client({.max_redirects = 2, .retries = 3, .backoff_s = 0.01});
  SECTION("4xx other than 429") {
    RawServer server(reply("403 Forbidden"), 0ms);
    HttpResponse r = fetch(client, server.url("/secret"));
    CHECK(r.failure_reason() == "http 403");
    CHECK(r.attempts == 1);
    CHECK(server.requests() == 1);
  }
  SECTION("too many redirects") {
    HttpResponse r = fetch(client, pixflow::test::server_url() + "/redirect-loop");
    CHECK(r.error == "too many redirects");
    CHECK(r.attempts == 1);
  }
  SECTION("too large") {
    HttpClient small({.max_bytes = 1000, .retries = 3, .backoff_s = 0.01});
    HttpResponse r = fetch(small, pixflow::test::server_url() + "/photos/aqua.jpg");
    CHECK(r.error == "too large (> 1000 bytes)");
    CHECK(r.attempts == 1);
  }
  SECTION("never opened: no attempt at all") {
    HttpResponse r = fetch(client, "file:///etc/passwd");
    CHECK(r.error == "unsupported scheme (file)");
    CHECK(r.attempts == 0);
    CHECK(fetch(client, "not a url").attempts == 0);
  }
}

TEST_CASE("HttpClient retries: a Content-Length that lies is a truncated body, retried", "[http]") {
  RawServer server("HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n" +
                       std::string(100, 'x'),
                   0ms);
  HttpClient client({.retries = 2, .backoff_s = 0.01});
  HttpResponse r = fetch(client, server.url("/short.jpg"));
  CHECK(r.error == "truncated body");
  CHECK(r.failure_reason() == "truncated body");
  CHECK(r.status == 200);
  CHECK_FALSE(r.ok());
  CHECK(r.attempts == 3);
  CHECK(server.requests() == 3);
}

TEST_CASE("HttpClient retries: a transfer waiting for its retry holds no slot", "[http][server]") {
  RawServer server({reply("503 Service Unavailable", "Retry-After: 1\r\n"), reply("200 OK", "", "ok")}, 0ms);
  HttpClient client({.max_in_flight = 1, .retries = 1});
  Collector c;
  std::mutex mutex;
  std::map<std::size_t, double> finished_at;
  const auto start = std::chrono::steady_clock::now();
  const auto record = [&](std::size_t i) {
    return [&, i, cb = c.callback(i)](HttpResponse r) {
      {
        std::lock_guard lock(mutex);
        finished_at[i] = since(start);
      }
      cb(std::move(r));
    };
  };
  client.submit({server.url("/busy"), {}}, record(0));
  client.submit({pixflow::test::server_url() + "/photos/tiny.jpg", {}}, record(1));
  REQUIRE(c.wait_for(2));
  INFO(c.get(0).failure_reason() << " / " << c.get(1).failure_reason());
  CHECK(c.get(0).ok());
  CHECK(c.get(0).attempts == 2);
  CHECK(c.get(1).ok());
  CHECK(c.get(1).attempts == 1);
  std::lock_guard lock(mutex);
  CHECK(finished_at.at(1) < finished_at.at(0));  // the good one ran during the wait
  CHECK(finished_at.at(1) < 0.9);
  CHECK(finished_at.at(0) >= 0.95);
  CHECK(client.peak_in_flight() == 1);
}

TEST_CASE("HttpClient: rate_per_host spaces the starts to one host, not to others", "[http][server]") {
  HttpClient client({.max_in_flight = 16, .rate_per_host = 5});
  Collector c;
  std::mutex mutex;
  std::map<std::size_t, double> finished_at;
  const std::string base = pixflow::test::server_url();  // http://127.0.0.1:PORT
  const std::string other = "http://localhost:" + base.substr(base.rfind(':') + 1);
  const auto start = std::chrono::steady_clock::now();
  constexpr std::size_t kSlowed = 10;
  constexpr std::size_t kOther = 2;
  for (std::size_t i = 0; i < kSlowed + kOther; ++i) {
    client.submit({(i < kSlowed ? base : other) + "/photos/tiny.jpg", {}}, [&, i, cb = c.callback(i)](HttpResponse r) {
      {
        std::lock_guard lock(mutex);
        finished_at[i] = since(start);
      }
      cb(std::move(r));
    });
  }
  REQUIRE(c.wait_for(kSlowed + kOther));
  double slowed_last = 0;
  double other_last = 0;
  {
    std::lock_guard lock(mutex);
    for (const auto& [i, t] : finished_at) {
      double& last = i < kSlowed ? slowed_last : other_last;
      last = std::max(last, t);
    }
  }
  for (std::size_t i = 0; i < kSlowed + kOther; ++i) {
    INFO(i << ": " << c.get(i).failure_reason());
    CHECK(c.get(i).ok());
  }
  // 10 starts 0.2 s apart: the last one at least 1.8 s after the first.
  CHECK(slowed_last >= 1.75);
  CHECK(slowed_last < 10);
  // The other host's two starts (0 and 0.2 s) did not queue behind the first host's.
  CHECK(other_last < 1.2);
}

TEST_CASE("HttpClient retries: cancelling a transfer that waits for its retry", "[http][server]") {
  RawServer server(reply("503 Service Unavailable", "Retry-After: 20\r\n"), 0ms);
  const auto start = std::chrono::steady_clock::now();
  SECTION("cancel_all") {
    HttpClient client({.retries = 3});
    Collector c;
    client.submit({server.url("/wait"), {}}, c.callback(0));
    REQUIRE(eventually([&] { return server.requests() == 1 && client.in_flight() == 0; }));
    std::this_thread::sleep_for(50ms);  // well inside the 20 s wait
    client.cancel_all();                // returns once the callback has run
    REQUIRE(c.calls().size() == 1);
    HttpResponse r = c.get(0);
    CHECK(r.error == "cancelled");
    CHECK(r.attempts == 1);
    CHECK(r.status == 503);  // the last answer before the wait
    CHECK(since(start) < 5);
    CHECK(fetch(client, pixflow::test::server_url() + "/photos/tiny.jpg").ok());  // the client still works
    CHECK(server.requests() == 1);
  }
  SECTION("destruction") {
    Collector c;
    {
      HttpClient client({.retries = 3});
      client.submit({server.url("/wait"), {}}, c.callback(0));
      REQUIRE(eventually([&] { return server.requests() == 1 && client.in_flight() == 0; }));
      std::this_thread::sleep_for(50ms);
    }
    REQUIRE(c.calls().size() == 1);
    CHECK(c.get(0).error == "cancelled");
    CHECK(c.get(0).attempts == 1);
    CHECK(since(start) < 5);
  }
}
