#pragma once
/// @file
/// Expected<T>: the value a task returns, or the reason it failed for this one item — the engine's own
/// pixflow::Result<T> under the name the image tasks use, so a task's answer is a stage's answer with
/// no conversion (`return decode_image(...)` from a stage body).
///
/// Tasks never throw for a per-item failure (a 404, a corrupt JPEG): they return an Error (that is,
/// a pixflow::Failure: `reason`, fit for a report and the same for every item that failed the same way,
/// and an optional `detail`), which the pipeline routes to the report. Exceptions are kept for
/// programming and configuration errors.
///
/// @code
/// pixflow::tasks::Expected<int> parse_port(std::string_view s) {
///   if (s.empty()) return pixflow::tasks::Error{"empty port"};
///   return 8080;
/// }
/// auto port = parse_port("80");
/// if (!port) std::cerr << port.error().reason;
/// else use(*port);
/// @endcode
#include "pixflow/engine/result.hpp"

namespace pixflow::tasks {

/// Why one item failed: pixflow::Failure (`reason`, `detail`).
using Error = pixflow::Failure;

/// Either a T or an Error: pixflow::Result<T>.
template <class T>
using Expected = pixflow::Result<T>;

}  // namespace pixflow::tasks
