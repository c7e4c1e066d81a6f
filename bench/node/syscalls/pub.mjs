// Publishes RATE msgs/s for SECONDS through a sidecar, one message per timer tick as a
// Socket.IO server does at moderate rates: fire-and-forget, on a channel this connection
// also subscribes (as every Socket.IO server subscribes its namespace channel), with
// echo: false (PUBX) unless the fourth argument is "echo".
import { connect } from '../../../clients/node/src/index.js';

const [address, rate, seconds, mode = 'noecho'] = process.argv.slice(2);
const client = connect({ address, protocolVersion: 3 });
await client.subscribe('ns', () => {});
const opts = { ack: false, echo: mode === 'echo' };
const total = Number(rate) * Number(seconds);
const period = 1e9 / Number(rate);
const payload = Buffer.alloc(120, 7);
const t0 = process.hrtime.bigint();
let sent = 0;
function tick() {
  const now = Number(process.hrtime.bigint() - t0);
  while (sent < total && sent * period <= now) {
    client.publish('ns', payload, opts).catch((err) => console.error(err.message));
    sent++;
  }
  if (sent < total) setTimeout(tick, Math.max(0, (sent * period - now) / 1e6));
  else setTimeout(() => client.close(), 200);
}
tick();
