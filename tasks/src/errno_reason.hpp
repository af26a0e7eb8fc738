#pragma once
// Internal to pixflow::tasks: the text of an errno value as report reasons spell it.
#include <string>
#include <system_error>

namespace pixflow::tasks::detail {

/// strerror's text in lower case, as report reasons are ("no such file or directory").
inline std::string errno_reason(int error) {
  std::string text = std::generic_category().message(error);
  for (char& c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return text;
}

}  // namespace pixflow::tasks::detail
