// naming.hpp: hostile URLs and names stay inside the output folder, stay short and distinct.
#include <catch2/catch.hpp>

#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "pixflow/tasks/naming.hpp"
#include "pixflow/tasks/write.hpp"

using namespace pixflow::tasks;
namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

/// Every byte sequence is valid UTF-8.
bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t length = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (length == 0 || i + length > s.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += length;
  }
  return true;
}

/// The properties every produced name must have.
void check_safe(const std::string& name) {
  INFO("name: " << name);
  CHECK_FALSE(name.empty());
  CHECK(name.size() <= max_name_bytes);
  CHECK(name.find('/') == std::string::npos);
  CHECK(name.find('\\') == std::string::npos);
  CHECK(name.find('\0') == std::string::npos);
  CHECK(name.front() != '.');
  CHECK_FALSE(name.starts_with(temporary_prefix));
  CHECK(valid_utf8(name));
  for (const char c : name) CHECK(static_cast<unsigned char>(c) >= 0x20);
  const fs::path out = "/srv/out";
  CHECK((out / name).lexically_normal().parent_path() == out);
}

const std::vector<std::string> hostile_urls = {
    "https://i.imgur.com/%2e%2e%2fetc%2fpasswd",
    "https://example.com/a/..%2f..%2f..%2froot%2f.ssh%2fauthorized_keys",
    "https://example.com/..",
    "https://example.com/%2e%2e",
    "https://example.com/.",
    "https://example.com/.hidden.jpg",
    "https://example.com/.pixflow-tmp-x.jpg",
    "https://example.com/a%00b.jpg",
    "https://example.com/a%0d%0aSet-Cookie:x.jpg",
    "https://example.com/tab%09and%7fdel.png",
    "https://example.com/" + std::string(300, 'x') + ".jpg",
    "https://example.com/" + std::string(150, 'e') + "%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9"
                                                      "%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9"
                                                      "%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9.jpg",
    "https://example.com/photo.jpg?name=../../etc/passwd#frag/ment",
    "https://example.com/gallery/",
    "https://example.com/",
    "https://example.com",
    "https://example.com/%E2%9C%93%20check.png",
    "https://example.com/%ff%fe%80bad-utf8.jpg",
    "https://example.com/back%5Cslash%5C..%5Cwin.jpg",
    "https://example.com/a b.jpg",
    "relative/path/to/pic.webp",
    "",
};

}  // namespace

TEST_CASE("name_from_url takes the decoded last path segment", "[naming]") {
  CHECK(name_from_url("https://i.imgur.com/aqua.jpg") == "aqua.jpg");
  CHECK(name_from_url("https://i.imgur.com/aqua.jpg?maxwidth=640&fidelity=high") == "aqua.jpg");
  CHECK(name_from_url("https://example.com/a/b/photo.png#section") == "photo.png");
  CHECK(name_from_url("https://example.com/gallery/summer/") == "summer");
  CHECK(name_from_url("https://example.com/") == "image");
  CHECK(name_from_url("https://example.com") == "image");
  CHECK(name_from_url("") == "image");
  CHECK(name_from_url("https://example.com/caf%C3%A9.jpg") == "café.jpg");
  CHECK(name_from_url("https://example.com/%E2%9C%93%20check.png") == "✓ check.png");
  CHECK(name_from_url("https://i.imgur.com/%2e%2e%2fetc%2fpasswd") == "_etc_passwd");  // %2F is not a folder
  CHECK(name_from_url("https://example.com/a%00b.jpg") == "a_b.jpg");
  CHECK(name_from_url("https://example.com/a b.jpg") == "a b.jpg");  // libcurl refuses it; the fallback parses
  CHECK(name_from_url("relative/path/to/pic.webp") == "pic.webp");
  CHECK(name_from_url("http://127.0.0.1:8080/photos/wood.webp") == "wood.webp");
}

TEST_CASE("sanitize_name makes any name safe", "[naming]") {
  CHECK(sanitize_name("aqua.jpg") == "aqua.jpg");
  CHECK(sanitize_name("..") == "image");
  CHECK(sanitize_name(".") == "image");
  CHECK(sanitize_name("") == "image");
  CHECK(sanitize_name("...") == "image");
  CHECK(sanitize_name(".hidden") == "hidden");
  CHECK(sanitize_name("../../etc/passwd") == "_.._etc_passwd");
  CHECK(sanitize_name(".pixflow-tmp-1") == "pixflow-tmp-1");
  CHECK(sanitize_name("a\\b/c") == "a_b_c");
  CHECK(sanitize_name(std::string("a\0b", 3)) == "a_b");
  CHECK(sanitize_name("line\nbreak\r\x1b[31m.jpg") == "line_break__[31m.jpg");
  CHECK(sanitize_name("\xC2\x85next-line.jpg") == "_next-line.jpg");  // U+0085, a C1 control
  CHECK(sanitize_name("bad\xFFutf8\xC3.jpg") == "bad_utf8_.jpg");
  CHECK(sanitize_name("café ✓.png") == "café ✓.png");

  SECTION("long names keep their extension and whole UTF-8 characters") {
    const std::string long_ascii = sanitize_name(std::string(300, 'a') + ".jpeg");
    CHECK(long_ascii.size() == max_name_bytes);
    CHECK(long_ascii.ends_with(".jpeg"));
    std::string accents;
    for (int i = 0; i < 150; ++i) accents += "é";  // 2 bytes each
    const std::string long_utf8 = sanitize_name(accents + ".png");
    CHECK(long_utf8.size() <= max_name_bytes);
    CHECK(long_utf8.ends_with(".png"));
    CHECK(valid_utf8(long_utf8));
    const std::string no_extension = sanitize_name(std::string(250, 'b') + "." + std::string(40, 'c'));
    CHECK(no_extension.size() == max_name_bytes);
  }
}

TEST_CASE("hostile URLs give safe, non-empty, short names inside the folder", "[naming]") {
  NameRegistry registry;
  std::set<std::string> given;
  for (const auto& url : hostile_urls) {
    INFO("url: " << url);
    const std::string name = name_from_url(url);
    check_safe(name);
    const std::string thumb = thumbnail_name(name, Size{128, 128}, false, ImageFormat::jpeg);
    check_safe(thumb);
    const std::string unique = registry.claim(thumb, url);
    check_safe(unique);
    CHECK(given.insert(lower(unique)).second);
  }
}

TEST_CASE("thumbnail_name follows the seed scripts' naming", "[naming]") {
  CHECK(thumbnail_name("aqua.jpg", Size{128, 128}, false, ImageFormat::jpeg) == "aqua_thumbnail.jpg");
  CHECK(thumbnail_name("aqua.jpg", Size{128, 96}, true, ImageFormat::jpeg) == "aqua_thumbnail_128x96.jpg");
  CHECK(thumbnail_name("garden.png", Size{64, 64}, false, ImageFormat::webp) == "garden_thumbnail.webp");
  CHECK(thumbnail_name("archive.tar.gz", Size{64, 64}, false, ImageFormat::png) == "archive.tar_thumbnail.png");
  CHECK(thumbnail_name("summer", Size{64, 64}, false, ImageFormat::png) == "summer_thumbnail.png");
  CHECK(thumbnail_name("..", Size{64, 64}, false, ImageFormat::png) == "image_thumbnail.png");
  const std::string long_name = thumbnail_name(std::string(300, 'z') + ".jpg", Size{1024, 768}, true,
                                               ImageFormat::jpeg);
  CHECK(long_name.size() == max_name_bytes);
  CHECK(long_name.ends_with("_thumbnail_1024x768.jpg"));
  CHECK_THROWS_AS(thumbnail_name("a.jpg", Size{64, 64}, false, ImageFormat::same), std::invalid_argument);
}

TEST_CASE("NameRegistry hands out distinct names deterministically", "[naming]") {
  NameRegistry registry;
  CHECK(registry.claim("a.jpg", "url-1") == "a.jpg");
  CHECK(registry.claim("a.jpg", "url-2") == "a-2.jpg");
  CHECK(registry.claim("a.jpg", "url-3") == "a-3.jpg");
  CHECK(registry.claim("a.jpg", "url-1") == "a.jpg");    // same key, same name
  CHECK(registry.claim("A.JPG", "url-4") == "A-4.JPG");  // a.jpg, a-2.jpg, a-3.jpg taken, whatever the case
  SECTION("case collisions") {
    NameRegistry fresh;
    const std::string first = fresh.claim("Photo.JPG", "k1");
    const std::string second = fresh.claim("photo.jpg", "k2");
    CHECK(first == "Photo.JPG");
    CHECK(lower(second) != lower(first));
    CHECK(second == "photo-2.jpg");
  }
  SECTION("a suffixed name that was itself claimed earlier") {
    NameRegistry fresh;
    CHECK(fresh.claim("b-2.png", "k1") == "b-2.png");
    CHECK(fresh.claim("b.png", "k2") == "b.png");
    CHECK(fresh.claim("b.png", "k3") == "b-3.png");
  }
  SECTION("names are sanitized and stay within the length limit when suffixed") {
    NameRegistry fresh;
    const std::string long_name = std::string(300, 'q') + ".jpg";
    const std::string first = fresh.claim(long_name, "k1");
    const std::string second = fresh.claim(long_name, "k2");
    CHECK(first.size() <= max_name_bytes);
    CHECK(second.size() <= max_name_bytes);
    CHECK(second.ends_with("-2.jpg"));
    CHECK(fresh.claim("../x.jpg", "k3") == "_x.jpg");
  }
}

TEST_CASE("NameRegistry is thread-safe", "[naming]") {
  NameRegistry registry;
  constexpr int threads = 4;
  constexpr int per_thread = 200;
  std::vector<std::vector<std::string>> results(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        // Every thread wants the same 20 names, in different letter case; keys are unique per claim.
        const std::string name = (t % 2 == 0 ? "pic" : "PIC") + std::to_string(i % 20) + ".jpg";
        results[static_cast<std::size_t>(t)].push_back(
            registry.claim(name, std::to_string(t) + "/" + std::to_string(i)));
      }
    });
  }
  for (auto& worker : workers) worker.join();
  std::set<std::string> all;
  for (const auto& list : results) {
    for (const auto& name : list) CHECK(all.insert(lower(name)).second);
  }
  CHECK(all.size() == threads * per_thread);
  CHECK(registry.claim("anything", "2/7") == results[2][7]);
}
