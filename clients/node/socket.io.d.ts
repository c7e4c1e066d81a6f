// Type declarations for `podrelay/socket.io`: a Socket.IO adapter over the podrelay sidecar.

/// <reference types="node" />

import type {
  ClusterAdapterOptions,
  ClusterAdapterWithHeartbeat,
  ClusterMessage,
  ClusterResponse,
  Offset,
  PrivateSessionId,
  ServerId,
  Session,
} from 'socket.io-adapter';
import type { Client, ConnectOptions } from './index.js';

export interface PodrelayAdapterOptions extends ClusterAdapterOptions {
  /**
   * Sidecar address ('host:port', '[v6]:port' or 'unix:/path'). Default: $PODRELAY_ADDRESS,
   * else '127.0.0.1:7400'. Ignored when `client` is given.
   */
  address?: string;
  /** Further options of the podrelay connection the adapter opens (`address` wins). */
  connectOptions?: Omit<ConnectOptions, 'address'>;
  /**
   * Use this podrelay client instead of opening one. The adapter never closes a client it
   * did not open.
   */
  client?: Client;
  /** First part of every channel name. Default 'socket.io'. */
  key?: string;
  /**
   * A broadcast to more rooms than this goes once to the namespace channel (every server)
   * instead of once per room channel. Default 16.
   */
  maxRoomFanout?: number;
  /**
   * Rooms for which this returns true get no channel of their own: broadcasts to them go to
   * the namespace channel. Must give the same answer on every server. Default: names shaped
   * like a Socket.IO v4 socket id (20 base64url characters), i.e. each socket's own room.
   */
  isPrivateRoom?: (room: string) => boolean;
  /**
   * Send each broadcast as an acknowledged PUB (the sidecar answers OK/ERR per broadcast)
   * instead of fire-and-forget. Default false: nothing waits for the answer, and at
   * moderate rates the OK frames are a large part of a sender's CPU. Without acks a PUB the
   * sidecar cannot publish is counted in its podrelay_messages_dropped_total instead of
   * being reported on the 'error' event.
   */
  acknowledgedBroadcasts?: boolean;
  /** How long serverSideEmit with an ack, fetchSockets and allRooms wait for the other servers, ms. Default 5000. */
  requestsTimeout?: number;
  /** Least time `ready` waits for running servers to answer this server's announcement, ms. Default 50. */
  discoveryWindow?: number;
  /** Interval in ms of the heartbeat on the namespace channel. Default 5000. */
  heartbeatInterval?: number;
  /** A server not heard from for this many ms no longer counts in serverCount(). Default 10000. */
  heartbeatTimeout?: number;
}

export interface PodrelayChannels {
  /** `<key>#<nsp>#`: heartbeats, requests, broadcasts to all. */
  namespace: string;
  /** `<key>#<nsp>#room#<room>`: broadcasts to a public room. */
  room(room: string): string;
  /** `<key>#<nsp>#server#<uid>`: responses addressed to one server. */
  server(uid: string): string;
  /** `<key>#recovery#<nsp>`: the recovery log (durable), used with connectionStateRecovery. */
  recovery: string;
}

export declare class PodrelayAdapter extends ClusterAdapterWithHeartbeat {
  /** The podrelay client (shared by every namespace of the server). */
  readonly client: Client;
  readonly channels: PodrelayChannels;
  /** The namespace channel. */
  readonly channel: string;
  /** This server's own response channel. */
  readonly responseChannel: string;
  /** Resolves once the channels are subscribed, this server announced itself and the running servers answered. */
  readonly ready: Promise<void>;
  readonly requestsTimeout: number;
  /** Every room of every server (socket ids included), as redis-adapter's allRooms(). */
  allRooms(): Promise<Set<string>>;
  init(): Promise<void>;
  close(): Promise<void> | void;
  /**
   * With connectionStateRecovery: why sessions cannot be recovered (the sidecar does not keep
   * the recovery log durable), or null. Also emitted as 'error' (else a process warning).
   */
  readonly recoveryError: Error | null;
  /** Appends the session to the recovery log (connectionStateRecovery). */
  persistSession(session: { sid: string; pid: string; rooms: string[]; data: unknown }): void;
  /**
   * The session and the packets it missed, read from the recovery log. Resolves null when
   * it is not recoverable: declared as socket.io-adapter's base method (`Promise<Session>`,
   * which resolves null there too), so `io.adapter(createAdapter())` type-checks.
   */
  restoreSession(pid: PrivateSessionId, offset: string): Promise<Session>;
  /** Resolves once the channels of newly created rooms are subscribed. */
  addAll(id: string, rooms: Set<string>): Promise<void> | void;
  protected doPublish(message: ClusterMessage): Promise<Offset>;
  protected doPublishResponse(requesterUid: ServerId, response: ClusterResponse): Promise<void>;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

/** Returns the adapter constructor for `io.adapter(createAdapter())`. */
export declare function createAdapter(opts?: PodrelayAdapterOptions): (nsp: any) => PodrelayAdapter;

/** The default `isPrivateRoom`. */
export declare function looksLikeSocketId(room: unknown): boolean;

/** Channel names for namespace `nsp`. */
export declare function channelsOf(key: string, nsp: string): PodrelayChannels;

export interface DecodedMessage {
  uid: string;
  /** Non-zero for a broadcast published on several room channels. */
  copyId: number;
  type: number;
  data?: unknown;
}

/** Encodes an inter-server message (see README, "Wire format"). */
export declare function encodeMessage(uid: string, message: { type: number; data?: unknown }, copyId?: number): Buffer;
/** Decodes an inter-server message; throws when malformed. */
export declare function decodeMessage(payload: Buffer): DecodedMessage;
/** Reads only the header; null when the payload is not an adapter message. */
export declare function decodeHeader(payload: Buffer): { uid: string; copyId: number; bodyOffset: number } | null;
