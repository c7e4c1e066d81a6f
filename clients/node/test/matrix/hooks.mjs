// Module resolution hook for the version matrix: the Socket.IO packages (and the control's
// Redis packages) are resolved from one install under test/versions/<name>/ instead of
// clients/node/node_modules, for every importer outside that install: the test body and
// src/socket.io.js alike. So the adapter under test extends the very socket.io-adapter that
// this socket.io version loads, as it does in an app. Registered by register.mjs.
let installDir; // file URL of test/versions/<name>/, with a trailing slash

export function initialize(data) {
  installDir = data.installDir;
}

const REDIRECTED = /^(socket\.io|socket\.io-adapter|socket\.io-client|@socket\.io\/redis-adapter|ioredis)(\/|$)/;

export function resolve(specifier, context, nextResolve) {
  if (REDIRECTED.test(specifier) && !(context.parentURL || '').startsWith(installDir)) {
    return nextResolve(specifier, { ...context, parentURL: new URL('package.json', installDir).href });
  }
  return nextResolve(specifier, context);
}
