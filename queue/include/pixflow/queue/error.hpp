#pragma once
/// @file
/// QueueError: a Redis problem that is not about one item (unreachable, login refused, bad reply).
///
/// @code
/// try {
///   pixflow::queue::WorkQueue queue(address, "holiday");
/// } catch (const pixflow::queue::QueueError& e) {
///   if (e.transient()) { /* Redis is away: try again later */ }
///   std::cerr << e.what() << '\n';   // "cannot connect to redis://127.0.0.1:6379/0: Connection refused"
/// }
/// @endcode
#include <stdexcept>
#include <string>

namespace pixflow::queue {

/// A Redis problem that is not about one item.
class QueueError : public std::runtime_error {
 public:
  enum class Kind {
    unreachable,  ///< cannot connect, connection lost, timed out, server loading or busy: retry later
    rejected,     ///< authentication or permission refused (AUTH, NOAUTH, WRONGPASS, NOPERM, SELECT)
    protocol,     ///< an unexpected reply or an error reply (wrong Redis version, wrong key type)
  };
  QueueError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  [[nodiscard]] Kind kind() const noexcept { return kind_; }
  /// True for Kind::unreachable: the same command may work after reconnecting.
  [[nodiscard]] bool transient() const noexcept { return kind_ == Kind::unreachable; }

 private:
  Kind kind_;
};

}  // namespace pixflow::queue
