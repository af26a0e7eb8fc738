#pragma once
/// @file
/// The JSON config: pixflow's tuning surface (threads, back-pressure, each node's concurrency, download
/// limits, thumbnail sizes and encoding). Every key is optional; a document is merged onto defaults.
///
/// Shape (every value shown is the default):
/// @code{.json}
/// {"threads": 0, "max_in_flight": 64, "timeout_s": 0, "durability": "at-end",
///  "nodes": {"fetch":     {"concurrency": 2},
///            "download":  {"concurrency": 32, "per_host": 32, "connect_timeout_s": 10, "timeout_s": 120,
///                          "header_timeout_s": 30, "stall_timeout_s": 30, "min_speed_bytes_s": 1024,
///                          "max_bytes": 67108864, "max_redirects": 5,
///                          "retries": 3, "backoff_s": 0.5, "max_retry_wait_s": 30, "rate_per_host": 0,
///                          "ca_file": "", "http2": "off"},
///            "decode":    {"concurrency": "unlimited", "max_memory_mb": 512},
///            "thumbnail": {"concurrency": "unlimited", "sizes": ["128x128"], "format": "same",
///                          "mode": "fit", "keep_metadata": false,
///                          "jpeg_quality": 85, "webp_quality": 80, "png_compression": 3,
///                          "animated": "first-frame", "max_frames": 1000, "video": "poster"},
///            "write":     {"concurrency": 4}}}
/// @endcode
///
/// @code
/// using namespace pixflow::tasks;
/// try {
///   PipelineConfig config = load_config("pixflow.json");          // or parse_config(json)
///   config.thumbnail.sizes.push_back({256, 256});
///   std::cout << to_json(config).dump(2);                          // --dump-config
/// } catch (const ConfigError& e) {
///   std::cerr << e.what() << '\n';   // "pixflow.json: /nodes/download/concurency: unknown key"
/// }
/// @endcode
#include <cstddef>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "pixflow/engine/concurrency.hpp"
#include "pixflow/tasks/image_types.hpp"
#include "pixflow/tasks/write.hpp"

namespace pixflow::tasks {

struct JsonError;  // json.hpp

/// `/nodes/download/...`: the HTTP transfers (gallery images and URL-list entries).
struct DownloadConfig {
  pixflow::Concurrency concurrency{32};  ///< transfers in flight at once (not threads)
  /// Connections to one host at once, >= 1. A gallery's images come from one host, and each request
  /// waits a round trip on its connection: at 80 ms RTT, 16 connections took 4.6 s for 300 photos
  /// and 32 took 3.3 s (bench/RESULTS.md), so the default lets every transfer have its own.
  std::size_t per_host = 32;
  double connect_timeout_s = 10;         ///< TCP+TLS connect limit, > 0
  double timeout_s = 120;                ///< whole transfer limit (from start, not from queueing), > 0
  /// Request sent to response headers complete, per attempt (and per redirect), > 0: a server that
  /// accepts and never answers fails "no response (header timeout 30 s)" instead of waiting timeout_s.
  double header_timeout_s = 30;
  double stall_timeout_s = 30;           ///< abort a body that makes no progress for this long, > 0
  /// Abort a body averaging under this many bytes/s over a window of stall_timeout_s, >= 0 (0: off):
  /// "too slow (under 1024 B/s for 30 s)". 1 KiB/s passes any real link and fails a byte-a-second trickle.
  std::size_t min_speed_bytes_s = 1024;
  std::size_t max_bytes = 64u << 20;     ///< body size cap, enforced while receiving, >= 1
  long max_redirects = 5;                ///< redirects followed, 0..100 (0: none)
  int retries = 3;                       ///< extra attempts after a failure that may pass (connect, timeout,
                                         ///< stall, truncated body, 5xx, 429), 0..100 (0: none)
  double backoff_s = 0.5;                ///< first retry's backoff, doubled per retry, jittered, > 0
  double max_retry_wait_s = 30;          ///< cap on any one wait (backoff or Retry-After), > 0
  double rate_per_host = 0;              ///< request starts per second to one host, >= 0 (0: unlimited)
  /// `ca_file`: a PEM bundle of the certificate authorities to trust for https (a corporate proxy's, a
  /// private CA), instead of the system's; "" = the system's. When set, a readable regular file (checked
  /// when the config is read).
  std::filesystem::path ca_file{};
  /// `http2`: "auto" (true): HTTP/2 offered to https servers (ALPN), transfers to one host multiplexed on
  /// its connections; "off" (false, the default): HTTP/1.1 only, one transfer per connection. Plain http
  /// is HTTP/1.1. libcurl multiplexes every transfer to a host onto one connection when it can: with 80 ms
  /// round trips and 8 MB/s per connection, 300 photos took 15.4 s over HTTP/2 against 6.6 s over 32
  /// HTTP/1.1 connections; unthrottled, the two were even (bench/RESULTS.md, "https" and "lan_https").
  bool http2 = false;
  friend bool operator==(const DownloadConfig&, const DownloadConfig&) = default;
};

/// `/nodes/thumbnail/animated`: what an animated GIF or WebP becomes.
enum class AnimatedMode {
  first_frame,  ///< "first-frame": a still thumbnail of the first frame (decode_image)
  animate,      ///< "animate": an animated thumbnail (animation.hpp), WebP, or GIF for a GIF with format `same`
};

/// `/nodes/thumbnail/video`: what a video (MP4/MOV, WebM; Imgur's mp4 and gifv links) becomes.
enum class VideoMode {
  poster,  ///< "poster": downloaded like any item, a still thumbnail of a frame near the start (video.hpp)
  skip,    ///< "skip": reported as skipped, "not an image (video/mp4)", never downloaded
};

/// "first-frame", "animate" / "poster", "skip".
std::string_view name_of(AnimatedMode mode);
std::string_view name_of(VideoMode mode);

/// `/nodes/thumbnail/...`: resize and encode (one decode makes every size).
struct ThumbnailConfig {
  pixflow::Concurrency concurrency = pixflow::Concurrency::unlimited();
  std::vector<Size> sizes = std::vector<Size>(1, Size{128, 128});  ///< boxes, non-empty, no duplicates; written "WxH"
  ImageFormat format = ImageFormat::same;  ///< same, jpeg, png or webp
  ThumbnailMode mode = ThumbnailMode::fit; ///< "fit" inside the box, "fill" it exactly (centre crop), "fill-attention" (crop where the eye goes)
  /// Thumbnails carry the sRGB ICC profile their pixels are in (EncodeOptions::embed_srgb_profile);
  /// false: no metadata at all (no EXIF, no profile).
  bool keep_metadata = false;
  int jpeg_quality = 85;                 ///< 1..100
  int webp_quality = 80;                 ///< 1..100
  int png_compression = 3;               ///< 0..9
  AnimatedMode animated = AnimatedMode::first_frame;  ///< "first-frame" or "animate"
  /// Frames an animation may have, 1..100000; a file with more is refused ("too many frames (N > cap)").
  /// Its memory is bounded by /nodes/decode/max_memory_mb as well (frames x width x height x 4).
  std::size_t max_frames = 1000;
  VideoMode video = VideoMode::poster;   ///< "poster" or "skip"
  friend bool operator==(const ThumbnailConfig&, const ThumbnailConfig&) = default;
};

/// The whole tuning surface of one pipeline run.
struct PipelineConfig {
  std::size_t threads = 0;                             ///< `/threads`: worker threads; 0 = all cores
  std::size_t max_in_flight = 64;                      ///< `/max_in_flight`: items alive in the graph (back-pressure), 1..1000000
  double timeout_s = 0;                                ///< `/timeout_s`: whole run; 0 = none
  pixflow::Concurrency fetch_concurrency{2};           ///< `/nodes/fetch/concurrency`: listing pages in flight
  DownloadConfig download;                             ///< `/nodes/download/...`
  pixflow::Concurrency decode_concurrency = pixflow::Concurrency::unlimited();  ///< `/nodes/decode/concurrency`
  /// `/nodes/decode/max_memory_mb`: what one decode may allocate (decode.hpp's DecodeLimits), 16..65536;
  /// a larger image is refused as "image too large (WxH)" before any pixel is decoded.
  std::size_t decode_max_memory_mb = 512;
  ThumbnailConfig thumbnail;                           ///< `/nodes/thumbnail/...`
  pixflow::Concurrency write_concurrency{4};           ///< `/nodes/write/concurrency`
  /// `/durability`: "per-item" | "at-end" | "none" (write.hpp's Durability). "at-end" by default: a
  /// finished run's outputs are on disk (one syncfs at its end) as with "per-item", and a kill -9 leaves
  /// no partial file in any mode, but it costs one sync instead of two fsyncs per file.
  Durability durability = Durability::at_end;
  friend bool operator==(const PipelineConfig&, const PipelineConfig&) = default;
};

/// Upper bounds the parser enforces (sanity limits, not tuning advice).
inline constexpr std::size_t kMaxThreads = 4096;
inline constexpr std::size_t kMaxConcurrency = 1'000'000;     ///< also the bound of per_host
inline constexpr std::size_t kMaxInFlight = 1'000'000;
inline constexpr double kMaxSeconds = 10'000'000;               ///< any *_s value
inline constexpr std::size_t kMaxBytes = std::size_t{1} << 40;  ///< 1 TiB; also the bound of min_speed_bytes_s
inline constexpr long kMaxRedirects = 100;
inline constexpr int kMaxRetries = 100;
inline constexpr double kMaxRatePerHost = 1'000'000;           ///< requests per second
inline constexpr int kMaxThumbnailSide = 65535;
inline constexpr std::size_t kMaxFrames = 100'000;  ///< bound of thumbnail.max_frames

/// A config error. `path()` is the JSON pointer at fault ("/nodes/download/concurency"; "" for the
/// root or a file-level problem), `message()` says what is wrong, `file()` names the file ("" when
/// parsing a document). what() is "[<file>: ]<path>: <message>", e.g.
/// "/nodes/download/concurency: unknown key" or
/// "/threads: expected an integer >= 0, got \"four\"". A root error shows the path as "(root)"; a
/// file-level error (unreadable file, JSON syntax error) has no path part:
/// "pixflow.json: line 3, column 14: syntax error ...".
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string path, std::string message);
  /// The same error, located in `file`.
  ConfigError(std::filesystem::path file, std::string path, std::string message);

  /// The JSON pointer at fault ("" for the root or when the file itself is at fault).
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  /// What is wrong, without the path ("unknown key").
  [[nodiscard]] const std::string& message() const noexcept { return message_; }
  /// The config file, empty when parsing a document.
  [[nodiscard]] const std::filesystem::path& file() const noexcept { return file_; }

 private:
  std::string path_;
  std::string message_;
  std::filesystem::path file_;
};

/// Reads `document` onto `defaults` (a top-level `/redis` object is left to parse_queue_config in
/// pixflow/queue/config.hpp): keys present override, absent keys keep the default (a `sizes`
/// array replaces the whole list). Unknown keys at any level, wrong types (a boolean or a float where
/// an integer is expected, ...), out-of-range values, malformed sizes and unknown formats throw
/// ConfigError naming the JSON path. Keys are checked in the document's key order (nlohmann::json
/// sorts them), so the error reported is deterministic: the first one in that order.
PipelineConfig parse_config(const nlohmann::json& document, PipelineConfig defaults = {});

/// Reads and parses a JSON file onto `defaults`, with read_json_file (json.hpp): at most 1 MiB is read
/// (from a file, a pipe or a device), nesting is capped at 64 levels, and the file must hold exactly one
/// JSON value. Throws ConfigError with the file named: when it cannot be read ("cannot read: No such
/// file or directory"), is too large ("too large (more than 1 MiB)"), on a JSON-level error (with line,
/// column and byte offset: "line 1, column 65: too deeply nested (more than 64 levels) at byte 64",
/// "line 1, column 3: unexpected NUL byte at byte 2"), or for any error parse_config reports.
PipelineConfig load_config(const std::filesystem::path& file, PipelineConfig defaults = {});

/// The ConfigError load_config throws for a file read_json_file refused: "cannot read: ..." and "too
/// large (...)" as they are, JSON-level errors prefixed with "line L, column C: ".
ConfigError config_file_error(const std::filesystem::path& file, const JsonError& error);

/// Command-line values that override a config file (`--size`, `--format`, `--threads`, `--mode`);
/// empty = keep.
struct ConfigOverrides {
  std::vector<std::string> sizes;      ///< "WxH" each; replaces the whole list
  std::string format;                  ///< same|jpg|png|webp
  std::optional<std::size_t> threads;
  std::string mode{};                  ///< fit|fill|fill-attention
};

/// `config` with `overrides` applied. Throws ConfigError naming the option ("--size: expected WxH
/// with both > 0, got \"12x\"", "--mode: expected fit|fill|fill-attention, got \"crop\"").
PipelineConfig apply_overrides(PipelineConfig config, const ConfigOverrides& overrides);

/// The effective config, every key present, in the shape of the file (for `--dump-config`).
/// parse_config(to_json(c)) == c.
nlohmann::json to_json(const PipelineConfig& config);

}  // namespace pixflow::tasks
