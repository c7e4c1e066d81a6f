#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "config/config.hpp"

using namespace podrelay;
using Mode = config::RedisUrl::Mode;

namespace {

config::ConfigResult parse(std::initializer_list<char const*> args) {
  std::vector<char const*> argv{"podrelay"};
  argv.insert(argv.end(), args.begin(), args.end());
  return config::parse_config(static_cast<int>(argv.size()), argv.data());
}

}  // namespace

TEST_CASE("redis URLs: the good ones") {
  auto r = config::parse_redis_url("redis://127.0.0.1:6380");
  REQUIRE(r.ok());
  CHECK(r.url.mode == Mode::single);
  CHECK_FALSE(r.url.tls);
  CHECK(r.url.endpoints == std::vector<config::Endpoint>{{"127.0.0.1", 6380}});

  r = config::parse_redis_url("rediss://user:p%40ss%3Aw@redis.svc:6379/3");
  REQUIRE(r.ok());
  CHECK(r.url.tls);
  CHECK(r.url.username == "user");
  CHECK(r.url.password == "p@ss:w");
  CHECK(r.url.db == 3);

  r = config::parse_redis_url("redis://secret@h");
  REQUIRE(r.ok());
  CHECK(r.url.username.empty());
  CHECK(r.url.password == "secret");
  CHECK(r.url.endpoints[0].port == 6379);

  r = config::parse_redis_url("redis://[::1]:7000");
  REQUIRE(r.ok());
  CHECK(r.url.endpoints[0].host == "::1");

  r = config::parse_redis_url("redis-sentinel://s1:26379,s2,[::1]:26380/mymaster");
  REQUIRE(r.ok());
  CHECK(r.url.mode == Mode::sentinel);
  CHECK(r.url.master_name == "mymaster");
  REQUIRE(r.url.endpoints.size() == 3);
  CHECK(r.url.endpoints[1].port == 26379);

  r = config::parse_redis_url("redis-cluster://a:7000,b:7001");
  REQUIRE(r.ok());
  CHECK(r.url.mode == Mode::cluster);
  CHECK(r.url.endpoints.size() == 2);
}

TEST_CASE("redis URLs: the bad ones say why, never with the password") {
  for (auto const* bad : {"foo://x",
                          "127.0.0.1:6379",
                          "redis://",
                          "redis://h:0",
                          "redis://h:99999",
                          "redis://h:x",
                          "redis://a,b",
                          "redis://h/abc",
                          "redis://h/-1",
                          "redis-sentinel://h:1",
                          "redis-cluster://h:1/x",
                          "redis://[::1",
                          "redis://::1:6379",
                          "redis://u:%zz@h",
                          "redis://:x@host name:1",
                          "redis://a..b:1",
                          "redis://.h",
                          "redis://h\tx",
                          "redis://[nothex]:1",
                          "redis://[::1%]:1",
                          "redis-sentinel://s1,bad host/m",
                          "redis-cluster://a:1,b?c:2"}) {
    CAPTURE(bad);
    auto const r = config::parse_redis_url(bad);
    CHECK_FALSE(r.ok());
    CHECK_FALSE(r.error.empty());
  }
  for (auto const* good :
       {"redis://redis.default.svc.cluster.local.:6379", "redis://my_host", "redis://10.0.0.7",
        "redis://[fe80::1%eth0]:6379", "redis://[::ffff:127.0.0.1]"}) {
    CAPTURE(good);
    CHECK(config::parse_redis_url(good).ok());
  }
  auto const spaced = config::parse_redis_url("redis://:hunter2@host name:1");
  CHECK(spaced.error.find("'host name'") != std::string::npos);
  CHECK(spaced.error.find("hunter2") == std::string::npos);
  auto const r = config::parse_redis_url("redis://user:hunter2@h:notaport");
  CHECK_FALSE(r.ok());
  CHECK(r.error.find("hunter2") == std::string::npos);
}

TEST_CASE("redact hides the password") {
  auto const r = config::parse_redis_url("redis://user:hunter2@h:6379/2");
  REQUIRE(r.ok());
  CHECK(config::redact(r.url) == "redis://user:***@h:6379/2");
}

TEST_CASE("listen addresses") {
  auto a = config::parse_listen_address("127.0.0.1:7400");
  REQUIRE(a.ok());
  CHECK(a.address.port == 7400);
  CHECK(config::is_loopback(a.address));
  a = config::parse_listen_address("[::1]:0");
  REQUIRE(a.ok());
  CHECK(config::is_loopback(a.address));
  a = config::parse_listen_address("unix:/tmp/x.sock");
  REQUIRE(a.ok());
  CHECK(a.address.kind == config::ListenAddress::Kind::unix_socket);
  a = config::parse_listen_address("0.0.0.0:7400");
  REQUIRE(a.ok());
  CHECK_FALSE(config::is_loopback(a.address));
  for (auto const* bad :
       {"nonsense", "1.2.3.4", "1.2.3.4:99999", "host:80", "unix:relative", "::1:80", ":80"}) {
    CAPTURE(bad);
    CHECK_FALSE(config::parse_listen_address(bad).ok());
  }
}

TEST_CASE("defaults") {
  auto const r = parse({});
  REQUIRE_FALSE(r.exit);
  auto const& c = r.config;
  REQUIRE(c.listen.size() == 1);
  CHECK(c.listen[0].to_string() == "127.0.0.1:7400");
  CHECK(c.admin_listen.to_string() == "0.0.0.0:9400");
  CHECK(c.channel_prefix == "podrelay:");
  CHECK(c.max_frame_bytes == 1024 * 1024);
  CHECK(c.redis.endpoints[0].port == 6379);
  CHECK(c.lazy_read_window.count() == 5);
  CHECK(c.max_subscription_bytes == 4 * 1024 * 1024);
}

TEST_CASE("--lazy-read-seconds: 0 turns lazy reads off; negative is refused") {
  auto const off = parse({"--lazy-read-seconds", "0"});
  REQUIRE_FALSE(off.exit);
  CHECK(off.config.lazy_read_window.count() == 0);
  auto const bad = parse({"--lazy-read-seconds", "-1"});
  CHECK(bad.exit);
  CHECK(bad.exit_code == 2);
  CHECK(bad.output.find("--lazy-read-seconds") != std::string::npos);
}

TEST_CASE("flags, repeated --listen, and environment variables") {
  ::setenv("PODRELAY_CHANNEL_PREFIX", "env:", 1);
  auto const r =
      parse({"--listen", "127.0.0.1:1", "--listen", "unix:/tmp/p.sock", "--redis",
             "redis://10.0.0.1:7000", "--max-frame-bytes", "4096", "--log-format", "json",
             "--publish-buffer-timeout", "0.5", "--max-subscription-bytes", "65536"});
  ::unsetenv("PODRELAY_CHANNEL_PREFIX");
  REQUIRE_FALSE(r.exit);
  CHECK(r.config.listen.size() == 2);
  CHECK(r.config.channel_prefix == "env:");
  CHECK(r.config.max_frame_bytes == 4096);
  CHECK(r.config.log_format == config::LogFormat::json);
  CHECK(r.config.publish_buffer_timeout.count() == 500);
  CHECK(r.config.max_subscription_bytes == 65536);
}

TEST_CASE("bad flags exit 2 with one line") {
  for (auto args : std::vector<std::vector<char const*>>{
           {"--redis", "foo://x"},
           {"--listen", "nonsense"},
           {"--listen", "0.0.0.0:7400"},
           {"--max-frame-bytes", "-1"},
           {"--max-frame-bytes", "abc"},
           {"--max-frame-bytes", "1023"},  // below 1024 an ERR or WELCOME might not fit
           {"--max-subscription-bytes", "1023"},
           {"--log-level", "loud"},
           {"--no-such-flag"},
           {"--admin-listen", "unix:/tmp/a"},
           {"--auth-token-file", "/nonexistent/token"},
           {"--max-queue-bytes", "1024", "--max-frame-bytes", "4096"},
           {"--tls-cert-file", "/etc/hostname"},
           {"--tls-ca-file", "/etc/hostname"},  // with the default redis:// URL
           {"--unix-socket-mode", "999"},
           {"--unix-socket-mode", "01777"},
           {"--unix-socket-mode", "rw"},
           {"--unix-socket-mode", ""},
           {"--unix-socket-mode", "0066"}}) {
    std::vector<char const*> argv{"podrelay"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto const r = config::parse_config(static_cast<int>(argv.size()), argv.data());
    CAPTURE(args[0]);
    CHECK(r.exit);
    CHECK(r.exit_code == 2);
    CHECK(r.output.rfind("podrelay: ", 0) == 0);
    CHECK(r.output.find('\n') == std::string::npos);
  }
}

TEST_CASE("--unix-socket-mode is octal, 0660 by default") {
  CHECK(parse({}).config.unix_socket_mode == 0660);
  CHECK(parse({"--unix-socket-mode", "600"}).config.unix_socket_mode == 0600);
  CHECK(parse({"--unix-socket-mode", "0666"}).config.unix_socket_mode == 0666);
  auto const r = parse({"--unix-socket-mode", "0066"});
  CHECK(r.output.find("owner without write permission") != std::string::npos);
}

TEST_CASE("TLS files need a TLS URL") {
  CHECK_FALSE(parse({"--redis", "rediss://127.0.0.1:6380", "--tls-ca-file", "/etc/hostname"}).exit);
  auto const r = parse({"--redis", "redis://127.0.0.1:6379", "--tls-ca-file", "/etc/hostname"});
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("need a TLS Redis URL") != std::string::npos);
}

TEST_CASE("--allow-remote permits a non-loopback listener") {
  auto const r = parse({"--listen", "0.0.0.0:7400", "--allow-remote"});
  CHECK_FALSE(r.exit);
}

// A temporary file holding "s3cret\n", removed when it goes out of scope.
struct SecretFile {
  char path[32] = "/tmp/podrelay-test-XXXXXX";
  SecretFile() {
    int const fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::close(fd);
    std::ofstream(path) << "s3cret\n";
  }
  ~SecretFile() { std::remove(path); }
  SecretFile(SecretFile const&) = delete;
  SecretFile& operator=(SecretFile const&) = delete;
};

TEST_CASE("secrets come from files, trailing newline dropped") {
  SecretFile const secret;
  char const* path = secret.path;
  auto const r = parse({"--auth-token-file", path, "--redis-password-file", path});
  REQUIRE_FALSE(r.exit);
  CHECK(r.config.auth_token == "s3cret");
  CHECK(r.config.redis.password == "s3cret");
}

TEST_CASE("the sentinels' own password: a file, for redis-sentinel:// only") {
  SecretFile const secret;
  char const* path = secret.path;
  char const* url = "redis-sentinel://127.0.0.1:26379/mymaster";
  auto const r =
      parse({"--redis", url, "--sentinel-password-file", path, "--sentinel-username", "watcher"});
  REQUIRE_FALSE(r.exit);
  CHECK(r.config.sentinel_password == "s3cret");
  CHECK(r.config.sentinel_username == "watcher");
  CHECK(r.config.redis.password.empty());  // the data password is another one
  for (auto const& bad : {parse({"--sentinel-password-file", path}),
                          parse({"--redis", url, "--sentinel-username", "watcher"}),
                          parse({"--redis", url, "--sentinel-password-file", "/nonexistent"})}) {
    CHECK(bad.exit);
    CHECK(bad.exit_code == 2);
    CHECK(bad.output.find("--sentinel-") != std::string::npos);
    CHECK(bad.output.find('\n') == std::string::npos);
  }
}

TEST_CASE("secret files: only a regular file of at most 64 KiB, else one clear line") {
  // /dev/zero was read until memory ran out; a FIFO blocked the start with no word.
  auto const dev = parse({"--auth-token-file", "/dev/zero"});
  CHECK(dev.exit);
  CHECK(dev.exit_code == 2);
  CHECK(dev.output.find("is not a regular file") != std::string::npos);
  char fifo[32] = "/tmp/podrelay-fifo-XXXXXX";
  REQUIRE(::mkdtemp(fifo) != nullptr);
  auto const fifo_path = std::string(fifo) + "/f";
  REQUIRE(::mkfifo(fifo_path.c_str(), 0600) == 0);
  auto const blocked = parse({"--redis-password-file", fifo_path.c_str()});
  CHECK(blocked.exit_code == 2);
  CHECK(blocked.output.find("is not a regular file") != std::string::npos);
  std::remove(fifo_path.c_str());
  ::rmdir(fifo);
  SecretFile const big;
  std::ofstream(big.path) << std::string(64 * 1024 + 1, 'x');
  auto const large = parse({"--auth-token-file", big.path});
  CHECK(large.exit_code == 2);
  CHECK(large.output.find("larger than 65536 bytes") != std::string::npos);
  std::ofstream(big.path) << std::string(64 * 1024, 'x');
  auto const fits = parse({"--auth-token-file", big.path});
  REQUIRE_FALSE(fits.exit);
  CHECK(fits.config.auth_token.size() == 64 * 1024);
}

TEST_CASE("--node-id must suit CLIENT SETNAME and a WELCOME") {
  CHECK_FALSE(parse({"--node-id", "pod-7f9c_a.b"}).exit);
  for (std::string const& bad : {std::string("a b"), std::string("a\nb"), std::string(256, 'n')}) {
    auto const r = parse({"--node-id", bad.c_str()});
    CHECK(r.exit_code == 2);
    CHECK(r.output.find("--node-id") != std::string::npos);
  }
}

TEST_CASE("with --redis-password-file, redis://user@host names the ACL user") {
  SecretFile const secret;
  char const* path = secret.path;
  auto const user =
      parse({"--redis", "redis://relay@10.0.0.1:6379", "--redis-password-file", path});
  auto const both =
      parse({"--redis", "redis://relay:@10.0.0.1:6379", "--redis-password-file", path});
  auto const bare = parse({"--redis", "redis://10.0.0.1:6379", "--redis-password-file", path});
  auto const no_file = parse({"--redis", "redis://word@10.0.0.1:6379"});
  REQUIRE_FALSE(user.exit);
  CHECK(user.config.redis.username == "relay");  // was dropped: AUTH s3cret as default user
  CHECK(user.config.redis.password == "s3cret");
  REQUIRE_FALSE(both.exit);
  CHECK(both.config.redis.username == "relay");
  CHECK(both.config.redis.password == "s3cret");
  REQUIRE_FALSE(bare.exit);
  CHECK(bare.config.redis.username.empty());
  CHECK(bare.config.redis.password == "s3cret");
  // Without the file the password-only form stays what many clients make of it.
  REQUIRE_FALSE(no_file.exit);
  CHECK(no_file.config.redis.username.empty());
  CHECK(no_file.config.redis.password == "word");
}

TEST_CASE("--help and --version exit 0") {
  auto h = parse({"--help"});
  CHECK(h.exit);
  CHECK(h.exit_code == 0);
  CHECK(h.output.find("--max-queue-bytes") != std::string::npos);
  CHECK(h.output.find("PODRELAY_") != std::string::npos);
  auto v = parse({"--version"});
  CHECK(v.exit);
  CHECK(v.exit_code == 0);
  CHECK(v.output.find("podrelay") != std::string::npos);
}

namespace {

// The start warnings with a field `key` (the test runner may have PODRELAY_* of its own).
std::vector<config::StartWarning> warnings_with(config::ConfigResult const& r, std::string key,
                                                std::string_view value_part = "") {
  std::vector<config::StartWarning> out;
  for (auto const& w : r.warnings) {
    for (auto const& [k, v] : w.fields) {
      if (k == key && v.find(value_part) != std::string::npos) out.push_back(w);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("PODRELAY_* variables no flag reads are warned about, with the nearest name") {
  ::setenv("PODRELAY_REDIS_URL", "redis://127.0.0.1:6379", 1);
  ::setenv("PODRELAY_SERVICE_HOST", "10.0.0.7", 1);        // Kubernetes service links:
  ::setenv("PODRELAY_PORT_7400_TCP_ADDR", "10.0.0.7", 1);  // not typos
  ::setenv("PODRELAY_ADMIN_SERVICE_PORT_HTTP", "9090", 1);
  ::setenv("PODRELAY_PORT", "tcp://10.0.0.7:7400", 1);
  auto const r = parse({});
  for (auto const* v :
       {"PODRELAY_REDIS_URL", "PODRELAY_SERVICE_HOST", "PODRELAY_PORT_7400_TCP_ADDR",
        "PODRELAY_ADMIN_SERVICE_PORT_HTTP", "PODRELAY_PORT"}) {
    ::unsetenv(v);
  }
  REQUIRE_FALSE(r.exit);
  auto const typo = warnings_with(r, "variable", "PODRELAY_REDIS_URL");
  REQUIRE(typo.size() == 1);
  CHECK(typo[0].message == "environment variable ignored: no podrelay flag reads it");
  using F = std::vector<std::pair<std::string, std::string>>;
  CHECK(typo[0].fields ==
        F{{"variable", "PODRELAY_REDIS_URL"}, {"did_you_mean", "PODRELAY_REDIS"}});
  CHECK(warnings_with(r, "variable", "PORT").empty());
  CHECK(warnings_with(r, "variable", "SERVICE").empty());
}

TEST_CASE("--allow-remote with a non-loopback address is warned about at every start") {
  CHECK(warnings_with(parse({"--allow-remote"}), "listen").empty());
  auto const r = parse({"--allow-remote", "--listen", "0.0.0.0:7400", "--resp-listen",
                        "127.0.0.1:6379,10.1.2.3:6380"});
  REQUIRE_FALSE(r.exit);
  auto const remote = warnings_with(r, "listen");
  REQUIRE(remote.size() == 2);
  using F = std::vector<std::pair<std::string, std::string>>;
  CHECK(remote[0].fields == F{{"listen", "0.0.0.0:7400"}, {"app_auth", "none"}});
  CHECK(remote[1].fields == F{{"listen", "10.1.2.3:6380"}, {"app_auth", "none"}});
}
