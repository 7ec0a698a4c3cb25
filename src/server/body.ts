// Assembles a request body from uWebSockets.js chunks. uWS neuters each chunk's ArrayBuffer when
// onData returns, so every chunk is copied into memory we own.
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';

import { RequestError } from '../errors';

/**
 * The body length a request declares, or undefined without a Content-Length (no body, or a chunked
 * one), or the RequestError to answer: 400 for a value that is not a decimal number or for several
 * different values (RFC 9112 §6.3; an identical repeat is allowed), 413 above `maxBytes`. Reads
 * every header, so it must run before the request handler returns.
 */
export function declaredLength(req: HttpRequest, maxBytes: number): number | undefined | RequestError {
  let value: string | undefined;
  req.forEach((name, field) => {
    if (name !== 'content-length') return;
    // Differing repeats are kept as a list, which the digit check below refuses.
    if (value !== undefined && field !== value) value = `${value}, ${field}`;
    else value = field;
  });
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) {
    return new RequestError(400, 'invalid_content_length', `Content-Length must be one decimal number of bytes (got ${JSON.stringify(value)})`);
  }
  const length = Number(value);
  if (length > maxBytes) return new RequestError(413, 'too_large', `body of ${value} bytes exceeds the limit of ${maxBytes}`);
  return length;
}

export interface BodyLimits {
  /** Content-Length as sent, when it was. */
  declaredLength: number | undefined;
  maxBytes: number;
}

/**
 * Calls `onBody` with the complete body, or `onTooLarge` as soon as it exceeds `maxBytes`
 * (further chunks are ignored). Neither is called after the request is aborted.
 */
export function readBody(res: HttpResponse, limits: BodyLimits, onBody: (body: Uint8Array) => void, onTooLarge: () => void): void {
  // uWS delivers no data callback for an empty body, so none is awaited.
  if (limits.declaredLength === 0) return onBody(new Uint8Array(0));
  let buffer = new Uint8Array(Math.min(limits.declaredLength ?? 1024, limits.maxBytes));
  let length = 0;
  let overflowed = false;
  res.onData((chunk, isLast) => {
    if (overflowed) return;
    const incoming = new Uint8Array(chunk);
    if (length + incoming.byteLength > limits.maxBytes) {
      overflowed = true;
      onTooLarge();
      return;
    }
    if (length + incoming.byteLength > buffer.byteLength) {
      const grown = new Uint8Array(Math.min(limits.maxBytes, Math.max(buffer.byteLength * 2, length + incoming.byteLength)));
      grown.set(buffer.subarray(0, length));
      buffer = grown;
    }
    buffer.set(incoming, length);
    length += incoming.byteLength;
    if (isLast) onBody(length === buffer.byteLength ? buffer : buffer.slice(0, length));
  });
}

/** The refusal of a body over the route's limit. */
export function tooLargeError(maxBytes: number): RequestError {
  return new RequestError(413, 'too_large', `body exceeds the limit of ${maxBytes} bytes`);
}
