#pragma once
/// @file
/// The Imgur API v3 gallery listing: request URLs and headers, and the parsing of listing pages and
/// album image lists. Fetching pages in order, with their albums, is listing.hpp's (GalleryLister,
/// ListingOrder, list_gallery); the HTTP calls are made by an HttpClient.
///
/// @code
/// using namespace pixflow::tasks;
/// GalleryQuery query{.section = "top", .sort = "time", .pages = 3, .client_id = "abc123"};
/// std::string url = gallery_page_url(query, 0);           // ".../3/gallery/top/time/0.json"
/// Expected<GalleryPage> listed = parse_gallery_page(body);  // body: the answer to that URL
/// if (!listed) report(listed.error().reason);               // "listing error 403: ..."
/// else for (const ListedImage& image : listed->images) use(image.link, image.skip_reason);
/// @endcode
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "pixflow/tasks/expected.hpp"

namespace pixflow::tasks {

/// Which gallery to list, and how.
struct GalleryQuery {
  std::string api = "https://api.imgur.com";  ///< API base URL (a trailing slash is ignored)
  std::string section = "hot";                ///< hot, top, user
  std::string sort = "viral";                 ///< viral, top, time, rising
  int pages = 1;                              ///< how many pages to list (from page 0)
  std::string client_id;                      ///< Imgur application Client-ID; empty: no header
};

/// "{api}/3/gallery/{section}/{sort}/{page}.json". Section and sort are percent-encoded.
std::string gallery_page_url(const GalleryQuery& query, int page);

/// "{api}/3/album/{album_id}/images.json". The id is percent-encoded.
std::string album_images_url(const GalleryQuery& query, std::string_view album_id);

/// The request headers: {"Authorization: Client-ID <id>"} when client_id is set, else none.
std::vector<std::string> imgur_headers(const GalleryQuery& query);

/// True when the API host is imgur.com or one of its subdomains (Imgur rejects anonymous calls, so
/// a client id is required then); false for other hosts (test servers, mirrors) and unparsable URLs.
bool requires_client_id(std::string_view api);

/// One image a listing names.
struct ListedImage {
  std::string link;         ///< the image URL ("https://i.imgur.com/abc.jpg")
  std::string id;           ///< Imgur id, may be empty
  std::string mime;         ///< the listed type ("image/jpeg"); empty when the listing gives none
  std::uint64_t size = 0;   ///< the listed size in bytes; 0 when the listing gives none
  std::string skip_reason;  ///< why it is not processed ("not an image (video/mp4)"); empty: process it
};

/// What one gallery page lists.
struct GalleryPage {
  std::vector<ListedImage> images;            ///< in document order; albums with images[] expanded in place
  std::vector<std::string> albums_to_expand;  ///< ids of albums listed without images[] (fetch album_images_url)
  /// For each of albums_to_expand: the index in `images` where its images belong (listing order).
  std::vector<std::size_t> album_positions;
  bool end = false;                           ///< `data` was an empty array: no more pages
};

/// Parses one gallery page (`{"data": [...], "success": true, "status": 200}`).
/// Errors: "malformed listing: <json error> at byte N" (parse_json in json.hpp: a syntax error, trailing
/// data or a NUL, "too deeply nested (more than 64 levels)"), "malformed listing: data is not an array",
/// "listing error 403: <data.error>" (success false). The text's size is not capped here: the
/// download's max_bytes bounds it.
/// Items without a link are ignored. Items whose type starts with "image/" (or that have no type)
/// are kept; others are listed with skip_reason "not an image (<type>)". Albums (`is_album`) with
/// `images[]` are expanded in place; albums with only `images_count`/`cover` go to albums_to_expand
/// (unless images_count is 0).
Expected<GalleryPage> parse_gallery_page(std::string_view json);

/// Parses the answer of /3/album/{id}/images (`data`: an array of images), with the same rules.
Expected<std::vector<ListedImage>> parse_album_images(std::string_view json);

/// Thread-safe de-duplication of links across pages and albums.
class LinkDeduplicator {
 public:
  /// True the first time `link` is seen, false afterwards.
  bool first_time(std::string_view link);
  /// How many distinct links were seen.
  [[nodiscard]] std::size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::unordered_set<std::string> seen_;
};

}  // namespace pixflow::tasks
