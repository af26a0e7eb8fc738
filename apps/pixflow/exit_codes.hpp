#pragma once
// The exit codes of every pixflow command, in one place (the README's table says the same).

namespace pixflow::cli {

enum ExitCode : int {
  exit_ok = 0,               ///< every item done (or skipped)
  exit_items_failed = 1,     ///< some items failed, a listing page failed, or the run was stopped
  exit_usage = 2,            ///< usage, config or output-folder error: nothing ran
  exit_source_unusable = 3,  ///< the source (listing, URL file, folder, Redis) cannot be used
};

}  // namespace pixflow::cli
