// redis:// URLs (parsed with libcurl's URL API) and queue names. See pixflow/queue/address.hpp.
#include "pixflow/queue/address.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <memory>
#include <optional>

#include "connection.hpp"

namespace pixflow::queue {
namespace {

constexpr std::size_t kMaxQueueName = 100;

}  // namespace

std::string RedisAddress::to_string() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  std::string text = "redis://";
  if (!user.empty()) text += user + "@";
  text += ipv6 ? "[" + host + "]" : host;
  return text + ":" + std::to_string(port) + "/" + std::to_string(db);
}

tasks::Expected<RedisAddress> parse_redis_url(std::string_view url) {
  const auto bad = [](const std::string& why) { return tasks::Error{"invalid redis url: " + why}; };
  const std::string text(url);
  if (text.starts_with("rediss://")) return bad("tls (rediss://) is not supported");
  if (!text.starts_with("redis://")) return bad("expected redis://[[user]:password@]host[:port][/db], got \"" + text + "\"");
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> u(curl_url(), &curl_url_cleanup);
  if (!u) return bad("out of memory");
  if (curl_url_set(u.get(), CURLUPART_URL, text.c_str(), CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
    return bad("cannot parse \"" + text + "\"");
  const auto part = [&](CURLUPart which, unsigned flags) -> std::optional<std::string> {
    char* value = nullptr;
    if (curl_url_get(u.get(), which, &value, flags) != CURLUE_OK || value == nullptr) return std::nullopt;
    std::string s(value);
    curl_free(value);
    return s;
  };
  RedisAddress address;
  auto host = part(CURLUPART_HOST, 0);
  if (!host || host->empty()) return bad("no host in \"" + text + "\"");
  if (host->size() > 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  address.host = *host;
  if (auto port = part(CURLUPART_PORT, 0)) {
    const std::uint64_t p = detail::to_u64(*port);
    if (p < 1 || p > 65535) return bad("bad port " + *port);
    address.port = static_cast<int>(p);
  }
  address.user = part(CURLUPART_USER, CURLU_URLDECODE).value_or("");
  address.password = part(CURLUPART_PASSWORD, CURLU_URLDECODE).value_or("");
  if (part(CURLUPART_QUERY, 0) || part(CURLUPART_FRAGMENT, 0)) return bad("unexpected query or fragment in \"" + text + "\"");
  const std::string path = part(CURLUPART_PATH, 0).value_or("/");
  if (path != "/" && !path.empty()) {
    const std::string db = path.substr(1);
    const bool digits = !db.empty() && db.size() <= 5 && std::all_of(db.begin(), db.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits) return bad("bad database number \"" + db + "\"");
    address.db = static_cast<int>(detail::to_u64(db));
  }
  return address;
}

bool valid_queue_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxQueueName) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

}  // namespace pixflow::queue
