// HttpClient: one loop thread drives a libcurl multi handle (curl_multi_perform + curl_multi_poll); other
// threads hand requests over through a mutex-protected queue and wake the loop with curl_multi_wakeup.
//
// Everything below "loop-thread state" is touched only by the loop thread. Requests wait in our own
// per-host queues (served round-robin) until a slot is free under both max_in_flight and per_host (and,
// with rate_per_host, until the host's next start time), so curl never queues a transfer internally and
// CURLOPT_TIMEOUT counts from the real start.
//
// A failed attempt that may pass is retried: its transfer gives its slot back and waits in a timer list
// (ordered by due time) until it is due, then goes back into its host queue in submission order. The loop
// never sleeps longer than the time to the next due timer or rate-limited start (curl_multi_poll's timeout).
#include "pixflow/tasks/http.hpp"

#include <curl/curl.h>
#include <curl/header.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <deque>
#include <exception>
#include <iostream>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>

namespace pixflow::tasks {

bool HttpResponse::ok() const { return error.empty() && status >= 200 && status < 300; }

std::string HttpResponse::failure_reason() const {
  if (!error.empty()) return error;
  if (status < 200 || status >= 300) return "http " + std::to_string(status);
  return {};
}

void ensure_curl_initialized() {
  // A function-local static is initialised exactly once, thread-safely (C++11 "magic statics").
  static const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (rc != CURLE_OK) throw std::runtime_error(std::string("curl_global_init failed: ") + curl_easy_strerror(rc));
}

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kCancelled = "cancelled";
constexpr std::size_t kMaxReserve = std::size_t{64} << 20;  // never trust a Content-Length beyond this for reserve()
constexpr double kMaxWaitSeconds = 1e7;  // any computed wait (retry, rate spacing) is clamped to this (~115 days)
constexpr std::size_t kHostSweepMin = 64;  // idle host entries kept before a sweep (rate limiting keeps some)

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

/// A string allocated by libcurl, freed with curl_free.
struct CurlString {
  char* p = nullptr;
  CurlString() = default;
  CurlString(const CurlString&) = delete;
  CurlString& operator=(const CurlString&) = delete;
  ~CurlString() { curl_free(p); }
};

/// Where a request may go: its "host:port" queue key, or why it may not be opened at all.
struct UrlCheck {
  std::string error;
  std::string host_key;
};

/// Parses with curl's URL API (the parser curl itself uses), accepting any scheme so that a foreign one is
/// reported by name rather than as malformed.
UrlCheck check_url(const std::string& url) {
  if (url.find('\0') != std::string::npos) return {"invalid url", {}};
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> u(curl_url(), &curl_url_cleanup);
  if (!u) return {"out of memory", {}};
  if (curl_url_set(u.get(), CURLUPART_URL, url.c_str(), CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
    return {"invalid url", {}};
  CurlString scheme;
  if (curl_url_get(u.get(), CURLUPART_SCHEME, &scheme.p, 0) != CURLUE_OK || scheme.p == nullptr)
    return {"invalid url", {}};
  const std::string s = to_lower(scheme.p);
  if (s != "http" && s != "https") return {"unsupported scheme (" + s + ")", {}};
  CurlString host;
  CurlString port;
  if (curl_url_get(u.get(), CURLUPART_HOST, &host.p, 0) != CURLUE_OK || host.p == nullptr || *host.p == '\0')
    return {"invalid url", {}};
  if (curl_url_get(u.get(), CURLUPART_PORT, &port.p, CURLU_DEFAULT_PORT) != CURLUE_OK || port.p == nullptr)
    return {"invalid url", {}};
  return {{}, to_lower(host.p) + ":" + port.p};
}

/// "image/jpeg" from "Image/JPEG; charset=binary".
std::string media_type(const char* content_type) {
  if (content_type == nullptr) return {};
  std::string_view v(content_type);
  v = v.substr(0, v.find(';'));
  const auto first = v.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = v.find_last_not_of(" \t");
  return to_lower(v.substr(first, last - first + 1));
}

Clock::duration to_duration(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::clamp(seconds, 0.0, kMaxWaitSeconds)));
}

std::string_view trim(std::string_view v) {
  const auto first = v.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = v.find_last_not_of(" \t");
  return v.substr(first, last - first + 1);
}

/// Seconds to wait from a Retry-After value: delta seconds ("120") or an HTTP date (a date in the past
/// gives 0). nullopt when absent or unreadable.
std::optional<double> parse_retry_after(std::string_view value) {
  value = trim(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec == std::errc::result_out_of_range) return kMaxWaitSeconds;
    if (ec != std::errc() || end != value.data() + value.size()) return std::nullopt;
    return std::min(static_cast<double>(n), kMaxWaitSeconds);
  }
  const std::string text(value);
  const std::time_t when = curl_getdate(text.c_str(), nullptr);
  if (when == -1) return std::nullopt;
  return std::clamp(std::difftime(when, std::time(nullptr)), 0.0, kMaxWaitSeconds);
}

/// The last response's Retry-After (after redirects), as seconds to wait.
std::optional<double> retry_after(CURL* e) {
  curl_header* h = nullptr;
  if (curl_easy_header(e, "Retry-After", 0, CURLH_HEADER, -1, &h) != CURLHE_OK || h == nullptr || h->value == nullptr)
    return std::nullopt;
  return parse_retry_after(h->value);
}

/// Failures that may pass on a later attempt: connecting, timeouts and stalls, bodies cut short, resets.
/// (Too large, too many redirects, bad schemes, write/memory errors and the like are final.)
bool transient(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_QUIC_CONNECT_ERROR:
      return true;
    default:
      return false;
  }
}

/// A number as the reasons show it: "30", "0.5", "1048576".
std::string seconds_text(double value) {
  std::array<char, 32> text{};
  if (value == std::floor(value) && std::fabs(value) < 1e15)
    std::snprintf(text.data(), text.size(), "%.0f", value);
  else
    std::snprintf(text.data(), text.size(), "%g", value);
  return text.data();
}

long to_millis(double seconds) {
  if (!(seconds > 0)) return 0;
  const double ms = std::ceil(seconds * 1000.0);
  return ms >= static_cast<double>(std::numeric_limits<long>::max()) ? std::numeric_limits<long>::max()
                                                                      : static_cast<long>(ms);
}

/// One request from submit() to its callback.
struct Transfer {
  std::uint64_t seq = 0;
  HttpRequest request;
  HttpClient::Callback on_done;
  std::string host_key;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::vector<std::uint8_t> body;
  std::size_t max_bytes = 0;
  bool too_large = false;
  bool out_of_memory = false;
  /// Why on_progress or on_prereq aborted the attempt (curl then says CURLE_ABORTED_BY_CALLBACK).
  enum class Abort { none, stalled, no_response, too_slow };
  Abort aborted = Abort::none;
  bool responding = false;              // the response has begun (a header line arrived)
  bool awaiting_headers = false;        // a request was sent and its response headers are not complete
  bool headers_done = false;            // the last response's headers ended (its body, if any, is next)
  Clock::duration stall_after{};        // 0: no stall (and no speed) check
  Clock::duration header_after{};       // 0: no header timeout
  double min_speed = 0;                 // bytes/s averaged over stall_after; 0: off
  curl_off_t last_received = -1;        // bytes received when progress was last seen
  Clock::time_point last_progress{};    // when bytes last arrived (or the attempt started)
  Clock::time_point request_sent{};     // when the current request was about to be sent (on_prereq)
  Clock::time_point window_start{};     // the speed check's current window
  curl_off_t window_bytes = -1;         // bytes received at window_start; -1: no window yet
  bool counted = false;  // holds one of its host's running slots
  int attempts = 0;      // attempts started
  long last_status = 0;  // status of the last completed attempt, for a retry cancelled while it waits
  Clock::time_point first_started{};
  Clock::time_point started{};  // of the current attempt
  std::array<char, CURL_ERROR_SIZE> errbuf{};

  /// Forgets the failed attempt's body and flags before the next one.
  void reset_attempt() {
    body = {};
    too_large = false;
    out_of_memory = false;
    aborted = Abort::none;
    responding = false;
    awaiting_headers = false;
    headers_done = false;
    last_received = -1;
    window_bytes = -1;
    last_progress = Clock::now();
    errbuf[0] = '\0';
  }
};

/// CURLOPT_PREREQFUNCTION: connected (or reusing a connection), the request is about to be sent; runs again
/// for each redirect's request. The header timeout counts from here.
int on_prereq(void* user, char* /*primary_ip*/, char* /*local_ip*/, int /*primary_port*/, int /*local_port*/) {
  auto* t = static_cast<Transfer*>(user);
  t->request_sent = Clock::now();
  t->awaiting_headers = true;
  t->headers_done = false;
  t->window_bytes = -1;
  return CURL_PREREQFUNC_OK;
}

/// CURLOPT_HEADERFUNCTION: the response has begun; header lines count as data for the stall check, and
/// the blank line that ends them stops the header timeout and starts the speed check's first window.
std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  t->responding = true;
  t->last_progress = Clock::now();
  const std::string_view line(data, n);
  if (line == "\r\n" || line == "\n") {
    t->awaiting_headers = false;
    t->headers_done = true;
    t->window_bytes = -1;
  }
  return n;
}

/// CURLOPT_XFERINFOFUNCTION (curl calls it about once a second, and whenever data arrives). Aborts an
/// attempt whose
///   - response headers are not complete header_after after the request was sent ("no response"),
///   - response sent nothing for stall_after, counted from its last byte, header or body ("stalled"),
///   - body averaged less than min_speed bytes/s over a window of stall_after ("too slow"); windows
///     follow one another from the end of the headers, so a trickle fails after one to two windows.
/// Before the request is sent, connect_timeout_s applies; timeout_s bounds everything.
/// (curl's own LOW_SPEED check averages over ~5 s and also runs before the response begins, so a 1 s
/// limit ended as "timed out", and a silent server could not be told from a slow one.)
int on_progress(void* user, curl_off_t /*dltotal*/, curl_off_t dlnow, curl_off_t /*ultotal*/, curl_off_t /*ulnow*/) {
  auto* t = static_cast<Transfer*>(user);
  const auto now = Clock::now();
  if (t->awaiting_headers && t->header_after > Clock::duration::zero() && now - t->request_sent > t->header_after) {
    t->aborted = Transfer::Abort::no_response;
    return 1;  // CURLE_ABORTED_BY_CALLBACK
  }
  if (!t->responding) return 0;
  if (dlnow != t->last_received) {
    t->last_received = dlnow;
    t->last_progress = now;
  } else if (t->stall_after > Clock::duration::zero() && now - t->last_progress > t->stall_after) {
    t->aborted = Transfer::Abort::stalled;
    return 1;
  }
  if (t->headers_done && t->min_speed > 0 && t->stall_after > Clock::duration::zero()) {
    if (t->window_bytes < 0) {
      t->window_start = now;
      t->window_bytes = dlnow;
    } else if (now - t->window_start >= t->stall_after) {
      const double seconds = std::chrono::duration<double>(now - t->window_start).count();
      if (static_cast<double>(dlnow - t->window_bytes) < t->min_speed * seconds) {
        t->aborted = Transfer::Abort::too_slow;
        return 1;
      }
      t->window_start = now;
      t->window_bytes = dlnow;
    }
  }
  return 0;
}

/// CURLOPT_WRITEFUNCTION: append to the body, refusing to grow past max_bytes (returning less than given
/// makes curl abort the transfer with CURLE_WRITE_ERROR).
std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  if (t->max_bytes != 0 && (n > t->max_bytes || t->body.size() > t->max_bytes - n)) {
    t->too_large = true;
    return 0;
  }
  try {
    if (t->body.empty()) {
      curl_off_t length = -1;
      if (curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) == CURLE_OK && length > 0) {
        std::size_t cap = t->max_bytes != 0 ? std::min(t->max_bytes, kMaxReserve) : kMaxReserve;
        t->body.reserve(std::min(static_cast<std::size_t>(length), cap));
      }
    }
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(data);
    t->body.insert(t->body.end(), bytes, bytes + n);
  } catch (const std::bad_alloc&) {
    t->out_of_memory = true;
    return 0;
  }
  return n;
}

}  // namespace

struct HttpClient::Impl {
  explicit Impl(HttpOptions o)
      : options(std::move(o)),
        rate_interval(options.rate_per_host > 0 ? to_duration(1.0 / options.rate_per_host) : Clock::duration::zero()),
        rng(std::random_device{}()) {}
  ~Impl() {
    if (multi != nullptr) curl_multi_cleanup(multi);
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  const HttpOptions options;
  const Clock::duration rate_interval;  // minimum spacing of starts to one host; zero: unlimited
  CURLM* multi = nullptr;
  std::thread loop;
  std::atomic<std::size_t> in_flight{0};
  std::atomic<std::size_t> peak{0};

  // ---- shared state, guarded by mutex ----
  std::mutex mutex;
  std::condition_variable cancel_done_cv;
  std::vector<std::unique_ptr<Transfer>> submitted;  // in seq order
  std::uint64_t next_seq = 0;
  std::uint64_t cancel_below = 0;     // cancel_all() asked: cancel every transfer with seq < this
  std::uint64_t cancelled_below = 0;  // the loop has done so (callbacks run) up to here
  bool stopping = false;              // the destructor asked the loop to finish
  bool closed = false;                // the loop has finished; nothing more will run there

  // ---- loop-thread state ----
  struct Host {
    std::deque<std::unique_ptr<Transfer>> waiting;  // in seq order (retries go back in their place)
    std::size_t running = 0;
    bool in_ring = false;
    Clock::time_point next_start{};  // rate limit: no start before this
  };
  std::unordered_map<std::string, Host> hosts;
  std::deque<std::string> ring;  // hosts with waiting transfers, served round-robin
  std::unordered_map<CURL*, std::unique_ptr<Transfer>> running;
  std::multimap<Clock::time_point, std::unique_ptr<Transfer>> retrying;  // waiting for their retry time
  Clock::time_point rate_wake = Clock::time_point::max();  // earliest start a rate limit held back
  std::size_t host_sweep_at = kHostSweepMin;
  std::mt19937_64 rng;
  std::vector<CURL*> pool;  // idle easy handles, reset before reuse
  std::vector<std::pair<Callback, HttpResponse>> done;  // completed, callbacks not yet run
  std::uint64_t cancel_applied = 0;

  static thread_local const Impl* current_loop;

  void run();
  void admit(std::unique_ptr<Transfer> t);
  void enqueue(std::unique_ptr<Transfer> t);
  void fire_timers();
  [[nodiscard]] int poll_timeout_ms() const;
  [[nodiscard]] bool idle(const Host& h, Clock::time_point now) const {
    return h.running == 0 && h.waiting.empty() && !h.in_ring && h.next_start <= now;
  }
  void sweep_hosts();
  std::optional<Clock::duration> retry_wait(CURLcode code, const Transfer& t, long status);
  void start_ready();
  bool start(std::unique_ptr<Transfer>& t);
  bool configure(CURL* e, Transfer& t);
  bool collect_finished();
  void cancel_before(std::uint64_t limit);
  void release(Transfer& t);
  void finish(Transfer& t, std::string error);
  std::string describe(CURLcode code, const Transfer& t, long status) const;
  void run_callbacks();
  void shutdown();
  void update_in_flight() {
    in_flight.store(running.size());
    if (running.size() > peak.load()) peak.store(running.size());
  }
};

thread_local const HttpClient::Impl* HttpClient::Impl::current_loop = nullptr;

void HttpClient::Impl::run() {
  current_loop = this;
  std::vector<std::unique_ptr<Transfer>> incoming;
  for (;;) {
    bool stop = false;
    std::uint64_t cancel_to = 0;
    {
      std::lock_guard lock(mutex);
      incoming.swap(submitted);
      stop = stopping;
      cancel_to = cancel_below;
    }
    for (auto& t : incoming) admit(std::move(t));
    incoming.clear();
    if (stop) break;

    const bool cancelling = cancel_to > cancel_applied;
    if (cancelling) cancel_before(cancel_to);
    fire_timers();
    start_ready();

    int still_running = 0;
    curl_multi_perform(multi, &still_running);
    const bool freed = collect_finished();  // a slot came free (a completion or a retry now waiting)

    const bool completed = freed || !done.empty();
    run_callbacks();
    if (cancelling) {
      cancel_applied = cancel_to;
      {
        std::lock_guard lock(mutex);
        cancelled_below = std::max(cancelled_below, cancel_to);
      }
      cancel_done_cv.notify_all();
    }
    // A completion may have freed a slot, and its callback may have submitted more: go round at once.
    if (completed) continue;
    curl_multi_poll(multi, nullptr, 0, poll_timeout_ms(), nullptr);
  }
  shutdown();
}

int HttpClient::Impl::poll_timeout_ms() const {
  const Clock::time_point now = Clock::now();
  Clock::time_point wake = now + std::chrono::seconds(1);
  if (!retrying.empty()) wake = std::min(wake, retrying.begin()->first);
  wake = std::min(wake, rate_wake);
  if (wake <= now) return 0;
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wake - now).count());
}

void HttpClient::Impl::fire_timers() {
  const Clock::time_point now = Clock::now();
  while (!retrying.empty() && retrying.begin()->first <= now) {
    std::unique_ptr<Transfer> t = std::move(retrying.begin()->second);
    retrying.erase(retrying.begin());
    enqueue(std::move(t));
  }
}

void HttpClient::Impl::sweep_hosts() {
  const Clock::time_point now = Clock::now();
  for (auto it = hosts.begin(); it != hosts.end();) {
    if (idle(it->second, now))
      it = hosts.erase(it);
    else
      ++it;
  }
  host_sweep_at = std::max(kHostSweepMin, 2 * hosts.size());
}

std::optional<Clock::duration> HttpClient::Impl::retry_wait(CURLcode code, const Transfer& t, long status) {
  if (t.attempts > options.retries) return std::nullopt;
  const bool retry_status = (status >= 500 && status < 600) || status == 429;  // the last response's (0: none)
  if (!transient(code) && !(code == CURLE_OK && retry_status)) return std::nullopt;
  const double cap = options.max_retry_wait_s;
  if (status == 429 || status == 503) {
    // Retry-After is honoured up to the cap; beyond it we still wait only the cap, then try again.
    if (const auto after = retry_after(t.easy)) return to_duration(std::min(*after, cap));
  }
  // Exponential backoff with equal jitter: a random point in the upper half of backoff_s * 2^(n-1).
  const int exponent = std::min(t.attempts - 1, 1000);
  const double base = std::min(cap, options.backoff_s * std::pow(2.0, exponent));
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  return to_duration(base * jitter(rng));
}

void HttpClient::Impl::admit(std::unique_ptr<Transfer> t) {
  UrlCheck check = check_url(t->request.url);
  if (!check.error.empty()) {
    finish(*t, std::move(check.error));
    return;
  }
  t->host_key = std::move(check.host_key);
  enqueue(std::move(t));
}

void HttpClient::Impl::enqueue(std::unique_ptr<Transfer> t) {
  Host& h = hosts[t->host_key];
  if (!h.in_ring) {
    h.in_ring = true;
    ring.push_back(t->host_key);
  }
  if (h.waiting.empty() || h.waiting.back()->seq < t->seq) {
    h.waiting.push_back(std::move(t));
    return;
  }
  // A retry coming back: to its place in submission order (cancel_before relies on that order).
  const auto pos = std::upper_bound(h.waiting.begin(), h.waiting.end(), t->seq,
                                    [](std::uint64_t seq, const std::unique_ptr<Transfer>& w) { return seq < w->seq; });
  h.waiting.insert(pos, std::move(t));
}

void HttpClient::Impl::start_ready() {
  const Clock::time_point now = Clock::now();
  rate_wake = Clock::time_point::max();
  std::size_t blocked = 0;  // consecutive hosts seen at their per_host cap or held back by their rate
  while (running.size() < options.max_in_flight && !ring.empty()) {
    std::string key = std::move(ring.front());
    ring.pop_front();
    auto it = hosts.find(key);
    Host& h = it->second;
    if (h.waiting.empty()) {
      h.in_ring = false;
      if (idle(h, now)) hosts.erase(it);
      continue;
    }
    const bool at_cap = h.running >= options.per_host;
    if (at_cap || now < h.next_start) {
      if (!at_cap) rate_wake = std::min(rate_wake, h.next_start);  // a completion wakes a host at its cap
      ring.push_back(std::move(key));
      if (++blocked >= ring.size()) break;  // a whole round without a free host
      continue;
    }
    blocked = 0;
    if (rate_interval > Clock::duration::zero()) h.next_start = std::max(now, h.next_start) + rate_interval;
    std::unique_ptr<Transfer> t = std::move(h.waiting.front());
    h.waiting.pop_front();
    ++h.running;
    t->counted = true;
    if (h.waiting.empty())
      h.in_ring = false;
    else
      ring.push_back(std::move(key));
    if (!start(t)) release(*t);  // finished with an error already
  }
  if (hosts.size() >= host_sweep_at) sweep_hosts();
  update_in_flight();
}

bool HttpClient::Impl::start(std::unique_ptr<Transfer>& t) {
  CURL* e = nullptr;
  if (!pool.empty()) {
    e = pool.back();  // reset by release()
    pool.pop_back();
  } else {
    e = curl_easy_init();
  }
  if (e == nullptr) {
    finish(*t, "cannot create a curl handle");
    return false;
  }
  t->easy = e;
  t->started = Clock::now();
  if (t->attempts++ == 0) t->first_started = t->started;
  if (!configure(e, *t)) return false;
  const CURLMcode mc = curl_multi_add_handle(multi, e);
  if (mc != CURLM_OK) {
    finish(*t, curl_multi_strerror(mc));
    return false;
  }
  running.emplace(e, std::move(t));
  return true;
}

bool HttpClient::Impl::configure(CURL* e, Transfer& t) {
  for (const std::string& header : t.request.headers) {
    curl_slist* grown = curl_slist_append(t.headers, header.c_str());
    if (grown == nullptr) {
      finish(t, "out of memory");
      return false;
    }
    t.headers = grown;
  }
  CURLcode rc = CURLE_OK;
  auto set = [&rc](CURLcode r) {
    if (rc == CURLE_OK) rc = r;
  };
  set(curl_easy_setopt(e, CURLOPT_URL, t.request.url.c_str()));
  set(curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L));
  set(curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https"));
  set(curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"));
  set(curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L));
  set(curl_easy_setopt(e, CURLOPT_MAXREDIRS, options.max_redirects));
  set(curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""));
  set(curl_easy_setopt(e, CURLOPT_FAILONERROR, 0L));
  set(curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L));
  set(curl_easy_setopt(e, CURLOPT_USERAGENT, options.user_agent.c_str()));
  set(curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, to_millis(options.connect_timeout_s)));
  set(curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, to_millis(options.timeout_s)));
  set(curl_easy_setopt(e, CURLOPT_HTTP_VERSION, options.http2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1));
  if (!options.ca_file.empty()) set(curl_easy_setopt(e, CURLOPT_CAINFO, options.ca_file.c_str()));
  if (options.stall_timeout_s > 0 || options.header_timeout_s > 0) {
    t.stall_after = options.stall_timeout_s > 0 ? to_duration(options.stall_timeout_s) : Clock::duration::zero();
    t.header_after = options.header_timeout_s > 0 ? to_duration(options.header_timeout_s) : Clock::duration::zero();
    t.min_speed = options.min_speed_bytes_s;
    t.last_progress = Clock::now();
    set(curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L));
    set(curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, &on_progress));
    set(curl_easy_setopt(e, CURLOPT_XFERINFODATA, static_cast<void*>(&t)));
    set(curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, &on_prereq));
    set(curl_easy_setopt(e, CURLOPT_PREREQDATA, static_cast<void*>(&t)));
    set(curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &on_header));
    set(curl_easy_setopt(e, CURLOPT_HEADERDATA, static_cast<void*>(&t)));
  }
  if (options.max_bytes != 0 &&
      options.max_bytes <= static_cast<std::size_t>(std::numeric_limits<curl_off_t>::max()))
    set(curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(options.max_bytes)));
  if (t.headers != nullptr) set(curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.headers));
  set(curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_body));
  set(curl_easy_setopt(e, CURLOPT_WRITEDATA, static_cast<void*>(&t)));
  set(curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.errbuf.data()));
  if (rc != CURLE_OK) {
    finish(t, std::string("curl setup failed: ") + curl_easy_strerror(rc));
    return false;
  }
  return true;
}

bool HttpClient::Impl::collect_finished() {
  bool any = false;
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL* e = msg->easy_handle;
    CURLcode code = msg->data.result;  // read before remove_handle invalidates msg
    auto it = running.find(e);
    if (it == running.end()) continue;
    std::unique_ptr<Transfer> t = std::move(it->second);
    running.erase(it);
    curl_multi_remove_handle(multi, e);
    any = true;
    // Our own timers (stall, header timeout, speed): retried like curl's timeouts.
    if (code == CURLE_ABORTED_BY_CALLBACK && t->aborted != Transfer::Abort::none) code = CURLE_OPERATION_TIMEDOUT;

    HttpResponse r;
    r.url = t->request.url;
    char* effective = nullptr;
    if (curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &effective) == CURLE_OK && effective != nullptr)
      r.effective_url = effective;
    else
      r.effective_url = r.url;
    long status = 0;
    if (curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK) r.status = status;
    char* type = nullptr;
    if (curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &type) == CURLE_OK) r.content_type = media_type(type);
    r.error = describe(code, *t, r.status);
    if (const auto wait = retry_wait(code, *t, r.status)) {
      // Give the slot back and wait off the loop's critical path; the failed attempt's body is dropped.
      t->last_status = r.status;
      release(*t);
      t->reset_attempt();
      retrying.emplace(Clock::now() + *wait, std::move(t));
      continue;
    }
    r.body = std::move(t->body);
    r.attempts = t->attempts;
    r.seconds = std::chrono::duration<double>(Clock::now() - t->first_started).count();
    done.emplace_back(std::move(t->on_done), std::move(r));
    release(*t);
  }
  update_in_flight();
  return any;
}

std::string HttpClient::Impl::describe(CURLcode code, const Transfer& t, long status) const {
  const std::string curl_message = t.errbuf[0] != '\0' ? std::string(t.errbuf.data()) : curl_easy_strerror(code);
  const std::string too_large = "too large (> " + std::to_string(options.max_bytes) + " bytes)";
  const std::string stalled_reason = "stalled (no data for " + seconds_text(options.stall_timeout_s) + " s)";
  switch (code) {
    case CURLE_OK:
      return {};
    case CURLE_WRITE_ERROR:
      if (t.too_large) return too_large;
      if (t.out_of_memory) return "out of memory";
      return curl_message;
    case CURLE_FILESIZE_EXCEEDED:
      return too_large;
    case CURLE_OPERATION_TIMEDOUT: {
      switch (t.aborted) {
        case Transfer::Abort::stalled: return stalled_reason;
        case Transfer::Abort::no_response: return "no response (header timeout " + seconds_text(options.header_timeout_s) + " s)";
        case Transfer::Abort::too_slow:
          return "too slow (under " + seconds_text(options.min_speed_bytes_s) + " B/s for " +
                 seconds_text(options.stall_timeout_s) + " s)";
        case Transfer::Abort::none: break;
      }
      curl_off_t connect_us = 0;
      curl_easy_getinfo(t.easy, CURLINFO_CONNECT_TIME_T, &connect_us);
      if (status == 0 && connect_us == 0) return "cannot connect: timed out";
      return "timed out";
    }
    case CURLE_TOO_MANY_REDIRECTS:
      return "too many redirects";
    case CURLE_PARTIAL_FILE:  // the connection closed before Content-Length (or the last chunk) arrived
      return "truncated body";
    case CURLE_RECV_ERROR:    // reset while receiving: after the status line, the body is cut short
      if (status != 0) return "truncated body";
      return curl_message;
    case CURLE_UNSUPPORTED_PROTOCOL: {
      // A redirect to a scheme outside CURLOPT_REDIR_PROTOCOLS_STR; curl names it in quotes.
      const auto open = curl_message.find('"');
      const auto close = open == std::string::npos ? open : curl_message.find('"', open + 1);
      if (close != std::string::npos)
        return "unsupported scheme (" + to_lower(curl_message.substr(open + 1, close - open - 1)) + ")";
      return "unsupported scheme";
    }
    case CURLE_COULDNT_RESOLVE_HOST:
      return "cannot connect: cannot resolve host";
    case CURLE_COULDNT_CONNECT: {
      long os_errno = 0;
      curl_easy_getinfo(t.easy, CURLINFO_OS_ERRNO, &os_errno);
      if (os_errno != 0)
        return "cannot connect: " + to_lower(std::error_code(static_cast<int>(os_errno), std::generic_category()).message());
      return "cannot connect: " + curl_message;
    }
    default:
      return curl_message;
  }
}

void HttpClient::Impl::cancel_before(std::uint64_t limit) {
  std::vector<CURL*> victims;
  for (const auto& [e, t] : running)
    if (t->seq < limit) victims.push_back(e);
  for (CURL* e : victims) {
    auto it = running.find(e);
    std::unique_ptr<Transfer> t = std::move(it->second);
    running.erase(it);
    curl_multi_remove_handle(multi, e);
    finish(*t, std::string(kCancelled));
    release(*t);
  }
  for (auto& [key, h] : hosts)
    while (!h.waiting.empty() && h.waiting.front()->seq < limit) {  // each host queue is in seq order
      finish(*h.waiting.front(), std::string(kCancelled));
      h.waiting.pop_front();
    }
  for (auto it = retrying.begin(); it != retrying.end();) {
    if (it->second->seq < limit) {
      finish(*it->second, std::string(kCancelled));
      it = retrying.erase(it);
    } else {
      ++it;
    }
  }
  update_in_flight();  // emptied hosts leave the ring (and the map) in start_ready
}

void HttpClient::Impl::release(Transfer& t) {
  if (t.headers != nullptr) {
    curl_slist_free_all(t.headers);
    t.headers = nullptr;
  }
  if (t.easy != nullptr) {
    // Back to defaults at once (no pointers into t are left behind); live connections stay cached.
    curl_easy_reset(t.easy);
    pool.push_back(t.easy);
    t.easy = nullptr;
  }
  if (t.counted) {
    t.counted = false;
    auto it = hosts.find(t.host_key);
    if (it != hosts.end()) {
      Host& h = it->second;
      --h.running;
      if (idle(h, Clock::now())) hosts.erase(it);
    }
  }
}

void HttpClient::Impl::finish(Transfer& t, std::string error) {
  HttpResponse r;
  r.url = t.request.url;
  r.effective_url = t.request.url;
  r.status = t.last_status;
  r.error = std::move(error);
  r.body = std::move(t.body);
  r.attempts = t.attempts;
  if (t.attempts > 0) r.seconds = std::chrono::duration<double>(Clock::now() - t.first_started).count();
  done.emplace_back(std::move(t.on_done), std::move(r));
}

void HttpClient::Impl::run_callbacks() {
  std::vector<std::pair<Callback, HttpResponse>> batch;
  batch.swap(done);
  for (auto& [callback, response] : batch) {
    if (!callback) continue;
    std::string url = response.url;  // for the message below; the response itself is moved away
    try {
      callback(std::move(response));
    } catch (const std::exception& e) {
      std::cerr << "pixflow: http callback for " << url << " threw: " << e.what() << '\n';
    } catch (...) {
      std::cerr << "pixflow: http callback for " << url << " threw\n";
    }
  }
}

void HttpClient::Impl::shutdown() {
  cancel_before(std::numeric_limits<std::uint64_t>::max());
  run_callbacks();
  // Callbacks may have submitted more; those are cancelled too, until nothing new arrives.
  std::vector<std::unique_ptr<Transfer>> incoming;
  for (;;) {
    {
      std::lock_guard lock(mutex);
      incoming.swap(submitted);
      if (incoming.empty()) {
        closed = true;
        cancelled_below = std::numeric_limits<std::uint64_t>::max();
        break;
      }
    }
    for (auto& t : incoming) finish(*t, std::string(kCancelled));
    incoming.clear();
    run_callbacks();
  }
  cancel_done_cv.notify_all();
  for (CURL* e : pool) curl_easy_cleanup(e);
  pool.clear();
  hosts.clear();
  ring.clear();
  retrying.clear();
}

HttpClient::HttpClient(HttpOptions options) {
  if (options.max_in_flight == 0) throw std::invalid_argument("HttpOptions::max_in_flight must be at least 1");
  if (options.per_host == 0) throw std::invalid_argument("HttpOptions::per_host must be at least 1");
  if (options.retries < 0) throw std::invalid_argument("HttpOptions::retries must be >= 0");
  const auto check_seconds = [](double v, const char* name) {
    if (!std::isfinite(v) || v < 0) throw std::invalid_argument(std::string("HttpOptions::") + name + " must be a finite number >= 0");
  };
  check_seconds(options.backoff_s, "backoff_s");
  check_seconds(options.max_retry_wait_s, "max_retry_wait_s");
  check_seconds(options.rate_per_host, "rate_per_host");
  check_seconds(options.header_timeout_s, "header_timeout_s");
  check_seconds(options.min_speed_bytes_s, "min_speed_bytes_s");
  ensure_curl_initialized();
  impl_ = std::make_unique<Impl>(std::move(options));
  impl_->multi = curl_multi_init();
  if (impl_->multi == nullptr) throw std::runtime_error("curl_multi_init failed");
  const long per_host = impl_->options.per_host > static_cast<std::size_t>(std::numeric_limits<long>::max())
                            ? std::numeric_limits<long>::max()
                            : static_cast<long>(impl_->options.per_host);
  curl_multi_setopt(impl_->multi, CURLMOPT_MAX_HOST_CONNECTIONS, per_host);
  // HTTP/2 streams share a host's connections; without it each connection carries one transfer at a time.
  curl_multi_setopt(impl_->multi, CURLMOPT_PIPELINING, impl_->options.http2 ? CURLPIPE_MULTIPLEX : CURLPIPE_NOTHING);
  impl_->loop = std::thread([impl = impl_.get()] { impl->run(); });
}

HttpClient::~HttpClient() {
  if (!impl_ || !impl_->loop.joinable()) return;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  curl_multi_wakeup(impl_->multi);
  impl_->loop.join();
}

void HttpClient::submit(HttpRequest request, Callback on_done) {
  auto t = std::make_unique<Transfer>();
  t->request = std::move(request);
  t->on_done = std::move(on_done);
  t->max_bytes = impl_->options.max_bytes;
  bool wake = false;
  {
    std::lock_guard lock(impl_->mutex);
    if (!impl_->closed) {
      t->seq = impl_->next_seq++;
      wake = impl_->submitted.empty();  // otherwise a wakeup for the queue is already on its way
      impl_->submitted.push_back(std::move(t));
    }
  }
  if (t) {
    // Only reachable while the client is being destroyed: there is no loop thread left to run it.
    HttpResponse r;
    r.url = t->request.url;
    r.effective_url = t->request.url;
    r.error = std::string(kCancelled);
    r.attempts = 0;
    if (t->on_done) t->on_done(std::move(r));
    return;
  }
  if (wake) curl_multi_wakeup(impl_->multi);
}

void HttpClient::cancel_all() {
  std::uint64_t target = 0;
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->closed) return;
    target = impl_->next_seq;
    impl_->cancel_below = std::max(impl_->cancel_below, target);
  }
  curl_multi_wakeup(impl_->multi);
  if (Impl::current_loop == impl_.get()) return;  // from a callback: the loop does it right after
  std::unique_lock lock(impl_->mutex);
  impl_->cancel_done_cv.wait(lock, [&] { return impl_->cancelled_below >= target || impl_->closed; });
}

std::size_t HttpClient::in_flight() const { return impl_->in_flight.load(); }

std::size_t HttpClient::peak_in_flight() const { return impl_->peak.load(); }

const HttpOptions& HttpClient::options() const { return impl_->options; }

}  // namespace pixflow::tasks
