// Incremental parser of Redis-protocol requests as an app's Redis client sends them:
// multibulk (`*N\r\n$len\r\n<bytes>\r\n...`) and inline (`PING\r\n`, with Redis' quoting
// rules), pipelined. Sans-I/O: bytes in, one argv at a time out. Not thread-safe; one
// RequestParser per connection, owned by its session.
//
// Design note. The parser follows what Redis 7.0 does in processMultibulkBuffer and
// processInlineBuffer (src/networking.c), so a client sees the same error text for the same
// bytes: a request starting with '*' is multibulk, anything else is an inline line; a count
// <= 0 and an empty inline line are skipped; the two bytes after a bulk and after a header's
// '\r' are skipped unchecked, as Redis does. Where Redis' outcome depends on how the bytes
// were chunked by the network (a header or inline line longer than 64 KiB is refused only
// when no terminator has arrived yet), this parser decides on the line's length instead, so
// every split of a stream gives the same results. Limits are hard: a header count never
// allocates before the arguments' bytes arrive, and a bulk length over the limit fails as
// soon as its header line is in, before its bytes are buffered. After an error the parser
// stays failed; the session answers `-ERR <error_text>` and closes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace podrelay::resp_server {

struct Limits {
  // Arguments in one multibulk request. Redis 6 refused counts above 1,048,576 with
  // "invalid multibulk length"; Redis 7 accepts up to INT_MAX and waits for the bytes.
  std::size_t max_args = std::size_t{1024} * 1024;
  // One argument (Redis' proto-max-bulk-len, 512 MB by default there).
  std::size_t max_bulk_bytes = std::size_t{1024} * 1024 + 1024;
  // One inline line, and one `*N` / `$N` header line (Redis: PROTO_INLINE_MAX_SIZE).
  std::size_t max_inline_bytes = std::size_t{64} * 1024;
  // Wire bytes of one whole request, headers included: bounds the buffer a single request
  // can hold (Redis bounds it with client-query-buffer-limit, 1 GB, and closes silently).
  // Two full arguments and 64 KiB of headers and small arguments.
  std::size_t max_request_bytes = 2 * (std::size_t{1024} * 1024 + 1024) + std::size_t{64} * 1024;
  // Before authentication (when a token is configured), Redis 7 allows at most 10 arguments
  // and 16 KiB per argument.
  std::size_t unauthenticated_max_args = 10;
  std::size_t unauthenticated_max_bulk_bytes = std::size_t{16} * 1024;

  // The limits the daemon derives from --max-frame-bytes: an argument as large as a frame
  // plus 1 KiB, and a request of two such arguments plus 64 KiB (PUBLISH's channel and
  // payload). The defaults above are for_max_frame_bytes(1 MiB), the daemon's default.
  static Limits for_max_frame_bytes(std::size_t max_frame_bytes) noexcept;
};

enum class ParseError : std::uint8_t {
  none,
  invalid_multibulk_length,          // `*x`, `*01`, count above INT_MAX or max_args
  unauthenticated_multibulk_length,  // count above 10 before AUTH
  too_big_mbulk_count_string,        // `*` line longer than max_inline_bytes
  invalid_bulk_length,               // `$x`, `$-1`, length above max_bulk_bytes
  unauthenticated_bulk_length,       // length above 16 KiB before AUTH
  too_big_bulk_count_string,         // `$` line longer than max_inline_bytes
  expected_dollar,                   // an argument header not starting with '$'
  too_big_inline_request,            // inline line longer than max_inline_bytes
  unbalanced_quotes,                 // inline quoting that does not close
  too_big_request,                   // podrelay's own: request above max_request_bytes
};

class RequestParser {
 public:
  enum class Status { need_more, request, error };
  struct Result {
    Status status = Status::need_more;
    // Status::request: the arguments (never empty). The views point into the parser's
    // buffer; they and the span stay valid until the next call of next(), prepare(),
    // feed() or shrink_if_idle().
    std::span<std::string_view const> argv;
    ParseError error = ParseError::none;
    // Status::error: the text Redis sends after "-ERR ", e.g. "Protocol error: invalid
    // bulk length". Points into the parser; valid as long as it lives.
    std::string_view error_text;
  };

  explicit RequestParser(Limits limits = {}) : limits_(limits) {}

  // Usage per read, as proto::Decoder:
  //   auto buf = parser.prepare(n); read into buf; parser.commit(bytes_read);
  //   while ((r = parser.next()).status == Status::request) handle(r.argv);
  // Writable space of at least `min_bytes`; more while a large argument is partly in.
  std::span<char> prepare(std::size_t min_bytes);
  void commit(std::size_t n) noexcept { end_ += n; }
  // Copies `data` in; convenient for tests and fuzzers.
  void feed(std::string_view data);

  Result next();

  // Before authentication the stricter Redis 7 limits apply to the requests parsed next.
  // The session sets this from CommandMachine::authenticated() before each next().
  void set_authenticated(bool authenticated) noexcept { authenticated_ = authenticated; }

  Limits const& limits() const noexcept { return limits_; }
  bool failed() const noexcept { return error_ != ParseError::none; }
  std::size_t buffered() const noexcept { return end_ - begin_; }
  std::size_t capacity() const noexcept { return buf_.size(); }
  // Frees the buffer when it holds no partial request; for idle connections.
  void shrink_if_idle(std::size_t keep_at_most);

 private:
  enum class Mode : std::uint8_t { idle, multibulk, inline_line };
  enum class Step : std::uint8_t { need_more, request, skip, error };

  Step parse_multibulk();
  Step parse_inline();
  Step fail(ParseError error);
  // Offset (from begin_) of the first `c` at or after scan_, or npos; resumes where the
  // last search stopped so byte-at-a-time input is not rescanned.
  std::size_t find(char c);
  char const* at(std::size_t offset) const noexcept { return buf_.data() + begin_ + offset; }

  Limits limits_;
  std::vector<char> buf_;
  std::size_t begin_ = 0;  // first byte of the current request
  std::size_t end_ = 0;
  bool authenticated_ = true;

  // The request being parsed; offsets are relative to begin_ so they survive compaction.
  Mode mode_ = Mode::idle;
  std::size_t pos_ = 0;          // parsed up to here
  std::size_t scan_ = 0;         // terminator search resumes here
  std::int64_t remaining_ = -1;  // multibulk arguments still to read; -1: count not read
  std::int64_t bulk_len_ = -1;   // length of the argument being read; -1: header not read
  std::vector<std::pair<std::size_t, std::size_t>> args_;  // (offset, length)
  std::vector<std::string_view> argv_;

  ParseError error_ = ParseError::none;
  std::string error_text_;
};

// Redis' string2ll, which reads every length and count: an optional '-', digits without a
// leading zero ("0" alone is fine), nothing else, within int64. False otherwise.
bool parse_integer(std::string_view s, std::int64_t& out) noexcept;

// The Redis text of an error (for expected_dollar, without the offending byte).
std::string_view parse_error_text(ParseError error) noexcept;

}  // namespace podrelay::resp_server
