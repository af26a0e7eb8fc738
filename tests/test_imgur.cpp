// Tests for pixflow/tasks/imgur.hpp: request URLs and headers, and parsing Imgur API v3 listing pages
// shaped like the real answers (escaped slashes, albums with and without images[], animations, videos).
#include <catch2/catch.hpp>

#include <atomic>
#include <cstddef>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "pixflow/tasks/imgur.hpp"

using namespace pixflow::tasks;

namespace {

// A gallery page as /3/gallery/hot/viral/0.json answers it (trimmed to the fields that matter, plus a
// few that do not, as the real API sends them).
constexpr const char* kGalleryPage = R"json({
  "data": [
    {
      "id": "abc", "title": "A plain photo", "datetime": 1700000000, "type": "image\/jpeg",
      "animated": false, "width": 1024, "height": 640, "size": 183210, "views": 5012,
      "link": "http:\/\/i.imgur.com\/abc.jpg", "is_album": false, "tags": []
    },
    {
      "id": "Alb1", "title": "An album with its images", "is_album": true, "cover": "im1",
      "images_count": 2, "link": "https:\/\/imgur.com\/a\/Alb1",
      "images": [
        {"id": "im1", "type": "image\/png", "animated": false, "width": 640, "height": 400,
         "link": "https:\/\/i.imgur.com\/im1.png"},
        {"id": "im2", "type": "video\/mp4", "animated": true, "width": 720, "height": 720,
         "mp4": "https:\/\/i.imgur.com\/im2.mp4", "link": "https:\/\/i.imgur.com\/im2.mp4"}
      ]
    },
    {
      "id": "Cov9", "title": "An album given by its cover only", "is_album": true, "cover": "c0v",
      "cover_width": 800, "cover_height": 600, "images_count": 14, "link": "https:\/\/imgur.com\/a\/Cov9"
    },
    {
      "id": "gif1", "type": "image\/gif", "animated": true, "width": 320, "height": 240, "size": 998877,
      "mp4": "https:\/\/i.imgur.com\/gif1.mp4", "gifv": "https:\/\/i.imgur.com\/gif1.gifv",
      "link": "https:\/\/i.imgur.com\/gif1.gif", "is_album": false
    },
    {
      "id": "vid", "type": "video\/mp4", "animated": true, "link": "https:\/\/i.imgur.com\/vid.mp4",
      "is_album": false
    },
    {"id": "nolink", "type": "image\/jpeg", "is_album": false, "title": "removed"},
    {"id": "Empty0", "is_album": true, "images_count": 0, "link": "https:\/\/imgur.com\/a\/Empty0"},
    {
      "id": "w3b", "type": "image\/webp", "link": "https:\/\/i.imgur.com\/w3b.webp", "is_album": false
    }
  ],
  "success": true,
  "status": 200
})json";

}  // namespace

TEST_CASE("gallery and album URLs follow the API v3 layout", "[imgur]") {
  GalleryQuery query;
  CHECK(gallery_page_url(query, 0) == "https://api.imgur.com/3/gallery/hot/viral/0.json");
  query.api = "http://127.0.0.1:8080/";
  query.section = "top";
  query.sort = "time";
  CHECK(gallery_page_url(query, 7) == "http://127.0.0.1:8080/3/gallery/top/time/7.json");
  CHECK(album_images_url(query, "Alb1") == "http://127.0.0.1:8080/3/album/Alb1/images.json");
  // Path pieces are percent-encoded: a hostile id cannot climb out of the album path.
  CHECK(album_images_url(query, "../x y") == "http://127.0.0.1:8080/3/album/..%2Fx%20y/images.json");
  query.section = "user/../../";
  CHECK(gallery_page_url(query, 1) == "http://127.0.0.1:8080/3/gallery/user%2F..%2F..%2F/time/1.json");
}

TEST_CASE("the Client-ID header is sent only when there is a client id", "[imgur]") {
  GalleryQuery query;
  CHECK(imgur_headers(query).empty());
  query.client_id = "0123abcd";
  CHECK(imgur_headers(query) == std::vector<std::string>{"Authorization: Client-ID 0123abcd"});
}

TEST_CASE("a client id is required for imgur.com and its subdomains only", "[imgur]") {
  CHECK(requires_client_id("https://api.imgur.com"));
  CHECK(requires_client_id("https://api.imgur.com/"));
  CHECK(requires_client_id("https://imgur.com"));
  CHECK(requires_client_id("https://API.Imgur.COM:443/"));
  CHECK(requires_client_id("api.imgur.com"));  // no scheme: https is assumed
  CHECK(requires_client_id("https://api.imgur.com./"));
  CHECK_FALSE(requires_client_id("http://127.0.0.1:8080"));
  CHECK_FALSE(requires_client_id("http://localhost/"));
  CHECK_FALSE(requires_client_id("https://notimgur.com"));
  CHECK_FALSE(requires_client_id("https://imgur.com.example.org"));
  CHECK_FALSE(requires_client_id("http://example.org/?imgur.com"));
  CHECK_FALSE(requires_client_id("http://[::1"));  // unparsable
}

TEST_CASE("a realistic gallery page is listed in document order, albums expanded in place", "[imgur]") {
  const auto page = parse_gallery_page(kGalleryPage);
  REQUIRE(page);
  CHECK_FALSE(page->end);

  struct Want {
    const char* link;
    const char* id;
    const char* mime;
    const char* skip_reason;
  };
  const std::vector<Want> want{
      {"http://i.imgur.com/abc.jpg", "abc", "image/jpeg", ""},
      {"https://i.imgur.com/im1.png", "im1", "image/png", ""},
      {"https://i.imgur.com/im2.mp4", "im2", "video/mp4", "not an image (video/mp4)"},
      {"https://i.imgur.com/gif1.gif", "gif1", "image/gif", ""},
      {"https://i.imgur.com/vid.mp4", "vid", "video/mp4", "not an image (video/mp4)"},
      {"https://i.imgur.com/w3b.webp", "w3b", "image/webp", ""},
  };
  REQUIRE(page->images.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    INFO("item " << i);
    CHECK(page->images[i].link == want[i].link);
    CHECK(page->images[i].id == want[i].id);
    CHECK(page->images[i].mime == want[i].mime);
    CHECK(page->images[i].skip_reason == want[i].skip_reason);
  }
  // The cover-only album is left to expand; the album with images_count 0 is not.
  CHECK(page->albums_to_expand == std::vector<std::string>{"Cov9"});
}

TEST_CASE("an empty data array is the end of the gallery", "[imgur]") {
  const auto page = parse_gallery_page(R"({"data":[],"success":true,"status":200})");
  REQUIRE(page);
  CHECK(page->end);
  CHECK(page->images.empty());
  CHECK(page->albums_to_expand.empty());
}

TEST_CASE("listing errors are values with short reasons", "[imgur]") {
  SECTION("the error envelope") {
    const auto page = parse_gallery_page(
        R"({"data":{"error":"Invalid client_id","request":"\/3\/gallery\/hot\/viral\/0.json","method":"GET"},)"
        R"("success":false,"status":403})");
    REQUIRE_FALSE(page);
    CHECK(page.error().reason == "listing error 403: Invalid client_id");
  }
  SECTION("an error object with a message (rate limiting)") {
    const auto page = parse_gallery_page(
        R"({"data":{"error":{"code":429,"message":"Too Many Requests","type":"RateLimit"}},"success":false,"status":429})");
    REQUIRE_FALSE(page);
    CHECK(page.error().reason == "listing error 429: Too Many Requests");
  }
  SECTION("malformed json") {
    const auto page = parse_gallery_page(R"({"data":[{"link":"https:\/\/i.imgur.com\/a.jpg"})");
    REQUIRE_FALSE(page);
    INFO(page.error().reason);
    CHECK(page.error().reason ==
          "malformed listing: syntax error while parsing array - unexpected end of input; expected ']' at byte 48");
  }
  SECTION("100,000 nested brackets (in the root, in data, in an image) fail at the 65th, not the stack") {
    const std::string deep(100'000, '[');
    const std::string closed = deep + std::string(100'000, ']');
    for (const auto& [text, offset] :
         std::vector<std::pair<std::string, std::size_t>>{{deep, 64},
                                                          {closed, 64},
                                                          {R"({"data":)" + closed + "}", 8 + 63},
                                                          {R"({"data":[{"link":"x","tags":)" + closed + "}]}", 28 + 61}}) {
      INFO(text.substr(0, 40));
      const auto page = parse_gallery_page(text);
      REQUIRE_FALSE(page);
      CHECK(page.error().reason ==
            "malformed listing: too deeply nested (more than 64 levels) at byte " + std::to_string(offset));
      const auto album = parse_album_images(text);
      REQUIRE_FALSE(album);
      CHECK(album.error().reason == page.error().reason);
    }
  }
  SECTION("64 levels are fine") {
    const std::string text = R"({"data":)" + std::string(63, '[') + std::string(63, ']') + "}";
    const auto page = parse_gallery_page(text);
    REQUIRE(page);
    CHECK(page->images.empty());
  }
  SECTION("a second document, trailing garbage or a NUL after the page") {
    const std::string good = R"({"data":[],"success":true,"status":200})";
    CHECK(parse_gallery_page(good + " \n"));
    for (const std::string& text : {good + good, good + "x", good + std::string(1, '\0') + "garbage"}) {
      const auto page = parse_gallery_page(text);
      REQUIRE_FALSE(page);
      CHECK(page.error().reason.rfind("malformed listing: unexpected ", 0) == 0);
      CHECK(page.error().reason.ends_with(" at byte " + std::to_string(good.size())));
    }
  }
  SECTION("an html error page") {
    const auto page = parse_gallery_page("<html><body>502 Bad Gateway</body></html>");
    REQUIRE_FALSE(page);
    CHECK(page.error().reason.rfind("malformed listing: ", 0) == 0);
  }
  SECTION("data is not an array") {
    const auto page = parse_gallery_page(R"({"data":{"id":"abc"},"success":true,"status":200})");
    REQUIRE_FALSE(page);
    CHECK(page.error().reason == "malformed listing: data is not an array");
  }
  SECTION("no data at all") {
    const auto page = parse_gallery_page(R"({"success":true,"status":200})");
    REQUIRE_FALSE(page);
    CHECK(page.error().reason == "malformed listing: data is not an array");
  }
  SECTION("not an object") {
    const auto page = parse_gallery_page(R"([1,2,3])");
    REQUIRE_FALSE(page);
    CHECK(page.error().reason == "malformed listing: not a json object");
  }
}

TEST_CASE("album images follow the same rules", "[imgur]") {
  const auto images = parse_album_images(R"({"data":[
      {"id":"c0v","type":"image\/jpeg","link":"https:\/\/i.imgur.com\/c0v.jpg"},
      {"id":"mov","type":"video\/mp4","link":"https:\/\/i.imgur.com\/mov.mp4"},
      {"id":"gone","type":"image\/png"},
      "junk",
      {"id":"png2","type":"image\/png","link":"https:\/\/i.imgur.com\/png2.png"}
    ],"success":true,"status":200})");
  REQUIRE(images);
  REQUIRE(images->size() == 3);
  CHECK((*images)[0].link == "https://i.imgur.com/c0v.jpg");
  CHECK((*images)[0].skip_reason.empty());
  CHECK((*images)[1].skip_reason == "not an image (video/mp4)");
  CHECK((*images)[2].id == "png2");

  const auto denied = parse_album_images(R"({"data":{"error":"Album not found"},"success":false,"status":404})");
  REQUIRE_FALSE(denied);
  CHECK(denied.error().reason == "listing error 404: Album not found");
}

TEST_CASE("LinkDeduplicator passes each link once, across threads", "[imgur]") {
  LinkDeduplicator seen;
  CHECK(seen.first_time("https://i.imgur.com/a.jpg"));
  CHECK_FALSE(seen.first_time("https://i.imgur.com/a.jpg"));
  CHECK(seen.first_time("https://i.imgur.com/b.jpg"));

  // Four threads offer the same 500 links: each link is "first" exactly once overall.
  LinkDeduplicator shared;
  std::atomic<int> firsts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i)
        if (shared.first_time("https://i.imgur.com/" + std::to_string(i) + ".jpg")) ++firsts;
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(firsts == 500);
  CHECK(shared.size() == 500);
}

TEST_CASE("the listed size of an image is kept (0 when absent or not a byte count)", "[imgur]") {
  const auto page = parse_gallery_page(R"({"data":[
    {"id":"a","type":"image/jpeg","size":183210,"link":"https://i.imgur.com/a.jpg"},
    {"id":"b","type":"image/jpeg","link":"https://i.imgur.com/b.jpg"},
    {"id":"c","type":"image/jpeg","size":-5,"link":"https://i.imgur.com/c.jpg"},
    {"id":"d","type":"image/jpeg","size":"12","link":"https://i.imgur.com/d.jpg"}],"success":true,"status":200})");
  REQUIRE(page);
  REQUIRE(page->images.size() == 4);
  CHECK(page->images[0].size == 183210);
  CHECK(page->images[1].size == 0);
  CHECK(page->images[2].size == 0);
  CHECK(page->images[3].size == 0);
}
