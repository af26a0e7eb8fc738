#pragma once
/// @file
/// The gallery listing, once for everybody (the pipeline, `pixflow enqueue`, the bench): fetching a
/// page with the albums it names, putting pages back in listing order, and where the listing ends.
///
/// - GalleryLister fetches one page over an HttpClient, then each album the page names only by id, one
///   after the other, and completes with the page's images in listing order (an album's images where
///   the album was listed). Asynchronous: its callback runs on the HTTP loop's thread.
/// - ListingOrder takes pages in any order and hands them back in page order, each link once
///   (de-duplicated across pages and albums), and knows when the listing is over: after the first page
///   that is empty or cannot be read, or after `query.pages` pages. A page past the end is dropped,
///   whatever it answered: with pages fetched two at a time, the page after the last one may answer
///   404 or 500, and that is not an error of the listing.
/// - list_gallery does both, synchronously, for callers that need the whole listing before they start.
///
/// @code
/// using namespace pixflow::tasks;
/// HttpClient http(http_options(config));
/// GalleryListing listing = list_gallery(http, GalleryQuery{.section = "top", .pages = 0}, 2);
/// for (const ListedImage& image : listing.images)
///   if (image.skip_reason.empty()) enqueue(image.link);
/// for (const ListingError& e : listing.errors) std::cerr << "page " << e.page << ": " << e.reason << '\n';
/// @endcode
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pixflow/tasks/http.hpp"
#include "pixflow/tasks/imgur.hpp"
#include "pixflow/tasks/report.hpp"

namespace pixflow::tasks {

/// One gallery page as fetched: its images with its albums' images in place, or why it could not be
/// read.
struct ListedPage {
  int number = 0;
  std::vector<ListedImage> images;
  std::vector<std::string> album_errors;  ///< "album abc: http 404" — the page's other images stand
  std::optional<std::string> error;       ///< "listing page 3: http 500": the page could not be read
  bool end = false;                       ///< the page was empty: no page after it
};

/// Fetches gallery pages (and their albums) over an HttpClient it does not own.
///
/// @code
/// GalleryLister lister(http, query);
/// lister.fetch(0, [](ListedPage page) { /* on the HTTP loop thread */ });
/// @endcode
class GalleryLister {
 public:
  GalleryLister(HttpClient& http, GalleryQuery query) : http_(http), query_(std::move(query)) {}
  /// Requests page `page`, then the albums it names only by id, one after the other; calls `done` once,
  /// on the HTTP loop's thread, with everything. A page that cannot be read completes with its error.
  void fetch(int page, std::function<void(ListedPage)> done);
  [[nodiscard]] const GalleryQuery& query() const noexcept { return query_; }

 private:
  struct Expansion;
  void expand_next_album(std::shared_ptr<Expansion> state);
  HttpClient& http_;
  const GalleryQuery query_;
};

/// Puts fetched pages back in listing order and ends the listing. Not thread-safe: one caller at a time
/// (the pipeline's serial `list` stage; list_gallery under its lock).
///
/// @code
/// ListingOrder order(query.pages);
/// order.add(std::move(page), [&](int number, ListedImage image, std::size_t position) { ... },
///           [&](ListingError error) { report(error); });
/// if (order.finished()) ...
/// @endcode
class ListingOrder {
 public:
  /// `pages`: how many pages to list, 0 = until the first empty (or unreadable) page.
  explicit ListingOrder(int pages) : pages_(pages) {}

  /// Takes page `page` (in any order). For every page now next in order: `on_image(page, image,
  /// position)` for each link not seen before (skip_reason kept: the caller reports those), then
  /// `on_error` for its album errors or its own error. Pages past the end are dropped unread.
  void add(ListedPage page, const std::function<void(int, ListedImage, std::size_t)>& on_image,
           const std::function<void(ListingError)>& on_error);
  /// Whether page `page` should still be requested (false past a known end or past `pages`).
  [[nodiscard]] bool wanted(int page) const noexcept;
  /// Every page up to the end has been handed back.
  [[nodiscard]] bool finished() const noexcept { return end_page_ && next_ > *end_page_; }
  /// Pages handed back that were read (not errors, not past the end).
  [[nodiscard]] int pages_read() const noexcept { return pages_read_; }
  /// The page the listing hands back next (every page before it was handed back).
  [[nodiscard]] int next_page() const noexcept { return next_; }
  /// Pages received out of order, held until the pages before them arrive.
  [[nodiscard]] std::size_t held_back() const noexcept { return waiting_.size(); }

 private:
  const int pages_;
  std::map<int, ListedPage> waiting_;
  int next_ = 0;
  int pages_read_ = 0;
  std::optional<int> end_page_;  // the last page of the listing, once known
  std::optional<int> seen_end_;  // the lowest page seen that ends the listing (in any order)
  LinkDeduplicator links_;
};

/// A whole gallery listing: every link once, in listing order (skipped ones with their skip_reason).
struct GalleryListing {
  std::vector<ListedImage> images;
  std::vector<ListingError> errors;
  int pages_read = 0;
};

/// Lists the gallery of `query` to its end, `window` pages in flight at once; returns when done, or
/// early (with what was listed) when `stop()` turns true between pages.
GalleryListing list_gallery(HttpClient& http, const GalleryQuery& query, std::size_t window,
                            const std::function<bool()>& stop = {});

}  // namespace pixflow::tasks
