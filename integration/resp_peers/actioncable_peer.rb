# Rails ActionCable's redis subscription adapter, unmodified (Debian ruby-actioncable,
# ruby-redis), on an ActionCable server configured with `adapter: redis, url: URL` and
# nothing else.
#
#   ruby actioncable_peer.rb subscribe URL CHANNEL COUNT  prints SUBSCRIBED once the
#        adapter's subscription is confirmed, one "GOT <msg>" line per broadcast (COUNT of
#        them, 20 s at most in all), then "EXTRA <msg>|none" for what else came in 0.5 s
#   ruby actioncable_peer.rb broadcast URL CHANNEL MSG... broadcasts each MSG
require "logger"
require "active_support"
require "active_support/core_ext/string/inflections"  # what Rails would have loaded
require "action_cable"

mode, url, channel = ARGV[0], ARGV[1], ARGV[2]
server = ActionCable::Server::Base.new
server.config.cable = { "adapter" => "redis", "url" => url }
server.config.logger = Logger.new($stderr)
pubsub = server.pubsub

case mode
when "subscribe"
  count = Integer(ARGV[3])
  got = Queue.new
  subscribed = Queue.new
  pubsub.subscribe(channel, ->(msg) { got << msg }, -> { subscribed << true })
  Timeout.timeout(10) { subscribed.pop }
  puts "SUBSCRIBED"
  $stdout.flush
  deadline = Time.now + 20
  count.times do
    left = deadline - Time.now
    msg = left > 0 ? Timeout.timeout(left) { got.pop } : raise("timed out")
    puts "GOT #{msg}"
    $stdout.flush
  end
  sleep 0.5
  puts(got.empty? ? "EXTRA none" : "EXTRA #{got.pop}")
  $stdout.flush
  pubsub.shutdown
when "broadcast"
  ARGV[3..].each { |m| pubsub.broadcast(channel, m) }
  puts "SENT #{ARGV.length - 3}"
  $stdout.flush
  pubsub.shutdown
else
  abort "usage: actioncable_peer.rb subscribe|broadcast URL CHANNEL ..."
end
