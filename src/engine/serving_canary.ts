// Readiness from the serving model's own answers: the warm-up requests, run at load, are run again
// against arm A every canaryIntervalMs, and answers showing it cannot fill make /readyz answer 503
// until a later round shows it can. Only conclusive rounds change a verdict, so inventory (nothing
// eligible) and overload (queue full, engine closing) never flip it.
import type { Logger } from '../log';
import { isNativeError } from './addon';
import { cannotFill, warmUp } from './warm_up';
import type { Serving } from './serving';

/** Longest a canary round may take before the engine counts as not answering. */
const roundTimeoutMs = 15_000;

export class ServingCanary {
  /** Why each model cannot fill; a model without an entry can. Weak, so swapped-out models drop out. */
  private readonly problems = new WeakMap<Serving, string>();
  private running = false;

  constructor(private readonly log: Logger) {}

  /** Why `serving` cannot fill, or undefined when it can. */
  problemOf(serving: Serving): string | undefined {
    return this.problems.get(serving);
  }

  record(serving: Serving, problem: string | undefined): void {
    const before = this.problems.get(serving);
    if (problem === before) return;
    if (problem === undefined) {
      this.problems.delete(serving);
      this.log.info('the serving model fills again', { model: serving.modelVersion, was: before });
    } else {
      this.problems.set(serving, problem);
      this.log.error('the serving model cannot fill: /readyz answers 503', { model: serving.modelVersion, problem });
    }
  }

  /** Runs one round against `serving`; a round still running when the next is due is not doubled. */
  async check(serving: Serving | undefined): Promise<void> {
    if (this.running || !serving) return;
    this.running = true;
    try {
      const verdict = await this.round(serving);
      if (verdict !== 'inconclusive') this.record(serving, verdict.problem);
    } finally {
      this.running = false;
    }
  }

  private async round(serving: Serving): Promise<{ problem: string | undefined } | 'inconclusive'> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`the engine answered no canary round within ${roundTimeoutMs} ms`), roundTimeoutMs);
    });
    try {
      const answers = await Promise.race([warmUp(serving), timedOut]);
      if (typeof answers === 'string') return { problem: answers };
      if (answers.candidates === 0 && answers.degraded === 0) return 'inconclusive';
      return { problem: cannotFill(answers) };
    } catch (error) {
      if (isNativeError(error) && (error.code === 'E_QUEUE_FULL' || error.code === 'E_SHUTTING_DOWN')) return 'inconclusive';
      return { problem: `a canary request failed: ${(error as Error).message}` };
    } finally {
      clearTimeout(timer);
    }
  }
}
