// Where the daemon's start-up load stands, for /readyz and the log: the daemon listens before it
// loads its model, and this is what it can say about the load meanwhile.
import type { Logger } from '../log';

export type LoadStage =
  | 'reading model directory'
  | 'seeding catalog store'
  | 'verifying files'
  | 'building catalog'
  | 'loading model and index'
  | 'following the catalog store'
  | 'warming up';

/** What /readyz reports while the load runs; `done` and `total` only for stages that can count (bytes hashed, warm-up requests answered). */
export interface LoadState {
  stage: LoadStage;
  done?: number;
  total?: number;
  /** Seconds since the load began. */
  seconds: number;
}

/** How often a long load logs where it stands, between its stage changes. */
const progressLogMs = 5_000;

export class LoadProgress {
  private stage: LoadStage = 'reading model directory';
  private done: number | undefined;
  private total: number | undefined;
  private finished = false;
  private readonly startedMs = Date.now();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly log: Logger) {
    this.timer = setInterval(() => this.log.info('loading', { ...this.state() }), progressLogMs).unref();
  }

  /** True until `finish`: the model is not loaded and warm yet. */
  get loading(): boolean {
    return !this.finished;
  }

  /** Begins `stage`; a `total` makes it count up to that with `advance`. */
  enter(stage: LoadStage, total?: number): void {
    this.stage = stage;
    this.total = total;
    this.done = total === undefined ? undefined : 0;
    this.log.info('loading', { ...this.state() });
  }

  /** Counts `by` more of the stage's total. */
  advance(by = 1): void {
    if (this.done !== undefined) this.done += by;
  }

  finish(): void {
    this.finished = true;
    clearInterval(this.timer);
  }

  state(): LoadState {
    const seconds = Math.round((Date.now() - this.startedMs) / 100) / 10;
    return { stage: this.stage, ...(this.total === undefined ? {} : { done: this.done, total: this.total }), seconds };
  }
}
