// OUT/index.html (index_page.hpp): thumbnails in input order linked to their originals, failures and
// skips with their reasons. Every piece of input goes through html() (text, attributes) and through
// encode() (links), so nothing from a URL, a path or a reason can become markup.
#include "pixflow/tasks/index_page.hpp"

#include <array>
#include <cstdint>
#include <fstream>
#include <span>
#include <system_error>

#include "pixflow/tasks/write.hpp"

namespace pixflow::tasks {

namespace {

/// The page's second line: how write_index_page knows a page it may replace.
constexpr std::string_view kMarker = "<!-- pixflow index page: replaced by every pixflow --index run into this folder -->";

/// `text` escaped for HTML text and quoted attribute values: & < > " ' as entities; C0 control
/// characters (but tab, newline) and DEL, which HTML does not allow, as U+FFFD.
void html(std::string& out, std::string_view text) {
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      case '\t':
      case '\n': out += c; break;
      default:
        if (byte < 0x20 || byte == 0x7F) out += "\xEF\xBF\xBD";
        else out += c;
        break;
    }
  }
}

/// Percent-encodes every byte but the unreserved ones (A-Z a-z 0-9 - . _ ~) and those in `keep`.
std::string encode(std::string_view text, std::string_view keep = {}) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                            c == '.' || c == '_' || c == '~';
    if (unreserved || keep.find(c) != std::string_view::npos) {
      out += c;
    } else {
      out += '%';
      out += hex[byte >> 4];
      out += hex[byte & 0xF];
    }
  }
  return out;
}

bool starts_with_folded(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

/// A link to an http(s) URL: its bytes kept but for those that cannot stand in a URL (controls, space,
/// non-ASCII, quotes, angle brackets, backquote), percent-encoded; "" for any other scheme.
std::string url_link(std::string_view url) {
  if (!starts_with_folded(url, "http://") && !starts_with_folded(url, "https://")) return {};
  std::string out;
  for (const char c : url) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte >= 0x7F || c == '"' || c == '\'' || c == '<' || c == '>' || c == '`' || c == '\\')
      out += encode(std::string_view(&c, 1));
    else
      out += c;
  }
  return out;
}

/// A link to a local file: file:// and its absolute path, each byte but '/' and the unreserved ones
/// percent-encoded.
std::string file_link(const std::string& path) {
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  if (ec) absolute = path;
  return "file://" + encode(absolute.lexically_normal().string(), "/");
}

/// Where an item's original is: its saved file in OUT, else its URL or local file; "" when it must not
/// be linked (a URL of another scheme).
std::string original_link(const ItemReport& item, bool originals_saved) {
  if (originals_saved && !item.outputs.empty()) return encode(item.outputs.front());  // relative: in OUT
  if (item.is_path) return file_link(item.input);
  return url_link(item.input);
}

/// What the item is called on the page: its original's name in OUT, else its file name, else its URL.
std::string shown_name(const ItemReport& item, bool originals_saved) {
  if (originals_saved && !item.outputs.empty()) return item.outputs.front();
  if (item.is_path) {
    const std::string name = std::filesystem::path(item.input).filename().string();
    if (!name.empty()) return name;
  }
  return item.input;
}

/// The item's input, linked when it may be.
void linked_input(std::string& out, const ItemReport& item) {
  const std::string link = item.is_path ? file_link(item.input) : url_link(item.input);
  if (link.empty()) {
    html(out, item.input);
    return;
  }
  out += "<a href=\"";
  html(out, link);
  out += "\">";
  html(out, item.input);
  out += "</a>";
}

bool has_thumbnail(const ItemReport& item, bool originals_saved) {
  return item.outputs.size() > (originals_saved ? 1u : 0u) &&
         (item.status == ItemStatus::ok || item.status == ItemStatus::skipped);
}

void table(std::string& out, std::string_view heading, const std::vector<std::pair<std::size_t, const ItemReport*>>& rows) {
  if (rows.empty()) return;
  out += "<h2>";
  out += heading;
  out += " (" + std::to_string(rows.size()) + ")</h2>\n";
  out += "<table><thead><tr><th>#</th><th>item</th><th>stage</th><th>reason</th></tr></thead><tbody>\n";
  for (const auto& [number, item] : rows) {
    out += "<tr><td>" + std::to_string(number) + "</td><td>";
    linked_input(out, *item);
    out += "</td><td>";
    html(out, item->stage);
    out += "</td><td>";
    html(out, item->reason);
    if (!item->detail.empty()) {
      out += "<br><small>";
      html(out, item->detail);
      out += "</small>";
    }
    out += "</td></tr>\n";
  }
  out += "</tbody></table>\n";
}

constexpr std::string_view kStyle =
    "body{font:14px/1.4 system-ui,sans-serif;margin:16px;background:#f3f3f3;color:#222}"
    "h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 4px}"
    ".summary{color:#555;margin:0 0 16px}"
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:12px;list-style:none;"
    "margin:0;padding:0}"
    ".grid li{background:#fff;border-radius:6px;padding:8px;box-shadow:0 1px 2px rgba(0,0,0,.15);text-align:center}"
    ".grid img{display:block;margin:0 auto;max-width:100%;max-height:256px;height:auto}"
    ".grid .name{display:block;margin-top:6px;font-size:12px;overflow-wrap:anywhere;color:#333}"
    "table{border-collapse:collapse;background:#fff}"
    "td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top;overflow-wrap:anywhere}";

}  // namespace

std::string index_page_html(const std::vector<ItemReport>& items, const IndexPageOptions& options) {
  const bool saved = options.originals_saved;
  std::size_t shown = 0;
  std::size_t done = 0;
  std::vector<std::pair<std::size_t, const ItemReport*>> failed;
  std::vector<std::pair<std::size_t, const ItemReport*>> skipped;
  std::string grid;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const ItemReport& item = items[i];
    if (item.status == ItemStatus::ok) ++done;
    if (has_thumbnail(item, saved)) {
      ++shown;
      const std::string name = shown_name(item, saved);
      const std::string link = original_link(item, saved);
      grid += "<li id=\"item-" + std::to_string(i + 1) + "\">";
      if (!link.empty()) {
        grid += "<a href=\"";
        html(grid, link);
        grid += "\">";
      }
      grid += "<img src=\"";
      html(grid, encode(item.outputs[saved ? 1 : 0]));
      grid += "\" alt=\"";
      html(grid, name);
      grid += "\">";
      if (!link.empty()) grid += "</a>";
      grid += "<span class=\"name\" title=\"";
      html(grid, item.input);
      grid += "\">";
      html(grid, name);
      grid += "</span></li>\n";
    } else if (item.status == ItemStatus::skipped) {
      skipped.emplace_back(i + 1, &item);
    } else if (item.status != ItemStatus::ok) {
      failed.emplace_back(i + 1, &item);  // failed, or never finished (pending)
    }
  }

  std::string page;
  page.reserve(grid.size() + 4096);
  page += "<!DOCTYPE html>\n";
  page += kMarker;
  page += "\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  page += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>";
  html(page, options.title);
  page += "</title>\n<style>";
  page += kStyle;
  page += "</style>\n</head>\n<body>\n<h1>";
  html(page, options.title);
  page += "</h1>\n<p class=\"summary\">" + std::to_string(items.size()) + " items: " + std::to_string(done) +
          " done, " + std::to_string(failed.size()) + " failed, " +
          std::to_string(items.size() - done - failed.size()) + " skipped; " + std::to_string(shown) +
          " thumbnails</p>\n";
  if (!grid.empty()) page += "<ol class=\"grid\">\n" + grid + "</ol>\n";
  table(page, "Failed", failed);
  table(page, "Skipped", skipped);
  page += "</body>\n</html>\n";
  return page;
}

Expected<std::filesystem::path> write_index_page(const std::filesystem::path& out, const std::vector<ItemReport>& items,
                                                 const IndexPageOptions& options) {
  const std::filesystem::path target = out / index_page_name;
  std::error_code ec;
  if (std::filesystem::is_regular_file(std::filesystem::symlink_status(target, ec))) {
    // Only a page pixflow wrote is replaced: its marker is on the second line.
    std::array<char, 512> head{};
    std::ifstream in(target, std::ios::binary);
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    const std::string_view start(head.data(), static_cast<std::size_t>(in.gcount()));
    if (start.find(kMarker) == std::string_view::npos)
      return Error{"cannot write index.html: a file not written by pixflow has that name", target.string()};
  }
  const std::string page = index_page_html(items, options);
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(page.data());  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
  return write_file_atomically(out, index_page_name, std::span<const std::uint8_t>(bytes, page.size()));
}

}  // namespace pixflow::tasks
