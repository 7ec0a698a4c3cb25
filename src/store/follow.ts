// How a process learns of catalog writes: a ChangeSignal says "something was committed" (an
// in-process emitter for SQLite, LISTEN/NOTIFY for PostgreSQL) and a ChangeFollower turns that into
// every change in seq order by reading changesSince from its last seq. Signals carry no data and
// may be lost or doubled; the seq read makes delivery exact, so a signal need only be timely.
import { EventEmitter } from 'node:events';

import pg from 'pg';

import type { Change } from './types';

export interface ChangeSignal {
  /** Calls `listener` after writes commit, and after the signal reconnects (something may have been missed). */
  subscribe(listener: () => void): () => void;
  close(): Promise<void>;
}

/** For SQLite: one process owns the database file, so its own commits are all there is to hear. */
export class LocalSignal implements ChangeSignal {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  notify(): void {
    this.emitter.emit('commit');
  }

  subscribe(listener: () => void): () => void {
    this.emitter.on('commit', listener);
    return () => this.emitter.off('commit', listener);
  }

  async close(): Promise<void> {
    this.emitter.removeAllListeners();
  }
}

export const notifyChannel = 'adserve_catalog';
/** application_name of the listening connection, so operators (and tests) can find it in pg_stat_activity. */
export const listenerApplicationName = 'adserve-catalog-listener';

export interface PostgresSignalOptions {
  url: string;
  /** First delay before reconnecting a lost listener, doubled per failure up to 5 s, in milliseconds. */
  reconnectDelayMs: number;
  onError(error: Error): void;
}

/** One LISTEN connection per store, reopened whenever it drops. */
export class PostgresSignal implements ChangeSignal {
  private readonly emitter = new EventEmitter();
  private client: pg.Client | undefined;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;

  constructor(private readonly options: PostgresSignalOptions) {
    this.emitter.setMaxListeners(0);
  }

  subscribe(listener: () => void): () => void {
    this.emitter.on('commit', listener);
    if (!this.client && !this.retryTimer) void this.connect();
    return () => this.emitter.off('commit', listener);
  }

  private async connect(): Promise<void> {
    this.retryTimer = undefined;
    if (this.closed) return;
    const client = new pg.Client({ connectionString: this.options.url, application_name: listenerApplicationName });
    this.client = client;
    let lost = false;
    const onLost = (error?: Error) => {
      if (lost) return;
      lost = true;
      if (error && !this.closed) this.options.onError(error);
      client.removeAllListeners('notification');
      void client.end().catch(() => undefined);
      if (this.client === client) this.client = undefined;
      this.scheduleReconnect();
    };
    client.on('error', onLost);
    client.on('end', () => onLost());
    client.on('notification', () => this.emitter.emit('commit'));
    try {
      await client.connect();
      await client.query(`LISTEN ${notifyChannel}`);
    } catch (error) {
      onLost(error as Error);
      return;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.failures = 0;
    // Writes committed while no LISTEN was active sent notifications nobody heard.
    this.emitter.emit('commit');
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer) return;
    const delay = Math.min(5_000, this.options.reconnectDelayMs * 2 ** this.failures);
    this.failures += 1;
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.emitter.removeAllListeners();
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}

export interface FollowOptions {
  /** Changes with a seq above this are delivered; 0: from the beginning. */
  fromSeq: number;
  /** Called with each page of changes, in seq order, one call at a time (awaited). */
  onChanges(changes: Change[]): void | Promise<void>;
  /** A failed read or onChanges; the follower retries from the same seq after a short delay. */
  onError?(error: Error): void;
  pageSize?: number;
}

export type ReadChanges = (afterSeq: number, limit: number) => Promise<Change[]>;

/** Delivers every change after fromSeq exactly once, in order, for as long as it is open. */
export class ChangeFollower {
  private lastSeq: number;
  private running = false;
  private again = false;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly unsubscribe: () => void;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly read: ReadChanges,
    signal: ChangeSignal,
    private readonly options: FollowOptions,
  ) {
    this.lastSeq = options.fromSeq;
    this.unsubscribe = signal.subscribe(() => this.wake());
    this.wake();
  }

  /** The seq of the last change delivered. */
  get seq(): number {
    return this.lastSeq;
  }

  private wake(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    void this.pump();
  }

  private async pump(): Promise<void> {
    this.running = true;
    const pageSize = this.options.pageSize ?? 1000;
    try {
      do {
        this.again = false;
        for (;;) {
          const changes = await this.read(this.lastSeq, pageSize);
          if (this.closed || changes.length === 0) break;
          await this.options.onChanges(changes);
          this.lastSeq = changes[changes.length - 1]!.seq;
          if (changes.length < pageSize) break;
        }
      } while (this.again && !this.closed);
    } catch (error) {
      this.options.onError?.(error as Error);
      if (!this.closed) this.retryTimer = setTimeout(() => this.wake(), 500);
    } finally {
      this.running = false;
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.unsubscribe();
    if (this.running) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }
}
