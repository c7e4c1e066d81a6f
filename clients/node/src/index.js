// podrelay: Node.js client for the podrelay sidecar.
export { Client, connect, parseAddress, DEFAULT_ADDRESS } from './client.js';
export {
  PodrelayError,
  ProtocolError,
  ErrorCode,
  FrameType,
  PROTOCOL_VERSION,
  errorName,
  errorClass,
} from './protocol.js';
