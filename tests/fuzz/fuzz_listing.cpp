// libFuzzer target: any bytes through the Imgur listing parsers (a gallery page, an album's image
// list). They must return a value or an error, never crash, hang or leak; a value keeps the documented
// invariants (every listed image has a link; skipped ones say why). Built by tests/fuzz/CMakeLists.txt,
// run by scripts/fuzz.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "pixflow/tasks/imgur.hpp"

namespace {

void check(const std::vector<pixflow::tasks::ListedImage>& images) {
  for (const auto& image : images) {
    if (image.link.empty()) std::abort();  // "items without a link are ignored"
    if (!image.skip_reason.empty() && image.skip_reason.rfind("not an image (", 0) != 0) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto page = pixflow::tasks::parse_gallery_page(text)) {
    check(page->images);
    for (const auto& album : page->albums_to_expand)
      if (album.empty()) std::abort();
    if (page->end && !(page->images.empty() && page->albums_to_expand.empty())) std::abort();
  } else if (page.error().reason.empty()) {
    std::abort();
  }
  if (auto album = pixflow::tasks::parse_album_images(text)) {
    check(*album);
  } else if (album.error().reason.empty()) {
    std::abort();
  }
  return 0;
}
