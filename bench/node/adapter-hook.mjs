// Module resolve hook (registered by worker.mjs before it imports the podrelay Socket.IO
// adapter). clients/node/src/socket.io.js imports the bare name 'socket.io-adapter', which
// Node would resolve from clients/node/node_modules: a second copy, of whatever version was
// installed there (or none). Resolving it from bench/node instead means every server of the
// benchmark, podrelay adapter and @socket.io/redis-adapter alike, runs on the one
// socket.io-adapter pinned by bench/node/package-lock.json, and that bench/node needs no
// `npm install` in clients/node.

let CLIENT_SRC = new URL('../../clients/node/src/', import.meta.url).href;

// worker.mjs passes the client source directory it uses (run.mjs --client-src).
export async function initialize(data) {
  if (data && data.clientSrc) CLIENT_SRC = data.clientSrc.endsWith('/') ? data.clientSrc : `${data.clientSrc}/`;
}

export async function resolve(specifier, context, nextResolve) {
  if (
    (specifier === 'socket.io-adapter' || specifier.startsWith('socket.io-adapter/')) &&
    context.parentURL &&
    context.parentURL.startsWith(CLIENT_SRC)
  ) {
    return nextResolve(specifier, { ...context, parentURL: import.meta.url });
  }
  return nextResolve(specifier, context);
}
