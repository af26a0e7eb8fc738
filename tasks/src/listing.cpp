// The gallery listing: a page and its albums over the HTTP loop (GalleryLister), pages back in order
// with each link once and the end found (ListingOrder), and both at once, synchronously (list_gallery).
#include "pixflow/tasks/listing.hpp"

#include <condition_variable>
#include <iterator>
#include <memory>
#include <mutex>
#include <string_view>

namespace pixflow::tasks {
namespace {

std::string_view text_of(const HttpResponse& response) {
  return {reinterpret_cast<const char*>(response.body.data()), response.body.size()};
}

}  // namespace

/// A page whose cover-only albums are being fetched, one after the other.
struct GalleryLister::Expansion {
  ListedPage page;
  GalleryPage listing;
  std::vector<std::vector<ListedImage>> albums;  // images of listing.albums_to_expand[0..], as fetched
  std::function<void(ListedPage)> done;
};

void GalleryLister::fetch(int page, std::function<void(ListedPage)> done) {
  http_.submit(HttpRequest{gallery_page_url(query_, page), imgur_headers(query_)},
               [this, page, done = std::move(done)](HttpResponse response) mutable {
                 ListedPage listed;
                 listed.number = page;
                 const std::string where = "listing page " + std::to_string(page) + ": ";
                 if (!response.ok()) {
                   listed.error = where + response.failure_reason();
                   return done(std::move(listed));
                 }
                 auto parsed = parse_gallery_page(text_of(response));
                 if (!parsed) {
                   listed.error = where + parsed.error().reason;
                   return done(std::move(listed));
                 }
                 listed.end = parsed->end;
                 expand_next_album(std::make_shared<Expansion>(
                     Expansion{std::move(listed), std::move(parsed).value(), {}, std::move(done)}));
               });
}

void GalleryLister::expand_next_album(std::shared_ptr<Expansion> state) {
  GalleryPage& listing = state->listing;
  const std::size_t i = state->albums.size();
  if (i == listing.albums_to_expand.size()) {
    for (std::size_t k = i; k-- > 0;) {  // last first, so earlier positions stay valid
      auto& images = state->albums[k];
      const auto at = listing.images.begin() + static_cast<std::ptrdiff_t>(listing.album_positions[k]);
      listing.images.insert(at, std::make_move_iterator(images.begin()), std::make_move_iterator(images.end()));
    }
    state->page.images = std::move(listing.images);
    return state->done(std::move(state->page));
  }
  const std::string album = listing.albums_to_expand[i];
  http_.submit(HttpRequest{album_images_url(query_, album), imgur_headers(query_)},
               [this, state, album](HttpResponse response) {
                 std::vector<ListedImage> images;
                 const std::string where = "album " + album + ": ";
                 auto parsed = response.ok() ? parse_album_images(text_of(response))
                                             : Expected<std::vector<ListedImage>>(Error{response.failure_reason()});
                 if (parsed)
                   images = std::move(parsed).value();
                 else
                   state->page.album_errors.push_back(where + parsed.error().reason);
                 state->albums.push_back(std::move(images));
                 expand_next_album(state);
               });
}

void ListingOrder::add(ListedPage page, const std::function<void(int, ListedImage, std::size_t)>& on_image,
                       const std::function<void(ListingError)>& on_error) {
  // "Until an empty page": a page that cannot be read ends it too (where the end is, is unknown).
  const auto ends = [this](const ListedPage& p) { return p.end || (pages_ == 0 && p.error); };
  if (ends(page) && (!seen_end_ || page.number < *seen_end_)) seen_end_ = page.number;
  if (!wanted(page.number) && !(seen_end_ && page.number == *seen_end_)) return;  // past the end
  waiting_.emplace(page.number, std::move(page));
  while (!waiting_.empty() && waiting_.begin()->first == next_) {
    ListedPage p = std::move(waiting_.begin()->second);
    waiting_.erase(waiting_.begin());
    ++next_;
    if (p.error) {
      on_error(ListingError{p.number, *p.error});
    } else {
      ++pages_read_;
      std::size_t position = 0;
      for (auto& image : p.images) {
        const std::size_t at = position++;
        if (links_.first_time(image.link)) on_image(p.number, std::move(image), at);
      }
      for (auto& reason : p.album_errors) on_error(ListingError{p.number, "listing page " + std::to_string(p.number) + ": " + reason});
    }
    if (ends(p) || (pages_ > 0 && next_ >= pages_)) {
      end_page_ = p.number;
      waiting_.clear();  // pages past the end, whatever they answered
      break;
    }
  }
}

bool ListingOrder::wanted(int page) const noexcept {
  if (end_page_ && page > *end_page_) return false;
  if (seen_end_ && page > *seen_end_) return false;
  return pages_ == 0 || page < pages_;
}

GalleryListing list_gallery(HttpClient& http, const GalleryQuery& query, std::size_t window,
                            const std::function<bool()>& stop) {
  GalleryLister lister(http, query);
  ListingOrder order(query.pages);
  GalleryListing listing;
  std::mutex mutex;
  std::condition_variable changed;
  int next_page = 0;
  std::size_t in_flight = 0;
  std::unique_lock lock(mutex);
  for (;;) {
    const bool stopping = stop && stop();
    while (!stopping && in_flight < std::max<std::size_t>(window, 1) && order.wanted(next_page)) {
      ++in_flight;
      lister.fetch(next_page++, [&](ListedPage page) {
        std::lock_guard inner(mutex);
        --in_flight;
        order.add(
            std::move(page), [&](int, ListedImage image, std::size_t) { listing.images.push_back(std::move(image)); },
            [&](ListingError error) { listing.errors.push_back(std::move(error)); });
        changed.notify_all();
      });
    }
    if (in_flight == 0 && (stopping || order.finished() || !order.wanted(next_page))) break;
    changed.wait(lock);
  }
  listing.pages_read = order.pages_read();
  return listing;
}

}  // namespace pixflow::tasks
