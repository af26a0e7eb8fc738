#pragma once
/// @file
/// HttpClient: asynchronous HTTP GETs on the libcurl multi interface, run by one loop thread of its own.
///
/// submit() hands a request over and returns at once; the callback runs later, exactly once, on the loop
/// thread, with the body or the reason the transfer failed. The client caps transfers running at once
/// (`max_in_flight`, and `per_host` per host) in its own queue, so a transfer's timeout counts from when it
/// really starts. This is what the engine's download stage wraps in a `tbb::flow::async_node` (docs/design.md
/// §1 and §7): TBB workers never block on the network.
///
/// Three timers watch each attempt besides `timeout_s`: the header timeout (request sent to the end of the
/// response headers: a server that accepts and never answers), the stall timeout (no byte at all) and the
/// minimum speed (a body trickling a byte a second). Each has its own reason, and all are retried.
///
/// Failed attempts are retried (`retries` times) when the failure may pass: connect errors, timeouts,
/// stalled, slow or truncated bodies, missing responses, 5xx and 429. The wait before retry n is `backoff_s * 2^(n-1)` with equal
/// jitter (a random point in its upper half), capped at `max_retry_wait_s`; a 429 or 503 with a
/// `Retry-After` (seconds or an HTTP date) waits that long instead, also capped: a longer Retry-After
/// still waits only the cap, then retries. A waiting retry holds no transfer slot and does not block the
/// loop thread. `rate_per_host` spaces the starts of requests (retries included) to one host.
///
/// @code
/// using namespace pixflow::tasks;
/// HttpClient http({.max_in_flight = 8, .timeout_s = 30, .retries = 3, .rate_per_host = 5,
///                  .ca_file = "/etc/corp/proxy-ca.pem"});
/// std::promise<HttpResponse> done;
/// http.submit({"https://i.imgur.com/abc.jpg", {"Accept: image/*"}},
///             [&](HttpResponse r) { done.set_value(std::move(r)); });     // runs on the loop thread
/// HttpResponse r = done.get_future().get();
/// if (r.ok()) use(r.body, r.content_type);
/// else std::cerr << r.url << ": " << r.failure_reason()                 // "http 404", "timed out"
///                << " after " << r.attempts << " attempts\n";
/// @endcode
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace pixflow::tasks {

/// Limits and timeouts of an HttpClient, fixed at construction.
struct HttpOptions {
  std::size_t max_in_flight = 32;      ///< transfers running at once; extra requests wait in the client's queue
  std::size_t per_host = 16;           ///< transfers (and connections) running at once to one host:port
  double connect_timeout_s = 10;       ///< connecting, per attempt (0: curl's default)
  double timeout_s = 120;              ///< whole transfer, counted from its start, not queue time (0: none)
  /// Fail when the response headers are not complete this long after the request was sent (each request
  /// of a redirect chain has its own); "no response (header timeout 30 s)". 0: off (timeout_s still applies).
  double header_timeout_s = 30;
  double stall_timeout_s = 30;         ///< fail when a response sends no byte for this long (checked about every second; 0: off)
  /// Fail when the body averages less than this many bytes per second over a window of stall_timeout_s
  /// (windows follow one another from the end of the headers); "too slow (under 1024 B/s for 30 s)".
  /// 0, or stall_timeout_s 0: off. The default passes a 10 kbit/s link.
  double min_speed_bytes_s = 1024;
  std::size_t max_bytes = 64u << 20;   ///< body size cap, checked on Content-Length and while streaming (0: none)
  long max_redirects = 5;              ///< redirects followed before "too many redirects"
  std::string user_agent = "pixflow/0.1";
  int retries = 3;                     ///< extra attempts after the first for a failure that may pass (>= 0)
  double backoff_s = 0.5;              ///< first retry's backoff; doubles per retry, jittered (>= 0)
  double max_retry_wait_s = 30;        ///< cap on any one wait, backoff or Retry-After (>= 0)
  double rate_per_host = 0;            ///< request starts per second to one host:port (retries too); 0: unlimited
  /// PEM bundle of certificate authorities trusted for https instead of the system's (CURLOPT_CAINFO);
  /// "" = the system's. A file curl cannot use fails each https transfer with curl's message.
  std::filesystem::path ca_file{};
  /// true: HTTP/2 offered to https servers (ALPN; CURL_HTTP_VERSION_2TLS) and transfers to one host
  /// multiplexed on its connections (CURLPIPE_MULTIPLEX: libcurl puts as many as it can on one);
  /// false (the default): HTTP/1.1 only, one transfer per connection, per_host connections to a host.
  /// per_host caps transfers (streams) either way. Plain http: HTTP/1.1. On a link where each connection
  /// gets its own share of the bandwidth, multiplexing onto one connection is slower (config.hpp).
  bool http2 = false;
};

/// One GET. `headers` are sent as given, each "Name: value".
struct HttpRequest {
  std::string url;
  std::vector<std::string> headers;
};

/// The outcome of one request: a response (any status) or the reason there is none.
struct HttpResponse {
  std::string url;                     ///< as requested
  std::string effective_url;           ///< after redirects (equals url when none were followed)
  long status = 0;                     ///< HTTP status of the last response; 0 when none arrived
  std::vector<std::uint8_t> body;      ///< the (decoded) body; partial or empty on failure
  std::string content_type;            ///< lower-case, without parameters ("image/jpeg"); "" when absent
  /// Empty when the transfer completed (whatever the status); else "timed out",
  /// "no response (header timeout 30 s)", "stalled (no data for 30 s)",
  /// "too slow (under 1024 B/s for 30 s)", "truncated body", "too large (> 67108864 bytes)", "too many redirects",
  /// "unsupported scheme (file)", "invalid url", "cannot connect: ...", "cancelled", or curl's message.
  /// After retries: the last attempt's (status too).
  std::string error;
  /// Time from the first attempt's start to the end (initial queue time excluded; retry waits included).
  double seconds = 0;
  /// Attempts started: 1 + retries made. 0 when none ever started (invalid url, unsupported scheme,
  /// cancelled while queued).
  int attempts = 1;

  /// error.empty() && 200 <= status < 300.
  [[nodiscard]] bool ok() const;
  /// error if set, else "http <status>" for a non-2xx status, else "".
  [[nodiscard]] std::string failure_reason() const;
};

/// An HTTP client with its own loop thread (curl_multi_poll), safe to use from any thread.
///
/// Callbacks run on the loop thread, never under the client's lock, exactly once per submit(); they may
/// call submit() and cancel_all() again. They should be quick (hand the response over, don't decode on
/// this thread). An exception escaping a callback is reported on stderr and otherwise ignored.
class HttpClient {
 public:
  using Callback = std::function<void(HttpResponse)>;

  /// Starts the loop thread. Throws std::runtime_error when libcurl cannot be set up,
  /// std::invalid_argument when max_in_flight or per_host is 0, or retries, backoff_s, max_retry_wait_s,
  /// rate_per_host, header_timeout_s or min_speed_bytes_s is negative (or not finite).
  explicit HttpClient(HttpOptions options = {});
  /// Cancels queued, running and retry-waiting transfers (each pending callback runs with error
  /// "cancelled", on the loop thread), then joins the loop thread. Must not be called from a callback.
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// Queues a GET; thread-safe, never blocks on the network. A malformed URL completes with "invalid url",
  /// a scheme other than http/https with "unsupported scheme (<scheme>)", neither ever opened.
  void submit(HttpRequest request, Callback on_done);
  /// Completes everything submitted before this call and not yet done (queued, running or waiting for a
  /// retry) with "cancelled"; later submits
  /// work as usual. From another thread it returns once those callbacks have run; from a callback (the
  /// loop thread) it returns at once and they run right after the current callback batch.
  void cancel_all();
  /// Transfers running now (started and not yet completed; a retry waiting for its time is not running).
  [[nodiscard]] std::size_t in_flight() const;
  /// The highest in_flight() seen so far; never above options().max_in_flight.
  [[nodiscard]] std::size_t peak_in_flight() const;
  /// The options given at construction.
  [[nodiscard]] const HttpOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Thread-safe once-per-process curl_global_init (HttpClient's constructor calls it). Throws
/// std::runtime_error when it fails.
void ensure_curl_initialized();

}  // namespace pixflow::tasks
