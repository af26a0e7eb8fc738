#include "pixflow/tasks/naming.hpp"

#include <curl/curl.h>

#include <climits>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

namespace pixflow::tasks {

namespace {

constexpr std::string_view fallback_name = "image";

struct CurlFree {
  void operator()(char* p) const { curl_free(p); }
};
struct UrlCleanup {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
using CurlString = std::unique_ptr<char, CurlFree>;

/// The path of `url` as written (still percent-encoded). libcurl first; for what it refuses (a space, a
/// relative reference), the text before '?' / '#' with any "scheme://authority" removed.
std::string raw_path(std::string_view url) {
  const std::string text(url);
  std::unique_ptr<CURLU, UrlCleanup> handle(curl_url());
  if (handle && text.find('\0') == std::string::npos &&
      curl_url_set(handle.get(), CURLUPART_URL, text.c_str(), CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK) {
    char* path = nullptr;
    if (curl_url_get(handle.get(), CURLUPART_PATH, &path, 0) == CURLUE_OK && path != nullptr) {
      CurlString owned(path);
      return std::string(path);
    }
  }
  std::string_view rest = url.substr(0, url.find_first_of("?#"));
  if (const auto scheme = rest.find("://"); scheme != std::string_view::npos) {
    rest.remove_prefix(scheme + 3);
    const auto slash = rest.find('/');
    rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  }
  return std::string(rest);
}

std::string percent_decode(std::string_view text) {
  if (text.size() > static_cast<std::size_t>(INT_MAX)) return std::string(text);
  int length = 0;
  // Since libcurl 7.82 the handle argument is ignored; it decodes %00 too (sanitize_name handles it).
  CurlString decoded(curl_easy_unescape(nullptr, text.data(), static_cast<int>(text.size()), &length));
  if (!decoded || length < 0) return std::string(text);
  return std::string(decoded.get(), static_cast<std::size_t>(length));
}

/// Length of the valid UTF-8 sequence starting at s[i], or 0 when invalid (overlong, surrogate, > U+10FFFF,
/// truncated).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = byte(i);
  std::size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (i + length > s.size()) return 0;
  if (byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (std::size_t k = 2; k < length; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return length;
}

/// The longest prefix of `s` (valid UTF-8) of at most `limit` bytes that ends on a character boundary.
std::string_view utf8_prefix(std::string_view s, std::size_t limit) {
  if (s.size() <= limit) return s;
  std::size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end);
}

/// Splits at the last dot that is not the first character: {"aqua", ".jpg"}, {"archive.tar", ".gz"}.
std::pair<std::string_view, std::string_view> split_extension(std::string_view name) {
  const auto dot = name.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return {name, {}};
  return {name.substr(0, dot), name.substr(dot)};
}

/// "<stem><suffix><ext>" within max_name_bytes, shortening the stem (never the suffix or extension).
std::string join_within_limit(std::string_view stem, std::string_view suffix, std::string_view ext) {
  const std::size_t fixed = suffix.size() + ext.size();
  const std::size_t room = fixed < max_name_bytes ? max_name_bytes - fixed : 0;
  std::string result(utf8_prefix(stem, room));
  result += suffix;
  result += ext;
  return result;
}

std::string ascii_lower(std::string_view s) {
  std::string lower(s);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower;
}

}  // namespace

std::string sanitize_name(std::string_view name) {
  std::string clean;
  clean.reserve(name.size());
  for (std::size_t i = 0; i < name.size();) {
    const auto c = static_cast<unsigned char>(name[i]);
    const std::size_t length = utf8_sequence(name, i);
    if (length == 0 || c < 0x20 || c == 0x7F || c == '/' || c == '\\') {
      clean += '_';
      i += length == 0 ? 1 : length;
      continue;
    }
    // C1 control characters U+0080..U+009F, encoded C2 80..C2 9F.
    if (length == 2 && c == 0xC2 && static_cast<unsigned char>(name[i + 1]) <= 0x9F) {
      clean += '_';
      i += 2;
      continue;
    }
    clean.append(name.substr(i, length));
    i += length;
  }
  const auto first = clean.find_first_not_of('.');
  clean.erase(0, first == std::string::npos ? clean.size() : first);
  if (clean.empty()) return std::string(fallback_name);
  if (clean.size() <= max_name_bytes) return clean;
  auto [stem, ext] = split_extension(clean);
  if (ext.size() > 16) {  // not an extension worth keeping: cut the whole name
    stem = clean;
    ext = {};
  }
  return join_within_limit(stem, {}, ext);
}

std::string name_from_url(std::string_view url) {
  std::string path = raw_path(url);
  while (!path.empty() && path.back() == '/') path.pop_back();
  const auto slash = path.rfind('/');
  const std::string segment = slash == std::string::npos ? path : path.substr(slash + 1);
  if (segment.empty()) return std::string(fallback_name);
  return sanitize_name(percent_decode(segment));
}

std::string thumbnail_name(std::string_view original_name, Size box, bool several_sizes, ImageFormat format) {
  if (format == ImageFormat::same || format == ImageFormat::unknown)
    throw std::invalid_argument("thumbnail_name: the output format must be resolved first");
  const std::string clean = sanitize_name(original_name);
  const std::string stem(split_extension(clean).first);
  const std::string suffix = several_sizes ? "_thumbnail_" + to_string(box) : std::string("_thumbnail");
  return join_within_limit(stem, suffix, extension_of(format));
}

namespace {

/// Removes a leading run of ASCII digits from `text`; false when there is none.
bool consume_digits(std::string_view& text) {
  std::size_t n = 0;
  while (n < text.size() && text[n] >= '0' && text[n] <= '9') ++n;
  text.remove_prefix(n);
  return n > 0;
}

/// True for "_thumbnail" or "_thumbnail_<W>x<H>" ending `text`.
bool ends_with_thumbnail_suffix(std::string_view text) {
  constexpr std::string_view marker = "_thumbnail";
  if (text.ends_with(marker)) return true;
  const auto at = text.rfind("_thumbnail_");
  if (at == std::string_view::npos) return false;
  std::string_view box = text.substr(at + marker.size() + 1);  // "<W>x<H>"
  return consume_digits(box) && !box.empty() && box.front() == 'x' && (box.remove_prefix(1), consume_digits(box)) &&
         box.empty();
}

}  // namespace

bool is_thumbnail_name(std::string_view name) {
  const auto [rest, ext] = split_extension(name);
  bool known_extension = false;
  for (const ImageFormat format : {ImageFormat::jpeg, ImageFormat::png, ImageFormat::webp, ImageFormat::gif,
                                   ImageFormat::bmp, ImageFormat::tiff})
    known_extension = known_extension || ext == extension_of(format);
  if (!known_extension) return false;
  if (ends_with_thumbnail_suffix(rest)) return true;
  // NameRegistry's "-<n>" (n >= 2, no leading zero) after the thumbnail suffix.
  const auto dash = rest.rfind('-');
  if (dash == std::string_view::npos) return false;
  std::string_view number = rest.substr(dash + 1);
  if (number.empty() || number.front() == '0' || number == "1") return false;
  std::string_view digits = number;
  return consume_digits(digits) && digits.empty() && ends_with_thumbnail_suffix(rest.substr(0, dash));
}

std::size_t NameRegistry::FoldedHash::operator()(std::string_view name) const noexcept {
  // FNV-1a over the ASCII-lower-cased bytes, then a final mix so the low bits (the bucket) depend on all.
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : name) {
    h ^= static_cast<unsigned char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 32;
  return static_cast<std::size_t>(h);
}

bool NameRegistry::FoldedEqual::operator()(std::string_view a, std::string_view b) const noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string NameRegistry::claim(std::string_view name, std::string_view key) {
  const std::string wanted = sanitize_name(name);
  const std::lock_guard lock(mutex_);
  if (auto given = by_key_.find(key); given != by_key_.end()) return given->second;
  const std::string candidate = next_free(wanted);
  // by_key_'s nodes never move: taken_ views the name stored there.
  const auto stored = by_key_.emplace(std::string(key), candidate).first;
  taken_.insert(std::string_view(stored->second));
  return candidate;
}

std::string NameRegistry::next_free(const std::string& wanted) {
  if (!taken_.contains(wanted)) return wanted;
  // The candidates are wanted, then "<stem>-2<ext>", "-3", ... in that order; the first one not taken
  // wins. The stem is cut so the name fits max_name_bytes, which depends only on how many digits the
  // suffix has: the candidates with d digits form one run, "<cut stem>-<n><ext>" for n in [from, to).
  // Names are only ever added, so the candidates of a run that were found taken stay taken: each run
  // remembers where its search stopped (next_suffix_, keyed by the run's case-folded cut stem, extension
  // and digit count), and no candidate is tried twice. The result is the one the plain search from 2
  // gives; each claim costs amortised O(1) lookups however many claims share a name.
  const auto [stem, ext] = split_extension(wanted);
  unsigned long long from = 2;
  unsigned long long to = 10;
  for (std::size_t digits = 1;; ++digits, from = to, to *= 10) {
    const std::size_t fixed = digits + 1 + ext.size();
    const std::string_view cut = utf8_prefix(stem, fixed < max_name_bytes ? max_name_bytes - fixed : 0);
    std::string run_key = ascii_lower(cut);
    run_key += '\0';  // not in a sanitized name
    run_key += ascii_lower(ext);
    run_key += '\0';
    run_key += std::to_string(digits);
    auto [next, inserted] = next_suffix_.try_emplace(std::move(run_key), from);
    for (unsigned long long& n = next->second; n < to; ++n) {
      std::string suffix = std::to_string(n);
      suffix.insert(suffix.begin(), '-');  // not "-" + to_string(n): GCC 12 -O2 warns (-Wrestrict, PR105651)
      std::string candidate = join_within_limit(stem, suffix, ext);
      if (!taken_.contains(candidate)) {
        ++n;
        return candidate;
      }
    }
    if (digits == 19) break;  // 10^19 candidates taken: cannot happen with memory to hold them
  }
  throw std::length_error("NameRegistry: no free name");
}

}  // namespace pixflow::tasks
