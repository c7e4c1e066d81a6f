// Type declarations for `podrelay`: the Node.js client of the podrelay sidecar.

/// <reference types="node" />

import { EventEmitter } from 'node:events';
import type { Bytes } from './protocol.js';

export {
  PodrelayError,
  ProtocolError,
  ErrorCode,
  ErrorCodeName,
  FrameType,
  FrameTypeName,
  PROTOCOL_VERSION,
  errorName,
  errorClass,
  Bytes,
} from './protocol.js';

export declare const DEFAULT_ADDRESS: '127.0.0.1:7400';

export interface ConnectOptions {
  /** 'host:port', '[v6]:port' or 'unix:/path/to/socket'. Default '127.0.0.1:7400'. */
  address?: string;
  /** Shown in the sidecar's logs. Default ''. */
  clientName?: string;
  /** Needed when the sidecar runs with --auth-token-file. Default ''. */
  authToken?: string;
  /** Reconnect (with backoff and jitter) when the connection drops. Default true. */
  reconnect?: boolean;
  /** First reconnect delay in ms, doubled per failed attempt. Default 100. */
  reconnectMinDelay?: number;
  /** Cap of the reconnect delay in ms. Default 5000. */
  reconnectMaxDelay?: number;
  /** Time in ms from opening the socket to WELCOME before the attempt fails. Default 5000. */
  connectTimeout?: number;
  /**
   * Bound, in bytes, of the frames waiting in the client while disconnected or while the
   * socket pushes back. A publish that does not fit is rejected with PUBLISH_BUFFER_FULL.
   * Default 8 MiB.
   */
  maxPendingBytes?: number;
  /** Largest frame accepted from the sidecar. Default 16 MiB. */
  maxIncomingFrameBytes?: number;
  /** Keepalive PING interval in ms while idle; 0 disables. Default 30000. */
  pingInterval?: number;
  /** A keepalive PONG later than this (ms) drops and reconnects the connection. Default 10000. */
  pingTimeout?: number;
  /**
   * After GOAWAY the sidecar still answers the requests it read, then closes; the client
   * keeps reading for at most this many ms (then drops the connection; unanswered acked
   * publishes fail with OUTCOME_UNKNOWN). Default 35000.
   */
  drainWait?: number;
  /**
   * Highest protocol version to ask for. 2 adds durable channels (subscribeDurable, stream
   * ids); 3 adds publish({ echo: false }) (PUBX) to version 2. A sidecar that refuses the
   * version (one from before it) is asked the next lower one at once (3, then 2, then 1),
   * and the highest is asked again on the next connection.
   * Default 1. Version 2 changes nothing for code without durable channels; on one, publish
   * resolves to the stream id. Pattern subscriptions never receive durable channels'
   * messages, at any version.
   */
  protocolVersion?: 1 | 2 | 3;
}

/** A durable channel's RSUBOK. */
export interface DurableOutcome<C extends string | Buffer = string | Buffer> {
  /** The channel as subscribed. */
  channel: C;
  /** false: messages after `since` may be lost (trimmed, or the stream was recreated); reload the state. */
  recovered: boolean;
  /** The stream's epoch; '' while the stream does not exist yet. */
  epoch: string;
  /** The id after which live delivery continues ('0-0' for a stream not created yet). */
  lastId: string;
}

/** Where a durable channel resumes: the last stream id received and its epoch. */
export interface DurablePosition {
  id: string;
  epoch: string;
}

/** Called once per message of a durable channel, with its stream id ('<ms>-<seq>'). */
export type DurableHandler<C extends string | Buffer = string | Buffer> = (
  payload: Buffer,
  channel: C,
  streamId: string,
) => void;

export interface SubscribeDurableOptions {
  /** Replay what was published after this stream id. */
  since?: string;
  /** The epoch `since` belongs to (from DurableOutcome or durablePositions). */
  epoch?: string;
}

export interface ServerInfo {
  version: number;
  serverVersion: string;
  nodeId: string;
  maxFrameBytes: number;
  maxQueueBytes: number;
}

export interface GoawayInfo {
  code: number;
  /** e.g. 'SHUTTING_DOWN', 'SLOW_CONSUMER', 'TOO_MANY_CONNECTIONS'. */
  name: string;
  message: string;
}

/**
 * Called once per message. `channel` is a string when the channel (or, for patterns,
 * the pattern) was subscribed as a string, else a Buffer. `pattern` is null for channel
 * subscriptions and the pattern as subscribed for pattern subscriptions.
 */
export type MessageHandler<C extends string | Buffer = string | Buffer> = (
  payload: Buffer,
  channel: C,
  pattern: C | null,
) => void;

export interface PublishOptions {
  /**
   * true (default): resolve when Redis accepted the message, reject on ERR.
   * false: fire and forget, resolve once the frame was handed to the OS.
   */
  ack?: boolean;
  /**
   * true (default): the message reaches every subscriber, this connection included.
   * false: on a connection that speaks version 3, sent as PUBX: the sidecar does not
   * deliver it back to this connection's subscribe() of exactly this channel (best effort:
   * pattern subscriptions, durable channels and reconnects may still bring it back). On a
   * version 1 or 2 connection it is a plain PUB and comes back as usual.
   */
  echo?: boolean;
}

export type ClientState = 'connecting' | 'handshaking' | 'ready' | 'draining' | 'backoff' | 'closed';

export interface ClientEvents {
  connect: [info: ServerInfo];
  disconnect: [error: Error | undefined];
  reconnecting: [info: { attempt: number; delay: number; error: Error | undefined }];
  goaway: [info: GoawayInfo];
  /** `streamId` is set for a durable channel's message (version 2), else absent. */
  message: [payload: Buffer, channel: Buffer, pattern: Buffer | null, streamId?: string];
  /** A durable channel was re-subscribed after a reconnect; check `outcome.recovered`. */
  resumed: [channel: string | Buffer, outcome: DurableOutcome];
  drain: [];
  error: [error: Error];
  close: [error: Error | undefined];
}

export declare class Client extends EventEmitter {
  constructor(options?: ConnectOptions);
  readonly address: string;
  /** WELCOME of the current (or last) connection; null before the first. */
  readonly serverInfo: ServerInfo | null;
  /** True while a handshaken connection is up. */
  readonly connected: boolean;
  readonly state: ClientState;
  /** Bytes of frames waiting in the client. */
  readonly pendingBytes: number;
  /** The version the current connection speaks (1, 2 or 3); 0 while not connected. */
  readonly protocolVersion: 0 | 1 | 2 | 3;
  /** A snapshot: durable channel (as subscribed) -> where it resumes after a reconnect. */
  readonly durablePositions: Map<string | Buffer, DurablePosition>;

  /** Resolves when connected (at once if already); rejects if the client closes first. */
  ready(): Promise<ServerInfo>;

  /** Resolves with the stream id on a durable channel over version 2 or 3, else undefined. */
  publish(channel: Bytes, payload: Bytes, options?: PublishOptions): Promise<string | undefined>;

  /** Durable channel (version 2): replays after `since`, then live; resumes by itself after reconnects. */
  subscribeDurable(channel: string, handler: DurableHandler<string>, options?: SubscribeDurableOptions): Promise<DurableOutcome<string>>;
  subscribeDurable(channel: Uint8Array, handler: DurableHandler<Buffer>, options?: SubscribeDurableOptions): Promise<DurableOutcome<Buffer>>;
  /** Ends the durable subscription (or removes one handler) and forgets its position. */
  unsubscribeDurable(channel: Bytes, handler?: DurableHandler<any>): Promise<void>;

  subscribe(channels: string | string[], handler: MessageHandler<string>): Promise<void>;
  subscribe(channels: Uint8Array | Uint8Array[], handler: MessageHandler<Buffer>): Promise<void>;
  subscribe(channels: Bytes | Bytes[], handler: MessageHandler): Promise<void>;

  psubscribe(patterns: string | string[], handler: MessageHandler<string>): Promise<void>;
  psubscribe(patterns: Uint8Array | Uint8Array[], handler: MessageHandler<Buffer>): Promise<void>;
  psubscribe(patterns: Bytes | Bytes[], handler: MessageHandler): Promise<void>;

  /** Without channels: every channel. With a handler: only that handler. */
  unsubscribe(channels?: Bytes | Bytes[] | null, handler?: MessageHandler<any>): Promise<void>;
  punsubscribe(patterns?: Bytes | Bytes[] | null, handler?: MessageHandler<any>): Promise<void>;

  /** Round trip to the sidecar; resolves with the latency in ms. Default timeout 5000 ms. */
  ping(options?: { timeout?: number }): Promise<number>;

  /** Graceful close: lets accepted operations finish for up to `timeout` ms (default 5000). */
  close(options?: { timeout?: number }): Promise<void>;
  /** Immediate close; every unsettled operation is rejected. */
  destroy(): void;

  on<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): this;
  once<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): this;
  off<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): this;
  emit<E extends keyof ClientEvents>(event: E, ...args: ClientEvents[E]): boolean;
}

/** Creates a Client and starts connecting. Operations issued meanwhile are queued. */
export declare function connect(options?: ConnectOptions): Client;

/** Parses an address into net.connect options. */
export declare function parseAddress(address: string): { path: string } | { host: string; port: number };
