#pragma once
/// @file
/// A page to look at: OUT/index.html shows a run's thumbnails in input order, each linked to its
/// original, and lists the failed and skipped items with their reasons (what `pixflow --index` writes).
///
/// The page is one self-contained HTML file: inline CSS, no script, nothing loaded from outside OUT but
/// the originals the links point to (a saved original in OUT, else the item's http(s) URL or its local
/// file). Everything taken from the input — URLs, paths, file names, reasons — is HTML-escaped in text
/// and percent-encoded in links, so a hostile name (`"><script>`) shows as text and never becomes
/// markup; a URL whose scheme is not http or https is shown but never linked (no `javascript:`).
///
/// @code
/// using namespace pixflow::tasks;
/// PipelineReport report = run_pipeline(source, options);
/// auto page = write_index_page(options.out, report.items, IndexPageOptions{.originals_saved = true});
/// if (!page) std::cerr << page.error().reason << '\n';   // "cannot write: no space left on device"
/// @endcode
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "pixflow/tasks/expected.hpp"
#include "pixflow/tasks/report.hpp"

namespace pixflow::tasks {

/// The page's file name in OUT.
inline constexpr std::string_view index_page_name = "index.html";

/// What the page needs to know beyond the items.
struct IndexPageOptions {
  /// The run saved each downloaded original into OUT (gallery and urls): an item's first output is its
  /// original, the ones after it its thumbnails. False (thumbs): every output is a thumbnail and the
  /// link goes to the item's own URL or file.
  bool originals_saved = true;
  std::string title = "pixflow";  ///< the page's title and heading (escaped like everything else)
};

/// The page for `items` (a run's report items, in input order). Items with outputs (done, or skipped
/// as "already done" by a resumed run) are shown as a thumbnail (their first thumbnail output, e.g. the
/// first size asked for) linked to the original; the failed ones, then the other skipped ones, are
/// listed with their stage and reason. Deterministic: the same items give the same bytes.
std::string index_page_html(const std::vector<ItemReport>& items, const IndexPageOptions& options = {});

/// Writes index_page_html() to out/index.html with write_file_atomically (write.hpp): the page is
/// replaced whole or not at all. An existing out/index.html that pixflow did not write (its first
/// bytes lack the page's marker comment) is never replaced: Error "cannot write index.html: a file
/// not written by pixflow has that name" (e.g. `thumbs DIR --out DIR` over a folder with its own
/// index.html). Other errors are write_file_atomically's ("cannot write: ..."; the path in detail).
Expected<std::filesystem::path> write_index_page(const std::filesystem::path& out, const std::vector<ItemReport>& items,
                                                 const IndexPageOptions& options = {});

}  // namespace pixflow::tasks
