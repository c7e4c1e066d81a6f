#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "util/log.hpp"

using podrelay::log::Field;
using podrelay::log::format_line;
using podrelay::log::LogFormat;
using podrelay::log::LogLevel;

namespace {

std::string line(LogFormat format, std::vector<Field> const& fields) {
  return format_line(format, "2026-12-08T00:00:00.000Z", LogLevel::warn, "slow consumer", fields);
}

}  // namespace

TEST_CASE("JSON log lines: integers are numbers, text is a string, whatever it looks like") {
  std::string const digits = "2099209";  // text that looks like a number stays text
  std::vector<Field> const fields{{"conn", std::uint64_t{17}},
                                  {"queued_bytes", std::size_t{2099209}},
                                  {"delta", -42},
                                  {"channel", digits},
                                  {"detail", "a \"quoted\"\nline"}};
  CHECK(line(LogFormat::json, fields) ==
        "{\"ts\":\"2026-12-08T00:00:00.000Z\",\"level\":\"warn\",\"msg\":\"slow consumer\","
        "\"conn\":17,\"queued_bytes\":2099209,\"delta\":-42,\"channel\":\"2099209\","
        "\"detail\":\"a \\\"quoted\\\"\\nline\"}\n");
}

TEST_CASE("text log lines show numbers and text alike") {
  std::vector<Field> const fields{{"conn", 17}, {"channel", "2099209"}, {"detail", "two words"}};
  CHECK(line(LogFormat::text, fields) ==
        "2026-12-08T00:00:00.000Z warn slow consumer conn=17 channel=2099209 "
        "detail=\"two words\"\n");
}

TEST_CASE("log numbers: the extremes of 64-bit integers") {
  std::vector<Field> const fields{{"min", std::numeric_limits<std::int64_t>::min()},
                                  {"max", std::numeric_limits<std::uint64_t>::max()},
                                  {"zero", 0}};
  CHECK(line(LogFormat::json, fields)
            .find("\"min\":-9223372036854775808,\"max\":18446744073709551615,\"zero\":0}") !=
        std::string::npos);
}
