#include "pixflow/tasks/imgur.hpp"

#include "pixflow/tasks/json.hpp"

#include <algorithm>
#include <cctype>
#include <memory>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

namespace pixflow::tasks {

namespace {

using json = nlohmann::json;

/// RFC 3986 percent-encoding of everything but the unreserved characters.
std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4U];
      out += kHex[c & 0x0FU];
    }
  }
  return out;
}

std::string api_base(const GalleryQuery& query) {
  std::string base = query.api;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base;
}

/// A string member of an object, or "" when absent or not a string.
std::string string_member(const json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

/// The `data` array of an Imgur envelope, or the listing's error.
Expected<json> envelope_data(std::string_view text) {
  // No size cap here (the download's max_bytes bounded the body); the depth cap keeps every later walk
  // (dump() below, copies) off deep recursion.
  JsonResult parsed = parse_json(text, {.max_bytes = 0, .max_depth = kJsonMaxDepth});
  if (!parsed) return Error{"malformed listing: " + parsed.error().what()};
  json document = std::move(parsed).value();
  if (!document.is_object()) return Error{"malformed listing: not a json object"};

  const auto success = document.find("success");
  if (success != document.end() && success->is_boolean() && !success->get<bool>()) {
    std::string reason = "listing error";
    if (const auto status = document.find("status"); status != document.end() && status->is_number_integer())
      reason += " " + std::to_string(status->get<long long>());
    std::string message;
    if (const auto data = document.find("data"); data != document.end() && data->is_object()) {
      if (const auto error = data->find("error"); error != data->end()) {
        if (error->is_string()) message = error->get<std::string>();
        else if (error->is_object()) message = string_member(*error, "message");  // {"code":..,"message":..}
        if (message.empty()) message = error->dump();
      }
    }
    return Error{message.empty() ? reason : reason + ": " + message};
  }

  const auto data = document.find("data");
  if (data == document.end() || !data->is_array()) return Error{"malformed listing: data is not an array"};
  return std::move(*data);
}

/// Appends `item` (an image object) to `out` when it has a link.
void add_image(const json& item, std::vector<ListedImage>& out) {
  if (!item.is_object()) return;
  ListedImage image;
  image.link = string_member(item, "link");
  if (image.link.empty()) return;
  image.id = string_member(item, "id");
  image.mime = string_member(item, "type");
  if (const auto size = item.find("size"); size != item.end() && size->is_number_unsigned()) image.size = size->get<std::uint64_t>();
  if (!image.mime.empty() && image.mime.rfind("image/", 0) != 0) image.skip_reason = "not an image (" + image.mime + ")";
  out.push_back(std::move(image));
}

bool is_album(const json& item) {
  const auto flag = item.find("is_album");
  if (flag != item.end()) return flag->is_boolean() && flag->get<bool>();
  const auto images = item.find("images");  // some answers omit is_album but carry images[]
  return images != item.end() && images->is_array();
}

}  // namespace

std::string gallery_page_url(const GalleryQuery& query, int page) {
  return api_base(query) + "/3/gallery/" + percent_encode(query.section) + "/" + percent_encode(query.sort) + "/" +
         std::to_string(page) + ".json";
}

std::string album_images_url(const GalleryQuery& query, std::string_view album_id) {
  return api_base(query) + "/3/album/" + percent_encode(album_id) + "/images.json";
}

std::vector<std::string> imgur_headers(const GalleryQuery& query) {
  if (query.client_id.empty()) return {};
  return {"Authorization: Client-ID " + query.client_id};
}

bool requires_client_id(std::string_view api) {
  const std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> url(curl_url(), &curl_url_cleanup);
  if (!url) return false;
  const std::string text(api);
  if (curl_url_set(url.get(), CURLUPART_URL, text.c_str(), CURLU_DEFAULT_SCHEME) != CURLUE_OK) return false;
  char* raw_host = nullptr;
  if (curl_url_get(url.get(), CURLUPART_HOST, &raw_host, 0) != CURLUE_OK || raw_host == nullptr) return false;
  std::string host(raw_host);
  curl_free(raw_host);
  std::transform(host.begin(), host.end(), host.begin(),
                 [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
  if (!host.empty() && host.back() == '.') host.pop_back();  // "imgur.com." is the same host
  constexpr std::string_view kDomain = "imgur.com";
  if (host == kDomain) return true;
  return host.size() > kDomain.size() && host.ends_with(kDomain) && host[host.size() - kDomain.size() - 1] == '.';
}

Expected<GalleryPage> parse_gallery_page(std::string_view text) {
  auto data = envelope_data(text);
  if (!data) return std::move(data).error();
  GalleryPage page;
  page.end = data->empty();
  for (const json& item : *data) {
    if (!item.is_object()) continue;
    if (!is_album(item)) {
      add_image(item, page.images);
      continue;
    }
    if (const auto images = item.find("images"); images != item.end() && images->is_array()) {
      for (const json& image : *images) add_image(image, page.images);
      continue;
    }
    const std::string id = string_member(item, "id");
    const auto count = item.find("images_count");
    const bool empty_album = count != item.end() && count->is_number() && count->get<double>() <= 0;
    if (!id.empty() && !empty_album) {
      page.albums_to_expand.push_back(id);
      page.album_positions.push_back(page.images.size());
    }
  }
  return page;
}

Expected<std::vector<ListedImage>> parse_album_images(std::string_view text) {
  auto data = envelope_data(text);
  if (!data) return std::move(data).error();
  std::vector<ListedImage> images;
  for (const json& item : *data) add_image(item, images);
  return images;
}

bool LinkDeduplicator::first_time(std::string_view link) {
  const std::lock_guard lock(mutex_);
  return seen_.emplace(link).second;
}

std::size_t LinkDeduplicator::size() const {
  const std::lock_guard lock(mutex_);
  return seen_.size();
}

}  // namespace pixflow::tasks
