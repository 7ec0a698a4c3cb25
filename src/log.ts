// Structured logs through pino: one JSON object per line, written synchronously to stdout, each
// with the time, level, pid and hostname, so any collector can parse them and tell replicas apart.
import { hostname } from 'node:os';

import pino from 'pino';

import type { LogLevel } from './config';

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: Fields): void;
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
  /** A logger whose every line also carries `fields` (a request's id); `fields` must not repeat a key its lines pass. */
  child(fields: Fields): Logger;
}

/**
 * Fields that hold a user id, an event token, an Authorization header or a consent string, at the
 * top of a line or one object down. They are personal data or bearer credentials, and a log is
 * read by more people than the ledger.
 */
const secretKeys = ['userId', 'user_id', 'token', 'eventToken', 'event_token', 'authorization', 'consent'];
export const redactedPaths = [...secretKeys, ...secretKeys.map((key) => `*.${key}`), 'user.id', '*.user.id'];

/** What a redacted value reads as. */
export const redactedText = '[redacted]';

class PinoLogger implements Logger {
  constructor(private readonly pino: pino.Logger) {}

  // The message goes in first, as `msg`, so a line reads "time, level, who, msg, fields".
  debug(message: string, fields?: Fields): void {
    this.pino.debug({ msg: message, ...fields });
  }
  info(message: string, fields?: Fields): void {
    this.pino.info({ msg: message, ...fields });
  }
  warn(message: string, fields?: Fields): void {
    this.pino.warn({ msg: message, ...fields });
  }
  error(message: string, fields?: Fields): void {
    this.pino.error({ msg: message, ...fields });
  }
  child(fields: Fields): Logger {
    return new PinoLogger(this.pino.child(fields));
  }
}

/**
 * A logger at `level`, writing each line to `write` (stdout by default, synchronously, so no line
 * is lost when the process exits). An Error passed as `err` is written with its type, message,
 * code and stack.
 */
export function createLogger(level: LogLevel, write?: (line: string) => void): Logger {
  const destination = write ? { write } : pino.destination({ fd: 1, sync: true });
  return new PinoLogger(
    pino(
      {
        level,
        base: { pid: process.pid, hostname: hostname() },
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
        redact: { paths: redactedPaths, censor: redactedText },
      },
      destination,
    ),
  );
}
