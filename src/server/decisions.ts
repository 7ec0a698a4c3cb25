// Ad decisions as both ad transports (HTTP and WebSocket) run them: admission, the mapping of a
// failure to its refusal, shed counting and the sampled request log, written once. Every line
// about a decision carries its AdRequest's id as `requestId`.
import { RequestError } from '../errors';
import { type AdDecision, type DecisionContext, decideAds } from '../pipeline/ad_decision';
import { refusedRequestId } from '../pipeline/parse_request';
import { NoFillReason } from '../protocol/schema';
import type { RouteContext } from './context';
import { toRefusal } from './refusal';

export type Transport = 'http' | 'ws';

/** Where one decision's outcome goes: exactly one of the two is called, once. */
export interface DecisionReply {
  answer(decision: AdDecision): void;
  /** `requestId`: the AdRequest's id when its bytes pass the Verifier, else the transport's id for the request. */
  refuse(error: RequestError, requestId: string): void;
}

/** The id of a refused request: its AdRequest's when the bytes verify, else `fallback`. */
function refusalRequestId(body: Uint8Array, fallback: string): string {
  try {
    return refusedRequestId(body) || fallback;
  } catch {
    return fallback;
  }
}

export class Decisions {
  private running = 0;

  constructor(
    private readonly context: RouteContext,
    private readonly decision: DecisionContext,
  ) {}

  /**
   * Decides `body` (bytes this process owns), hands the outcome to `reply`, then settles.
   * `transportRequestId` (HTTP's X-Request-Id; a WebSocket frame has none) names the request in
   * the log when its bytes do not verify.
   */
  run(body: Uint8Array, transport: Transport, started: bigint, reply: DecisionReply, transportRequestId = ''): Promise<void> {
    return this.admit(body).then(
      (answer) => {
        reply.answer(answer);
        this.logSample(transport, 200, started, answer.requestId, answer);
      },
      (error: unknown) => {
        const requestId = refusalRequestId(body, transportRequestId);
        const refusal = toRefusal(error, 'the ad request was not answered', this.context.log.child({ requestId }));
        if (refusal.code === 'overloaded') {
          this.context.metrics.shed.inc();
          this.context.metrics.noFill(NoFillReason.Capacity);
        }
        this.logSample(transport, refusal.status, started, requestId, undefined, refusal);
        reply.refuse(refusal, requestId);
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
  private logSample(transport: Transport, status: number, started: bigint, requestId: string, answer?: AdDecision, error?: RequestError): void {
    if (Math.random() >= this.context.config.logSampleRate) return;
    const ms = Math.round((Number(process.hrtime.bigint() - started) / 1e6) * 1000) / 1000;
    const outcome = answer ? { placement: answer.placement, winners: answer.winners } : { error: error?.code };
    this.context.log.info('ad request', { requestId, transport, status, ms, ...outcome });
  }
}
