#include "util/error.hpp"

namespace podrelay {
namespace {

class Category final : public std::error_category {
 public:
  char const* name() const noexcept override { return "podrelay"; }
  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::tls_file_unusable: return "TLS file unusable";
      case errc::resolve_failed: return "cannot resolve host";
      case errc::connect_failed: return "cannot connect";
      case errc::tls_handshake_failed: return "TLS handshake failed";
      case errc::handshake_failed: return "Redis handshake failed";
      case errc::auth_failed: return "Redis refused the handshake";
      case errc::not_master: return "not a master";
      case errc::protocol_error: return "protocol error";
      case errc::io_failed: return "I/O failed";
      case errc::connection_lost: return "connection lost";
      case errc::sentinel_unknown_master: return "no sentinel knows the master";
      case errc::bad_reply: return "unexpected reply";
      case errc::slot_map_invalid: return "invalid CLUSTER SLOTS reply";
      case errc::listen_failed: return "cannot listen";
    }
    return "unknown podrelay error";
  }
};

}  // namespace

std::error_category const& error_category() noexcept {
  static Category const category;
  return category;
}

std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

}  // namespace podrelay
