// libFuzzer target: any bytes parsed as JSON (without exceptions), then through parse_config. It must
// return a config or throw ConfigError with a message (anything else escaping is a bug), and a config
// it returns must survive the documented round trip parse_config(to_json(c)) == c. Built by
// tests/fuzz/CMakeLists.txt, run by scripts/fuzz.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "pixflow/tasks/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const nlohmann::json document = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return 0;
  try {
    const pixflow::tasks::PipelineConfig config = pixflow::tasks::parse_config(document);
    if (!(pixflow::tasks::parse_config(pixflow::tasks::to_json(config)) == config)) std::abort();
  } catch (const pixflow::tasks::ConfigError& e) {
    if (e.message().empty()) std::abort();
  }
  return 0;
}
