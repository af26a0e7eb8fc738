// Tests for pixflow/tasks/listing.hpp: pages put back in order with each link once, the end of a
// listing (a page past it dropped whatever it answered), and whole listings against the nginx fixture.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "pixflow/tasks/listing.hpp"
#include "support.hpp"

using namespace pixflow::tasks;

namespace {

ListedPage page_of(int number, std::vector<std::string> links, bool end = false) {
  ListedPage page;
  page.number = number;
  for (auto& link : links) {
    ListedImage image;
    image.link = std::move(link);
    page.images.push_back(std::move(image));
  }
  page.end = end;
  return page;
}

ListedPage failed_page(int number, std::string reason) {
  ListedPage page;
  page.number = number;
  page.error = std::move(reason);
  return page;
}

/// What ListingOrder handed back: "page:position:link" per image, and the errors.
struct Collected {
  std::vector<std::string> images;
  std::vector<std::string> errors;
  void add(ListingOrder& order, ListedPage page) {
    order.add(
        std::move(page),
        [this](int number, ListedImage image, std::size_t position) {
          images.push_back(std::to_string(number) + ":" + std::to_string(position) + ":" + image.link);
        },
        [this](ListingError error) { errors.push_back(std::to_string(error.page) + ":" + error.reason); });
  }
};

}  // namespace

TEST_CASE("ListingOrder hands pages back in page order, each link once", "[listing]") {
  ListingOrder order(0);
  Collected got;
  got.add(order, page_of(1, {"b", "a", "c"}));
  CHECK(got.images.empty());  // page 0 is not in yet
  got.add(order, page_of(0, {"a", "a"}));
  CHECK(got.images == std::vector<std::string>{"0:0:a", "1:0:b", "1:2:c"});
  CHECK_FALSE(order.finished());
  got.add(order, page_of(2, {}, true));
  CHECK(order.finished());
  CHECK(order.pages_read() == 3);
  CHECK(got.errors.empty());
}

TEST_CASE("a page past the end of the listing is dropped, whatever it answered", "[listing]") {
  ListingOrder order(0);
  Collected got;
  // Pages fetched two at a time: page 2 answers 404 before page 1, the empty one, is in.
  got.add(order, page_of(0, {"a"}));
  got.add(order, failed_page(2, "listing page 2: http 404"));
  CHECK(order.wanted(1));
  CHECK_FALSE(order.wanted(3));  // an unreadable page ends "until an empty page": ask for no more
  got.add(order, page_of(1, {}, true));
  CHECK(order.finished());
  CHECK(got.errors.empty());
  CHECK(got.images == std::vector<std::string>{"0:0:a"});
  CHECK_FALSE(order.wanted(2));
  got.add(order, failed_page(3, "listing page 3: http 500"));  // a late answer changes nothing
  CHECK(got.errors.empty());
}

TEST_CASE("an unreadable page before the end is reported and ends an open-ended listing", "[listing]") {
  ListingOrder order(0);
  Collected got;
  got.add(order, page_of(0, {"a"}));
  got.add(order, failed_page(1, "listing page 1: http 500"));
  CHECK(order.finished());
  CHECK(got.errors == std::vector<std::string>{"1:listing page 1: http 500"});
  CHECK(order.pages_read() == 1);
}

TEST_CASE("a listing of N pages reads N pages, an unreadable one reported, and stops at an empty one", "[listing]") {
  ListingOrder three(3);
  Collected got;
  got.add(three, page_of(0, {"a"}));
  got.add(three, failed_page(1, "listing page 1: http 500"));
  CHECK_FALSE(three.finished());  // with a page count, one bad page does not end it
  CHECK(three.wanted(2));
  CHECK_FALSE(three.wanted(3));
  got.add(three, page_of(2, {"b"}));
  CHECK(three.finished());
  CHECK(got.images == std::vector<std::string>{"0:0:a", "2:0:b"});
  CHECK(got.errors.size() == 1);

  ListingOrder short_one(5);
  Collected rest;
  rest.add(short_one, page_of(0, {"a"}, false));
  rest.add(short_one, page_of(1, {}, true));
  CHECK(short_one.finished());
}

TEST_CASE("an album that cannot be read is reported with its page; the page's other images stand", "[listing]") {
  ListingOrder order(1);
  Collected got;
  ListedPage page = page_of(0, {"a", "b"});
  page.album_errors.push_back("album Xy: http 404");
  got.add(order, std::move(page));
  CHECK(got.images.size() == 2);
  CHECK(got.errors == std::vector<std::string>{"0:listing page 0: album Xy: http 404"});
}

TEST_CASE("list_gallery lists the fixture gallery to its end, albums in place, links once", "[listing][server]") {
  HttpClient http;
  GalleryQuery query{.api = pixflow::test::server_url(), .pages = 0, .client_id = "test"};
  const GalleryListing listing = list_gallery(http, query, 2);
  CHECK(listing.errors.empty());
  CHECK(listing.pages_read >= 2);
  REQUIRE_FALSE(listing.images.empty());
  std::vector<std::string> links;
  for (const auto& image : listing.images) links.push_back(image.link);
  std::sort(links.begin(), links.end());
  CHECK(std::adjacent_find(links.begin(), links.end()) == links.end());
}

TEST_CASE("list_gallery: a server that answers 404 past the empty page lists without an error", "[listing][server]") {
  HttpClient http;
  GalleryQuery query{.api = pixflow::test::server_url(), .sort = "strict", .pages = 0, .client_id = "test"};
  for (const std::size_t window : {std::size_t{1}, std::size_t{2}, std::size_t{4}}) {
    const GalleryListing listing = list_gallery(http, query, window);
    CHECK(listing.errors.empty());
    CHECK(listing.pages_read == 2);
    CHECK(listing.images.size() == 2);
  }
}
