// What an app written in strict TypeScript does with podrelay, as the README shows it.
// Compiled (never run) by test/types.test.js: a declaration that disagrees with socket.io's
// own types, or with the README, fails that test. `@ts-expect-error` lines are misuses the
// declarations must reject.
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { connect, PodrelayError } from 'podrelay';
import type { DurableOutcome, ServerInfo } from 'podrelay';
import { createAdapter, PodrelayAdapter } from 'podrelay/socket.io';

declare function broadcastToLocalSockets(channel: string, text: string): void;

export async function plainClient(): Promise<void> {
  const relay = connect({ address: '127.0.0.1:7400', clientName: 'chat-server' });
  await relay.subscribe('room:42', (payload, channel) => {
    broadcastToLocalSockets(channel, payload.toString());
  });
  await relay.psubscribe(['room:*'], (payload: Buffer, channel: string, pattern: string | null) => {
    broadcastToLocalSockets(channel + String(pattern), payload.toString());
  });
  const id: string | undefined = await relay.publish('room:42', JSON.stringify({ text: 'hi' }));
  await relay.publish(Buffer.from('bin'), new Uint8Array([0, 255]), { ack: false });
  void id;
  const info: ServerInfo = await relay.ready();
  void info.nodeId;
  const rtt: number = await relay.ping({ timeout: 1000 });
  void rtt;
  relay.on('goaway', (g) => void (g.code + g.name));
  relay.on('message', (payload, channel, pattern, streamId) => {
    void [payload.length, channel.length, pattern?.length, streamId?.length];
  });
  relay.on('error', (err) => {
    if (err instanceof PodrelayError) void err.code;
  });
  await relay.unsubscribe('room:42');
  await relay.punsubscribe();
  // @ts-expect-error: a handler is required
  await relay.subscribe('room:42');
  // @ts-expect-error: no such event
  relay.on('messages', () => {});
  process.on('SIGTERM', () => void relay.close());
}

export async function durable(): Promise<void> {
  const relay = connect({ protocolVersion: 2 });
  const outcome: DurableOutcome<string> = await relay.subscribeDurable(
    'room:1', (payload, channel, streamId) => void [payload, channel, streamId],
    { since: '1-0', epoch: 'e' });
  if (!outcome.recovered) void outcome.lastId;
  relay.on('resumed', (channel, o) => void [channel, o.recovered]);
  for (const [channel, position] of relay.durablePositions) void [channel, position.id];
  await relay.unsubscribeDurable('room:1');
  // @ts-expect-error: there is no protocol version 4
  connect({ protocolVersion: 4 });
}

export function socketIo(): void {
  const io = new Server(createServer());
  io.adapter(createAdapter()); // the README's one-line migration
  const recovering = new Server(createServer(), {
    connectionStateRecovery: { maxDisconnectionDuration: 2 * 60 * 1000 },
  });
  recovering.adapter(createAdapter({
    address: 'unix:/run/podrelay/app.sock',
    key: 'chat',
    requestsTimeout: 2000,
    connectOptions: { clientName: 'chat', authToken: 'secret' },
  }));
  const shared = connect();
  io.adapter(createAdapter({ client: shared, acknowledgedBroadcasts: true }));
  const adapter = io.of('/').adapter as unknown as PodrelayAdapter;
  adapter.on('error', (err: Error) => void err.message);
  void adapter.allRooms().then((rooms: Set<string>) => rooms.size);
  // @ts-expect-error: the address is a string
  createAdapter({ address: 7400 });
}
