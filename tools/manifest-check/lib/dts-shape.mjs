// Unknown-field detection for Kubernetes objects.
//
// The JSON schemas compiled into kubernetes-models do not forbid extra properties (neither
// does the API server's OpenAPI without --validate=strict), so a misspelt key such as
// `readOnlyRootFileSystem` or `namespaceSelecter` passes schema validation and is silently
// dropped by the cluster. The packages' .d.ts files list every property of every type, so we
// read those: a tiny parser for the subset of TypeScript they use (interfaces, Array<T>,
// unions, string literals, index signatures, type aliases) builds a shape per type, and
// `unknownFields` walks a document against it.
//
// Thread-safety: single-threaded Node only; shapes are cached per .d.ts file for the process.

import { readFileSync, existsSync } from "node:fs";
import path from "node:path";

const LEAF = { kind: "leaf" };

/** Resolves an import specifier seen in `fromFile` to the .d.ts file it names. */
function resolveDts(spec, fromFile, nodeModules) {
  const bare = spec.replace(/\.js$/, "");
  const base = spec.startsWith(".") ? path.resolve(path.dirname(fromFile), bare) : path.join(nodeModules, bare);
  for (const candidate of [`${base}.d.ts`, path.join(base, "index.d.ts")]) {
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

function tokenize(src) {
  const tokens = [];
  const re = /\s*(?:("(?:[^"\\]|\\.)*")|([A-Za-z_$][\w$]*)|(-?\d+(?:\.\d+)?)|(\S))/y;
  let m;
  while (re.lastIndex < src.length && (m = re.exec(src))) {
    if (m[1] !== undefined) tokens.push({ t: "str", v: JSON.parse(m[1]) });
    else if (m[2] !== undefined) tokens.push({ t: "id", v: m[2] });
    else if (m[3] !== undefined) tokens.push({ t: "num", v: m[3] });
    else if (m[4] !== undefined) tokens.push({ t: "p", v: m[4] });
  }
  return tokens;
}

class Parser {
  constructor(tokens, resolveName) {
    this.toks = tokens;
    this.i = 0;
    this.resolveName = resolveName;
  }
  peek(v) {
    const tok = this.toks[this.i];
    return tok && (v === undefined || tok.v === v) ? tok : null;
  }
  take(v) {
    const tok = this.toks[this.i];
    if (!tok || (v !== undefined && tok.v !== v)) {
      throw new Error(`d.ts parse: expected ${v ?? "token"} at ${this.i}, got ${tok ? tok.v : "end"}`);
    }
    this.i++;
    return tok;
  }
  type() {
    this.peek("|") && this.take("|");
    const options = [this.primary()];
    while (this.peek("|")) {
      this.take("|");
      options.push(this.primary());
    }
    return options.length === 1 ? options[0] : { kind: "union", options };
  }
  primary() {
    let result;
    const tok = this.take();
    if (tok.t === "p" && tok.v === "{") {
      result = this.members("}");
    } else if (tok.t === "p" && tok.v === "(") {
      result = this.type();
      this.take(")");
    } else if (tok.t === "id" && tok.v === "Array" && this.peek("<")) {
      this.take("<");
      result = { kind: "array", item: this.type() };
      this.take(">");
    } else if (tok.t === "id" && ["Record", "Partial"].includes(tok.v) && this.peek("<")) {
      // Not used by the packages today; treat as opaque rather than guess.
      let depth = 0;
      do {
        const t = this.take();
        if (t.v === "<") depth++;
        if (t.v === ">") depth--;
      } while (depth > 0);
      result = LEAF;
    } else if (tok.t === "id") {
      result = this.resolveName(tok.v);
    } else {
      result = LEAF; // string or number literal
    }
    while (this.peek("[") && this.toks[this.i + 1]?.v === "]") {
      this.take("[");
      this.take("]");
      result = { kind: "array", item: result };
    }
    return result;
  }
  members(close) {
    const props = new Map();
    let index = null;
    while (!this.peek(close)) {
      if (this.peek("[")) {
        this.take("[");
        this.take(); // key
        this.take(":");
        this.type();
        this.take("]");
        this.take(":");
        index = this.type();
      } else {
        const name = this.take().v;
        this.peek("?") && this.take("?");
        this.take(":");
        props.set(name, this.type());
      }
      (this.peek(";") || this.peek(",")) && this.take();
    }
    this.take(close);
    return { kind: "object", props, index };
  }
}

const fileCache = new Map();

/** Returns the shape of the main interface (or type alias) declared in `file`. */
export function shapeOfFile(file, nodeModules) {
  if (fileCache.has(file)) return fileCache.get(file);
  // A placeholder first, so recursive types (JSONSchemaProps) terminate.
  const shape = { kind: "object", props: new Map(), index: null };
  fileCache.set(file, shape);

  const src = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const imports = new Map();
  for (const m of src.matchAll(/import\s*\{([^}]*)\}\s*from\s*"([^"]+)"/g)) {
    for (const name of m[1].split(",").map((s) => s.trim()).filter(Boolean)) {
      imports.set(name.split(/\s+as\s+/).pop(), m[2]);
    }
  }
  const resolveName = (name) => {
    if (["string", "number", "boolean", "null", "any", "unknown", "object", "undefined", "true", "false"].includes(name)) {
      return name === "any" || name === "unknown" || name === "object" ? { kind: "any" } : LEAF;
    }
    const spec = imports.get(name);
    if (!spec) return { kind: "any" }; // local helper types we do not model
    const target = resolveDts(spec, file, nodeModules);
    return target ? { kind: "ref", file: target } : { kind: "any" };
  };

  let parsed;
  const iface = /export interface \w+(?:\s+extends\s+[\w, ]+)?\s*\{/.exec(src);
  if (iface) {
    const p = new Parser(tokenize(src.slice(iface.index + iface[0].length)), resolveName);
    parsed = p.members("}");
    if (/extends\s+TypeMeta/.test(iface[0])) {
      parsed.props.set("apiVersion", LEAF);
      parsed.props.set("kind", LEAF);
    }
  } else {
    const alias = /export type (\w+) = ([^;]+);/.exec(src);
    parsed = alias ? new Parser(tokenize(alias[2]), resolveName).type() : { kind: "any" };
  }
  Object.assign(shape, parsed);
  if (parsed.kind !== "object") {
    delete shape.props;
    delete shape.index;
  }
  return shape;
}

function deref(shape, nodeModules) {
  let s = shape;
  for (let guard = 0; s && s.kind === "ref" && guard < 20; guard++) s = shapeOfFile(s.file, nodeModules);
  return s;
}

/** Lists JSON-pointer-ish paths of keys in `data` that the shape does not declare. */
export function unknownFields(data, shape, nodeModules, where = "", out = []) {
  const s = deref(shape, nodeModules);
  if (!s || s.kind === "any" || s.kind === "leaf" || data === null || typeof data !== "object") return out;
  if (s.kind === "union") {
    const wanted = Array.isArray(data) ? "array" : "object";
    const candidates = s.options.map((o) => deref(o, nodeModules)).filter((o) => o.kind === wanted || o.kind === "any");
    if (candidates.length === 1) unknownFields(data, candidates[0], nodeModules, where, out);
    return out;
  }
  if (s.kind === "array") {
    if (Array.isArray(data)) data.forEach((item, i) => unknownFields(item, s.item, nodeModules, `${where}/${i}`, out));
    return out;
  }
  if (s.kind === "object" && !Array.isArray(data)) {
    for (const [key, value] of Object.entries(data)) {
      const child = s.props.get(key) ?? s.index;
      if (!child) out.push(`${where}/${key}`);
      else unknownFields(value, child, nodeModules, `${where}/${key}`, out);
    }
  }
  return out;
}
