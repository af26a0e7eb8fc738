// naming.hpp: hostile URLs and names stay inside the output folder, stay short and distinct.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
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

namespace {

/// prefix + n in decimal. Not `"x" + std::to_string(n)`: GCC 12 -O2 warns there (-Wrestrict, PR105651).
std::string numbered(std::string_view prefix, long long n) {
  std::string text(prefix);
  text += std::to_string(n);
  return text;
}

/// The registry's naming as it was first written (a plain search from "-2" on every claim), kept as the
/// reference: the linear-time registry must give the same names for the same claims in the same order,
/// so that resuming works across versions.
class ReferenceRegistry {
 public:
  std::string claim(std::string_view name, std::string_view key) {
    const std::string wanted = sanitize_name(name);
    if (auto given = by_key_.find(std::string(key)); given != by_key_.end()) return given->second;
    std::string candidate = wanted;
    const auto dot = wanted.rfind('.');
    const bool has_ext = dot != std::string::npos && dot != 0;
    const std::string stem = has_ext ? wanted.substr(0, dot) : wanted;
    const std::string ext = has_ext ? wanted.substr(dot) : std::string();
    for (unsigned long long n = 2; taken_.contains(lower(candidate)); ++n) {
      const std::string suffix = numbered("-", static_cast<long long>(n));
      const std::size_t fixed = suffix.size() + ext.size();
      std::size_t end = std::min(stem.size(), fixed < max_name_bytes ? max_name_bytes - fixed : 0);
      while (end > 0 && end < stem.size() && (static_cast<unsigned char>(stem[end]) & 0xC0) == 0x80) --end;
      candidate = stem.substr(0, end) + suffix + ext;
    }
    taken_.insert(lower(candidate));
    by_key_.emplace(std::string(key), candidate);
    return candidate;
  }

 private:
  std::map<std::string, std::string> by_key_;
  std::set<std::string> taken_;
};

}  // namespace

TEST_CASE("NameRegistry gives the names the plain search from -2 gives, for any mix of claims", "[naming]") {
  // Wanted names that collide in every way: the same name, other letter case, names that look suffixed
  // ("a-2.jpg", "a-10.jpg"), no extension, and long names whose stem is cut differently when the suffix
  // grows from one digit to two (so "-9" and "-10" candidates share no prefix).
  std::string accents;
  for (int i = 0; i < 100; ++i) accents += "é";
  const std::vector<std::string> wanted = {
      "a.jpg", "A.JPG", "a-2.jpg", "a-3.jpg", "a-10.jpg", "a-11.JPG", "a", "a-2", "b.png", "b-2.png",
      std::string(196, 'x') + ".jpg",            // "-2" fits without cutting; "-10" cuts one byte
      std::string(196, 'x') + "y.jpg",           // the same cut stem as the one above
      std::string(195, 'x') + "-9.jpg",          // a literal name equal to a suffixed candidate above
      std::string(193, 'x') + "-10.jpg",
      accents + ".png",                          // cuts never split a UTF-8 character
      accents + "z.png", "..", "image", "image-2",
  };
  std::mt19937 random(20240611);
  NameRegistry fast;
  ReferenceRegistry reference;
  std::vector<std::string> keys;
  for (int i = 0; i < 3000; ++i) {
    // Mostly new keys; sometimes a key claimed before (it must get its earlier name back).
    std::string key;
    if (!keys.empty() && random() % 8 == 0) {
      key = keys[random() % keys.size()];
    } else {
      key = numbered("k", i);
      keys.push_back(key);
    }
    const std::string& name = wanted[random() % wanted.size()];
    const std::string expected = reference.claim(name, key);
    const std::string got = fast.claim(name, key);
    INFO("claim " << i << ": " << name);
    REQUIRE(got == expected);
    check_safe(got);
  }
}

TEST_CASE("NameRegistry plans a million claims of one name in linear time", "[naming][slow]") {
  // The plain search took 3 s for 10,000 claims of one name and 12 s for 20,000 (quadratic); a million
  // would take hours and blow the test timeout. Linear, it is about a second (Release).
  NameRegistry registry;
  constexpr int claims = 1'000'000;
  CHECK(registry.claim("img", "https://example.com/img?id=0") == "img");
  for (int i = 1; i < claims; ++i) {
    const std::string got = registry.claim("img", numbered("https://example.com/img?id=", i));
    if (got != numbered("img-", i + 1)) FAIL("claim " << i << " gave " << got);
  }
  CHECK(registry.claim("IMG", "one more") == numbered("IMG-", claims + 1));
  CHECK(registry.claim("img-5", "a literal suffixed name") == "img-5-2");
  CHECK(registry.claim("img", "https://example.com/img?id=41") == "img-42");
}

TEST_CASE("NameRegistry stays linear for long names that share a cut stem", "[naming]") {
  // 4,000 distinct 200-byte names that differ only in the last two bytes of their stem, which every
  // suffixed form cuts away: all their suffixed candidates are "<194 p>-<n>.jpg" (and shorter cuts for
  // more digits). Each name is claimed twice, so the n-th second claim needs "-<n+2>". Remembering the
  // next suffix per wanted name would still try n candidates there; remembering it per cut stem tries
  // each candidate once.
  std::string alphabet;
  for (char c = '!'; c <= '~'; ++c)
    if (c != '/' && c != '\\' && c != '.' && c != '-' && !(c >= 'A' && c <= 'Z')) alphabet += c;  // case folds
  NameRegistry registry;
  ReferenceRegistry reference;
  const std::string common(194, 'p');
  int n = 0;
  for (const char a : alphabet) {
    for (const char b : alphabet) {
      if (n == 4000) break;
      const std::string name = common + a + b + ".jpg";
      REQUIRE(name.size() == max_name_bytes);
      REQUIRE(registry.claim(name, numbered("first ", n)) == name);
      const std::string second = registry.claim(name, numbered("second ", n));
      const std::string suffix = numbered("-", n + 2);
      REQUIRE(second == common.substr(0, max_name_bytes - 4 - suffix.size()) + suffix + ".jpg");
      if (n < 300) {  // the reference agrees (it is quadratic here: only the start)
        CHECK(reference.claim(name, numbered("first ", n)) == name);
        CHECK(reference.claim(name, numbered("second ", n)) == second);
      }
      ++n;
    }
  }
  CHECK(n == 4000);
}

TEST_CASE("is_thumbnail_name recognises every name thumbnail_name and NameRegistry give", "[naming]") {
  NameRegistry registry;
  for (const std::string original : {"aqua.jpg", "a_thumbnail.jpg", "noext", "..", "x.tar.gz"}) {
    for (const ImageFormat format : {ImageFormat::jpeg, ImageFormat::png, ImageFormat::webp}) {
      for (const bool several : {false, true}) {
        const std::string name = thumbnail_name(original, Size{128, 96}, several, format);
        CHECK(is_thumbnail_name(name));
        CHECK(is_thumbnail_name(registry.claim(name, name + "1")));
        CHECK(is_thumbnail_name(registry.claim(name, name + "2")));  // "-2"
      }
    }
  }
  CHECK(is_thumbnail_name("a_thumbnail-2_thumbnail.jpg"));  // what a rerun into the input folder made
  CHECK(is_thumbnail_name("IMG_thumbnail_1024x768-12.webp"));
  for (const char* other : {"aqua.jpg", "thumbnail.jpg", "a_thumbnail", "a_thumbnail.heic", "a_thumbnail.JPG",
                            "a_thumbnails.jpg", "a_thumbnail_12x.jpg", "a_thumbnail_x12.jpg", "a_thumbnail_12x3y.png",
                            "a_thumbnail-1.jpg", "a_thumbnail-02.jpg", "a_thumbnail-.jpg", "a_thumbnail-2x.jpg",
                            "a_thumbnail.jpg.txt", ".pixflow.lock"})
    CHECK_FALSE(is_thumbnail_name(other));
}
