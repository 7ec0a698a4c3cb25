// Ad decisions as both ad transports (HTTP and WebSocket) run them: admission, the mapping of a
// failure to its refusal, shed counting and the sampled request log, written once.
import { RequestError } from '../errors';
import { type AdDecision, type DecisionContext, decideAds } from '../pipeline/ad_decision';
import { NoFillReason } from '../protocol/schema';
import type { RouteContext } from './context';
import { toRefusal } from './refusal';

export type Transport = 'http' | 'ws';

/** Where one decision's outcome goes: exactly one of the two is called, once. */
export interface DecisionReply {
  answer(decision: AdDecision): void;
  refuse(error: RequestError): void;
}

export class Decisions {
  private running = 0;

  constructor(
    private readonly context: RouteContext,
    private readonly decision: DecisionContext,
  ) {}

  /** Decides `body` (bytes this process owns), hands the outcome to `reply`, then settles. */
  run(body: Uint8Array, transport: Transport, started: bigint, reply: DecisionReply): Promise<void> {
    return this.admit(body).then(
      (answer) => {
        reply.answer(answer);
        this.logSample(transport, 200, started, answer);
      },
      (error: unknown) => {
        const refusal = toRefusal(error, 'the ad request was not answered', this.context.log);
        if (refusal.code === 'overloaded') {
          this.context.metrics.shed.inc();
          this.context.metrics.noFill(NoFillReason.Capacity);
        }
        this.logSample(transport, refusal.status, started, undefined, refusal);
        reply.refuse(refusal);
      },
    );
  }

  /** Runs a decision unless maxConcurrentDecisions are in flight: excess load is shed at once so admitted requests keep their latency. */
  private admit(body: Uint8Array): Promise<AdDecision> {
    const limit = this.context.config.maxConcurrentDecisions;
    if (this.running >= limit) {
      return Promise.reject(new RequestError(503, 'overloaded', `${this.running} ad decisions in flight (maxConcurrentDecisions); retry shortly`));
    }
    this.running++;
    return decideAds(body, this.decision).finally(() => this.running--);
  }

  /** One JSON line per sampled ad request; internal failures are always logged by toRefusal. */
  private logSample(transport: Transport, status: number, started: bigint, answer?: AdDecision, error?: RequestError): void {
    if (Math.random() >= this.context.config.logSampleRate) return;
    const ms = Math.round((Number(process.hrtime.bigint() - started) / 1e6) * 1000) / 1000;
    const outcome = answer ? { requestId: answer.requestId, placement: answer.placement, winners: answer.winners } : { error: error?.code };
    this.context.log.info('ad request', { transport, status, ms, ...outcome });
  }
}
