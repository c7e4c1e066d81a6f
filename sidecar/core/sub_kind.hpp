// The two kinds of subscription Redis pub/sub knows: a channel name, or a glob pattern.
// Shard channels (Redis Cluster SSUBSCRIBE) are channels on a sharded link.
#pragma once

namespace podrelay::core {

enum class SubKind { channel, pattern };

}  // namespace podrelay::core
