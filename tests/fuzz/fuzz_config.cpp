// libFuzzer target: any bytes through the config reader. First as load_config reads a file: parse_json
// (size, depth and one-value caps) then parse_config; then as a caller might: nlohmann's own parser (no
// depth cap) then parse_config, whose error messages must not recurse on a deep value. Each must return
// a config or throw ConfigError with a message (anything else escaping is a bug), and a config it returns
// must survive the documented round trip parse_config(to_json(c)) == c. Built by
// tests/fuzz/CMakeLists.txt, run by scripts/fuzz.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "pixflow/tasks/config.hpp"
#include "pixflow/tasks/json.hpp"

namespace {

void check(const nlohmann::json& document) {
  try {
    const pixflow::tasks::PipelineConfig config = pixflow::tasks::parse_config(document);
    if (!(pixflow::tasks::parse_config(pixflow::tasks::to_json(config)) == config)) std::abort();
  } catch (const pixflow::tasks::ConfigError& e) {
    if (e.message().empty()) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const pixflow::tasks::JsonResult bounded = pixflow::tasks::parse_json(text);
  if (bounded) {
    check(*bounded);
  } else {
    const pixflow::tasks::JsonError& e = bounded.error();
    if (e.message.empty()) std::abort();
    if (e.offset && (*e.offset > size || e.line == 0 || e.column == 0)) std::abort();
  }
  const nlohmann::json document = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (!document.is_discarded()) check(document);
  return 0;
}
