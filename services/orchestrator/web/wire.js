// gRPC-Web for the restore page: the protobuf wire format of the clearair.v1.ClearAir messages
// the page uses, and the gRPC-Web framing over fetch (binary `application/grpc-web+proto`).
// No generated code and no build step: the schemas below mirror proto/clearair/v1/*.proto.

export const CODES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
  "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
];

/** A call that ended with a gRPC status other than OK, worded as the server worded it. */
export class GrpcError extends Error {
  constructor(code, message) {
    super(`${CODES[code] ?? `status ${code}`}: ${message}`);
    this.code = code;
    this.codeName = CODES[code] ?? String(code);
    this.detail = message;
  }
}

// ---- encoding ------------------------------------------------------------------------------

/** Builds one protobuf message, field by field. */
export class Writer {
  constructor() {
    this.parts = [];
    this.length = 0;
  }
  #push(bytes) {
    this.parts.push(bytes);
    this.length += bytes.length;
  }
  #varint(value) {
    const out = [];
    let v = value;
    while (v >= 0x80) {
      out.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    out.push(v);
    this.#push(Uint8Array.from(out));
  }
  /** A varint field (uint32, uint64 below 2^53, enum, bool); zero is left out as proto3 does. */
  uint(field, value) {
    if (value) {
      this.#varint(field * 8);
      this.#varint(value);
    }
    return this;
  }
  /** A length-delimited field holding `bytes` (a Uint8Array). */
  bytes(field, bytes) {
    this.#varint(field * 8 + 2);
    this.#varint(bytes.length);
    this.#push(bytes);
    return this;
  }
  /** A nested message built by another Writer. */
  message(field, writer) {
    return this.bytes(field, writer.finish());
  }
  finish() {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const part of this.parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
}

// ---- decoding ------------------------------------------------------------------------------

// Field number → [name, type, repeated]. Types: a scalar name or another schema's name.
const SCHEMAS = {
  EncodedImage: { 1: ["data", "bytes"], 2: ["mediaType", "string"] },
  StageTiming: { 1: ["stage", "string"], 2: ["milliseconds", "double"] },
  DegradationProbability: { 1: ["kind", "enum"], 2: ["probability", "float"] },
  PriorSummary: {
    1: ["qualityScore", "float"], 2: ["qualityLevel", "enum"],
    3: ["degradations", "DegradationProbability", true], 4: ["maskCount", "uint"],
    5: ["dominantDegradation", "enum"],
  },
  ClearAirRestoreResponse: {
    1: ["image", "EncodedImage"], 2: ["priors", "PriorSummary"],
    3: ["timings", "StageTiming", true], 4: ["fallbacks", "enum", true],
    5: ["width", "uint"], 6: ["height", "uint"],
  },
  QualityPrior: {
    1: ["features", "float", true], 2: ["score", "float"], 3: ["level", "enum"],
    4: ["backend", "string"], 5: ["rawScore", "float"],
  },
  SemanticMasks: {
    1: ["width", "uint"], 2: ["height", "uint"], 3: ["count", "uint"], 4: ["bits", "bytes"],
    5: ["scores", "float", true], 6: ["backend", "string"],
  },
  DegradationPrior: {
    1: ["content", "float", true], 2: ["degradation", "float", true],
    3: ["probabilities", "DegradationProbability", true], 4: ["backend", "string"],
  },
  AnalyzeResponse: {
    1: ["priors", "PriorSummary"], 2: ["timings", "StageTiming", true],
    3: ["fallbacks", "enum", true], 4: ["quality", "QualityPrior"],
    5: ["masks", "SemanticMasks"], 6: ["degradation", "DegradationPrior"],
    7: ["width", "uint"], 8: ["height", "uint"],
  },
  RestoreProgress: { 1: ["stage", "string"], 2: ["fraction", "float"], 3: ["message", "string"] },
  RestoreStreamResult: { 1: ["response", "ClearAirRestoreResponse"], 2: ["totalBytes", "uint"] },
  RestoreStreamResponse: {
    1: ["progress", "RestoreProgress"], 2: ["result", "RestoreStreamResult"], 3: ["chunk", "bytes"],
  },
};

const DEFAULTS = { bytes: () => new Uint8Array(0), string: () => "", float: () => 0, double: () => 0, uint: () => 0, enum: () => 0 };
const utf8 = new TextDecoder();

class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.at = 0;
  }
  get done() {
    return this.at >= this.bytes.length;
  }
  varint() {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (this.at >= this.bytes.length) throw new Error("truncated varint");
      const b = this.bytes[this.at++];
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 0x80;
    }
  }
  take(n) {
    if (this.at + n > this.bytes.length) throw new Error("truncated field");
    const out = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
}

function scalar(type, wire, reader) {
  switch (type) {
    case "float": return wire === 5 ? reader.view.getFloat32((reader.at += 4) - 4, true) : null;
    case "double": return wire === 1 ? reader.view.getFloat64((reader.at += 8) - 8, true) : null;
    case "uint": case "enum": return wire === 0 ? reader.varint() : null;
    default: return null;
  }
}

/** Decodes `bytes` as the message `name` of the schemas above; unknown fields are skipped. */
export function decode(name, bytes) {
  const schema = SCHEMAS[name];
  const out = {};
  for (const [, [field, type, repeated]] of Object.entries(schema)) {
    if (repeated) out[field] = [];
    else if (type in DEFAULTS) out[field] = DEFAULTS[type]();
    else out[field] = null;
  }
  const reader = new Reader(bytes);
  while (!reader.done) {
    const key = reader.varint();
    const number = Math.floor(key / 8);
    const wire = key % 8;
    const entry = schema[number];
    if (!entry) {
      skip(reader, wire);
      continue;
    }
    const [field, type, repeated] = entry;
    let value;
    if (type === "bytes" || type === "string" || SCHEMAS[type]) {
      if (wire !== 2) throw new Error(`${name}.${field}: unexpected wire type ${wire}`);
      const data = reader.take(reader.varint());
      value = type === "bytes" ? data : type === "string" ? utf8.decode(data) : decode(type, data);
    } else if (repeated && wire === 2) {
      // A packed run of scalars.
      const packed = new Reader(reader.take(reader.varint()));
      const wireOf = { float: 5, double: 1 }[type] ?? 0;
      while (!packed.done) out[field].push(scalar(type, wireOf, packed));
      continue;
    } else {
      value = scalar(type, wire, reader);
      if (value === null) throw new Error(`${name}.${field}: unexpected wire type ${wire}`);
    }
    if (repeated) out[field].push(value);
    else out[field] = value;
  }
  return out;
}

function skip(reader, wire) {
  switch (wire) {
    case 0: reader.varint(); break;
    case 1: reader.take(8); break;
    case 2: reader.take(reader.varint()); break;
    case 5: reader.take(4); break;
    default: throw new Error(`unsupported wire type ${wire}`);
  }
}

// ---- gRPC-Web ------------------------------------------------------------------------------

/** Frames messages as gRPC-Web data frames: flag 0, 4-byte big-endian length, message. */
export function frame(messages) {
  const total = messages.reduce((n, m) => n + 5 + m.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const message of messages) {
    out[at] = 0;
    view.setUint32(at + 1, message.length);
    out.set(message, at + 5);
    at += 5 + message.length;
  }
  return out;
}

function statusOf(text) {
  const fields = {};
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) fields[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return fields;
}

function unescape(message) {
  try {
    return decodeURIComponent(message ?? "");
  } catch {
    return message ?? "";
  }
}

const HTTP_CODES = { 400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14 };

/**
 * Calls `/clearair.v1.ClearAir/<method>` with the framed request `body` and yields each
 * response message's bytes as it arrives; throws a GrpcError for any status but OK.
 */
export async function* call(method, body, { token = "", timeoutMs = 0, signal } = {}) {
  const headers = {
    "content-type": "application/grpc-web+proto",
    accept: "application/grpc-web+proto",
    "x-grpc-web": "1",
  };
  if (timeoutMs > 0) headers["grpc-timeout"] = `${Math.ceil(timeoutMs)}m`;
  if (token) headers.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(`/clearair.v1.ClearAir/${method}`, { method: "POST", headers, body, signal });
  } catch (error) {
    if (error.name === "AbortError") throw new GrpcError(1, "cancelled");
    throw new GrpcError(14, `the server cannot be reached (${error.message})`);
  }
  if (!response.ok) {
    throw new GrpcError(HTTP_CODES[response.status] ?? 2, `HTTP ${response.status} ${response.statusText}`);
  }
  // A trailers-only response carries its status in the headers.
  const early = response.headers.get("grpc-status");
  if (early !== null && early !== "0") {
    throw new GrpcError(Number(early), unescape(response.headers.get("grpc-message")));
  }
  const reader = response.body.getReader();
  // Read chunks are joined only once a whole frame is there, so a large result is copied
  // about once rather than once per network read.
  let pending = [];
  let pendingLength = 0;
  const take = (n) => {
    let all = pending[0];
    if (pending.length > 1) {
      all = new Uint8Array(pendingLength);
      let at = 0;
      for (const part of pending) {
        all.set(part, at);
        at += part.length;
      }
    }
    const rest = all.subarray(n);
    pending = rest.length ? [rest] : [];
    pendingLength = rest.length;
    return all.subarray(0, n);
  };
  let header = null;
  let trailers = early === "0" ? { "grpc-status": "0" } : null;
  for (;;) {
    const { value, done } = await reader.read();
    if (value && value.length) {
      pending.push(value);
      pendingLength += value.length;
    }
    for (;;) {
      if (!header) {
        if (pendingLength < 5) break;
        const bytes = take(5);
        header = { flag: bytes[0], length: new DataView(bytes.buffer, bytes.byteOffset, 5).getUint32(1) };
      }
      if (pendingLength < header.length) break;
      const payload = header.length ? take(header.length).slice() : new Uint8Array(0);
      const { flag } = header;
      header = null;
      if (flag & 0x80) trailers = statusOf(utf8.decode(payload));
      else yield payload;
    }
    if (done) break;
  }
  if (header || pendingLength) throw new GrpcError(13, "the response ended inside a message");
  if (!trailers) throw new GrpcError(2, "the response ended without a gRPC status");
  const code = Number(trailers["grpc-status"] ?? 2);
  if (code !== 0) throw new GrpcError(code, unescape(trailers["grpc-message"]));
}

/** A unary call: one message back. */
export async function unary(method, request, responseType, options) {
  let reply = null;
  for await (const message of call(method, frame([request]), options)) reply = message;
  if (reply === null) throw new GrpcError(13, "no response message");
  return decode(responseType, reply);
}
