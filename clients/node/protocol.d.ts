// Type declarations for `podrelay/protocol`: the sans-I/O codec of the podrelay wire
// protocol, versions 1 to 3 (proto/PROTOCOL.md).

/// <reference types="node" />

/** The version HELLO says by default. */
export declare const PROTOCOL_VERSION: 1;
/** The highest protocol version the codec speaks (3: PUBX). */
export declare const MAX_PROTOCOL_VERSION: 3;
/** Default frame limit of a sidecar (1 MiB). */
export declare const DEFAULT_MAX_FRAME_BYTES: number;
export declare const MAX_STR_BYTES: 65535;
export declare const MAX_LIST_ITEMS: 65535;
export declare const MAX_U32: 4294967295;

export declare const FrameType: Readonly<{
  HELLO: 0x01;
  PUB: 0x02;
  SUB: 0x03;
  UNSUB: 0x04;
  PSUB: 0x05;
  PUNSUB: 0x06;
  PING: 0x07;
  /** Version 2. */
  RSUB: 0x08;
  /** Version 3: PUB that the sidecar does not deliver back to the sending connection. */
  PUBX: 0x09;
  WELCOME: 0x81;
  MSG: 0x82;
  OK: 0x83;
  ERR: 0x84;
  PONG: 0x85;
  GOAWAY: 0x86;
  /** Version 2. */
  SMSG: 0x87;
  /** Version 2. */
  PUBOK: 0x88;
  /** Version 2. */
  RSUBOK: 0x89;
}>;
export type FrameTypeName = keyof typeof FrameType;

export declare const ErrorCode: Readonly<{
  MALFORMED_FRAME: 100;
  FRAME_TOO_LARGE: 101;
  UNKNOWN_TYPE: 102;
  HANDSHAKE_REQUIRED: 103;
  UNSUPPORTED_VERSION: 104;
  AUTH_FAILED: 105;
  UNEXPECTED_FRAME: 106;
  INVALID_ARGUMENT: 200;
  TOO_MANY_SUBSCRIPTIONS: 201;
  NOT_SUPPORTED: 202;
  DRAINING: 203;
  SUBSCRIBE_REFUSED: 204;
  PUBLISH_BUFFER_FULL: 300;
  PUBLISH_TIMEOUT: 301;
  OUTCOME_UNKNOWN: 302;
  REDIS_ERROR: 303;
  NOT_REPLICATED: 304;
  SLOW_CONSUMER: 400;
  SHUTTING_DOWN: 401;
  TOO_MANY_CONNECTIONS: 402;
  STREAM_LOST: 403;
}>;
export type ErrorCodeName = keyof typeof ErrorCode;

/** Frame name of a type byte, or undefined if the byte is not a frame type. */
export declare function frameTypeName(byte: number): FrameTypeName | undefined;
/** Name of an error code; unknown codes are named after their range (e.g. 'REQUEST_ERROR_250'). */
export declare function errorName(code: number): string;
/** Consequence of an error code, by its range. */
export declare function errorClass(code: number): 'connection' | 'request' | 'publish' | 'goaway' | 'unknown';

/**
 * Every error of this package. `code` is the protocol error code, or 0 for conditions
 * that exist only in the client; `name` is the code's name (e.g. 'OUTCOME_UNKNOWN',
 * 'CLIENT_CLOSED'); `local` is true when the client produced it rather than the sidecar.
 */
export declare class PodrelayError extends Error {
  constructor(code: number, name: string | undefined, message: string, options?: { local?: boolean; cause?: unknown });
  code: number;
  name: string;
  local: boolean;
}

/** A framing violation found by the codec (MALFORMED_FRAME, FRAME_TOO_LARGE, UNKNOWN_TYPE). */
export declare class ProtocolError extends PodrelayError {
  constructor(code: number, message: string);
}

/** Anything a `str` or `rest` field is encoded from: strings as UTF-8, bytes as is. */
export type Bytes = string | Uint8Array;

// Decoded frames: `str`/`rest` fields are Buffers (binary safe), lists arrays of Buffers.
export interface HelloFrame { type: 'HELLO'; version: number; clientName: Buffer; authToken: Buffer }
/** PUBX (version 3) has PUB's fields. */
export interface PubFrame { type: 'PUB' | 'PUBX'; requestId: number; channel: Buffer; payload: Buffer }
export interface SubFrame { type: 'SUB' | 'UNSUB'; requestId: number; channels: Buffer[] }
export interface PsubFrame { type: 'PSUB' | 'PUNSUB'; requestId: number; patterns: Buffer[] }
export interface IdFrame { type: 'PING' | 'OK' | 'PONG'; requestId: number }
export interface WelcomeFrame {
  type: 'WELCOME';
  version: number;
  serverVersion: Buffer;
  nodeId: Buffer;
  maxFrameBytes: number;
  maxQueueBytes: number;
}
export interface MsgFrame { type: 'MSG'; channel: Buffer; pattern: Buffer; payload: Buffer }
export interface ErrFrame { type: 'ERR'; requestId: number; code: number; message: Buffer }
export interface GoawayFrame { type: 'GOAWAY'; code: number; message: Buffer }
export type Frame =
  | HelloFrame
  | PubFrame
  | SubFrame
  | PsubFrame
  | IdFrame
  | WelcomeFrame
  | MsgFrame
  | ErrFrame
  | GoawayFrame;

/** Input of encodeFrame(): a decoded frame, with any Bytes where Buffers are decoded. */
export type FrameInput =
  | { type: 'HELLO' | 0x01; version?: number; clientName?: Bytes; authToken?: Bytes }
  | { type: 'PUB' | 'PUBX' | 0x02 | 0x09; requestId: number; channel: Bytes; payload: Bytes }
  | { type: 'SUB' | 'UNSUB' | 0x03 | 0x04; requestId: number; channels: Bytes[] }
  | { type: 'PSUB' | 'PUNSUB' | 0x05 | 0x06; requestId: number; patterns: Bytes[] }
  | { type: 'PING' | 'OK' | 'PONG' | 0x07 | 0x83 | 0x85; requestId: number }
  | {
      type: 'WELCOME' | 0x81;
      version?: number;
      serverVersion?: Bytes;
      nodeId?: Bytes;
      maxFrameBytes?: number;
      maxQueueBytes?: number;
    }
  | { type: 'MSG' | 0x82; channel: Bytes; pattern: Bytes; payload: Bytes }
  | { type: 'ERR' | 0x84; requestId: number; code: number; message?: Bytes }
  | { type: 'GOAWAY' | 0x86; code: number; message?: Bytes };

/** Converts a str/rest value to bytes (strings as UTF-8). */
export declare function toBytes(value: Bytes | ArrayBuffer | ArrayBufferView, what?: string): Buffer;

// Encoders. They throw RangeError for values the wire cannot carry (a str over 65535
// bytes, a list over 65535 items, an integer out of range) and TypeError for bad types.
export declare function encodeHello(fields?: { version?: number; clientName?: Bytes; authToken?: Bytes }): Buffer;
/** `requestId` 0 means fire and forget. */
export declare function encodePub(requestId: number, channel: Bytes, payload: Bytes): Buffer;
/**
 * PUBX (version 3, type 0x09): PUB's body, published alike, but not delivered back to the
 * sending connection's SUB of `channel` (best effort). Only for a connection whose WELCOME
 * said version 3; byte 4 (the type) set to FrameType.PUB makes it a PUB.
 */
export declare function encodePubx(requestId: number, channel: Bytes, payload: Bytes): Buffer;
export declare function encodeSub(requestId: number, channels: Bytes | Bytes[]): Buffer;
/** An empty list removes every channel. */
export declare function encodeUnsub(requestId: number, channels?: Bytes | Bytes[]): Buffer;
export declare function encodePsub(requestId: number, patterns: Bytes | Bytes[]): Buffer;
/** An empty list removes every pattern. */
export declare function encodePunsub(requestId: number, patterns?: Bytes | Bytes[]): Buffer;
export declare function encodePing(requestId: number): Buffer;
export declare function encodeWelcome(fields?: {
  version?: number;
  serverVersion?: Bytes;
  nodeId?: Bytes;
  maxFrameBytes?: number;
  maxQueueBytes?: number;
}): Buffer;
export declare function encodeMsg(channel: Bytes, pattern: Bytes, payload: Bytes): Buffer;
export declare function encodeOk(requestId: number): Buffer;
export declare function encodeErr(requestId: number, code: number, message?: Bytes): Buffer;
export declare function encodePong(requestId: number): Buffer;
export declare function encodeGoaway(code: number, message?: Bytes): Buffer;
export declare function encodeFrame(frame: FrameInput): Buffer;
/** Bytes on the wire of a PUB (or PUBX) frame (length prefix included). */
export declare function pubFrameSize(channelBytes: number, payloadBytes: number): number;

/** Decodes a frame body (the bytes after the type byte). Throws ProtocolError. */
export declare function decodeBody(typeByte: number, body: Buffer): Frame;

/**
 * Incremental decoder. push() returns the frames a chunk completed; framing errors throw
 * a ProtocolError as early as the bytes allow (FRAME_TOO_LARGE as soon as the 4 length
 * bytes are in), after which the decoder stays failed.
 */
export declare class FrameDecoder {
  constructor(options?: { maxFrameBytes?: number });
  readonly maxFrameBytes: number;
  /** Bytes received but not yet returned as frames. */
  readonly bufferedBytes: number;
  push(chunk: Uint8Array): Frame[];
  /** Throws MALFORMED_FRAME if the stream stopped inside a frame. */
  end(): void;
}

/** Decodes a buffer holding exactly one complete frame. */
export declare function decodeFrame(bytes: Bytes, options?: { maxFrameBytes?: number }): Frame;
