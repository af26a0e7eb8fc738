#pragma once
/// @file
/// Output file names from hostile input: URLs and API fields choose nothing outside
/// the output folder, no hidden files, no collisions.
///
/// @code
/// using namespace pixflow::tasks;
/// NameRegistry names;                                                    // one per output folder
/// std::string url = "https://i.imgur.com/aqua.jpg?maxwidth=640";
/// std::string original = name_from_url(url);                            // "aqua.jpg"
/// std::string file = thumbnail_name(original, Size{128, 128}, false, ImageFormat::jpeg);
///                                                                        // "aqua_thumbnail.jpg"
/// std::string unique = names.claim(file, url);                           // "aqua_thumbnail.jpg", or
///                                                                        // "aqua_thumbnail-2.jpg" if taken
/// @endcode
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "pixflow/tasks/image_types.hpp"

namespace pixflow::tasks {

/// Longest file name sanitize_name returns, in bytes (most filesystems allow 255).
inline constexpr std::size_t max_name_bytes = 200;

/// The last non-empty segment of the URL's path (no query, no fragment), percent-decoded, then made safe
/// with sanitize_name. Parsed with libcurl's URL API (the segment is decoded after splitting, so an
/// encoded "%2F" is part of the name, not a folder). A URL without a path segment gives "image".
std::string name_from_url(std::string_view url);

/// A safe file name: '/', '\\', NUL, control characters and invalid UTF-8 bytes become '_'; leading dots
/// are stripped (no hidden files, no "." or "..", never the temporary prefix); at most max_name_bytes,
/// cut in the stem so the extension stays and no UTF-8 sequence is split; never empty ("image").
std::string sanitize_name(std::string_view name);

/// "<stem>_thumbnail<ext>" for one size, "<stem>_thumbnail_<W>x<H><ext>" when several sizes are asked,
/// ext from `format` (jpeg/png/webp/...; `same` must be resolved first: std::invalid_argument). The stem
/// is the original name up to its last dot, sanitized and shortened so the result fits max_name_bytes.
/// As in the seed scripts: "aqua.jpg" -> "aqua_thumbnail.jpg".
std::string thumbnail_name(std::string_view original_name, Size box, bool several_sizes, ImageFormat format);

/// True for the names pixflow gives thumbnails: what thumbnail_name returns ("<stem>_thumbnail<ext>",
/// "<stem>_thumbnail_<W>x<H><ext>"), also with the "-<n>" a NameRegistry adds on a collision
/// ("<stem>_thumbnail-2<ext>"), <ext> being an extension pixflow writes (.jpg .png .webp .gif .bmp
/// .tif). What a folder source uses to leave out pixflow's own outputs when OUT is the input folder.
/// @code
/// is_thumbnail_name("aqua_thumbnail.jpg");          // true
/// is_thumbnail_name("aqua_thumbnail_128x96-3.png"); // true
/// is_thumbnail_name("aqua.jpg");                    // false
/// @endcode
bool is_thumbnail_name(std::string_view name);

/// Hands out distinct names within one output folder, deterministically for a given order of claims: the
/// first claim of a name gets it as is; later claims of the same name by other keys get "<stem>-2<ext>",
/// "-3"... (the first one not taken). Names compare case-insensitively (ASCII), as on case-insensitive
/// filesystems. Claiming again with the same key (e.g. the same URL and size) returns the name given
/// before. Thread-safe.
/// Claim the final file names (after thumbnail_name), so that "a.jpg" and "a.png" thumbnailed to the same
/// format do not collide.
///
/// Cost: amortised O(1) hash lookups per claim, however many claims share one name (each run of
/// suffixes remembers where its search stopped; 1,000,000 claims of "a.jpg" take about a second).
/// Memory: one node per claim holding the key and the name given, one view of that name in the set of
/// taken names, and one small entry per name that was ever suffixed.
class NameRegistry {
 public:
  /// A name, unique in this registry, for `name` (sanitized first) claimed by `key`.
  std::string claim(std::string_view name, std::string_view key);

 private:
  /// Hash and equality of names folded to ASCII lower case, without making a lower-case copy.
  struct FoldedHash {
    std::size_t operator()(std::string_view name) const noexcept;
  };
  struct FoldedEqual {
    bool operator()(std::string_view a, std::string_view b) const noexcept;
  };
  /// Hash of keys, usable with a string_view lookup (no copy of the key to look it up).
  struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view key) const noexcept { return std::hash<std::string_view>{}(key); }
  };

  /// The first of wanted, "<stem>-2<ext>", "-3"... that is not taken (the mutex held).
  std::string next_free(const std::string& wanted);

  std::mutex mutex_;
  std::unordered_map<std::string, std::string, KeyHash, std::equal_to<>> by_key_;  // key -> name given
  std::unordered_set<std::string_view, FoldedHash, FoldedEqual> taken_;  // views of by_key_'s names
  std::unordered_map<std::string, unsigned long long> next_suffix_;     // run of suffixes -> next to try
};

}  // namespace pixflow::tasks
