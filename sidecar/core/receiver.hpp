// A local receiver of messages and subscription replies: an app connection, whatever
// protocol it speaks. The subscriptions core and the hub call it; neither owns it (a
// receiver detaches itself before it goes away).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/delivery.hpp"
#include "proto/error_code.hpp"

namespace podrelay::core {

class Receiver {
 public:
  // A message for one of this receiver's subscriptions; false when it was not queued (the
  // receiver is closing, or the message cannot be expressed in its protocol). Must not call
  // back into the hub or the subscriptions core: they are iterating.
  virtual bool deliver(Delivery& message) = 0;
  // The answer to a SUB/UNSUB/PSUB/PUNSUB request, in the order the requests were made.
  virtual void on_subscription_reply(std::uint32_t request_id,
                                     std::optional<proto::ErrorCode> error,
                                     std::string_view text) = 0;

 protected:
  Receiver() = default;
  Receiver(Receiver const&) = default;
  Receiver& operator=(Receiver const&) = default;
  ~Receiver() = default;
};

}  // namespace podrelay::core
