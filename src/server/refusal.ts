// The one mapping from a failure to its answer, shared by the HTTP, WebSocket and event routes
// (and the admin and metrics routes), so one kind of failure answers one status everywhere.
//
// A RequestError is the request's fault or a known state of this replica (draining, overloaded,
// ledger not writable) and answers with its own status, code and message. Anything else is an
// internal failure: 503 `internal` with `Retry-After`, like load shedding, not 500, because a
// retry is always safe (an ad request has no side effect; an event is idempotent by its id) and
// may reach a healthy replica. Its detail and stack go to the log, not to the client. The catalog store's
// typed refusals are the caller's fault or a conflict with another writer, and answer as such.
import { type ErrorStatus, RequestError } from '../errors';
import type { Logger } from '../log';
import { StoreError, StoreValidationError } from '../store/errors';

/** Seconds a client should wait before retrying a 503. */
const retryAfterSeconds = '1';

/** Status and code of each store refusal; any other StoreError (a failed migration) is internal. */
const storeRefusals: Record<string, [ErrorStatus, string]> = {
  E_INVALID: [422, 'invalid_request'],
  E_NOT_FOUND: [404, 'not_found'],
  E_VERSION_CONFLICT: [412, 'version_conflict'],
  E_IDEMPOTENCY_CONFLICT: [409, 'idempotency_conflict'],
  E_ARCHIVED: [409, 'archived'],
};

/** The answer to `error`; `undone` says what did not happen ("the event was not recorded"). */
export function toRefusal(error: unknown, undone: string, log: Logger): RequestError {
  if (error instanceof RequestError) return error;
  if (error instanceof StoreError && storeRefusals[error.code]) {
    const [status, code] = storeRefusals[error.code]!;
    return new RequestError(status, code, error.message, error instanceof StoreValidationError ? error.field : undefined);
  }
  // An Error goes in as `err`, which the logger writes with its code and stack: an unexpected failure needs both.
  log.error(undone, { err: error instanceof Error ? error : String(error) });
  return new RequestError(503, 'internal', `internal error: ${undone}; retry`);
}

/** Headers every HTTP answer of this refusal carries (WebSocket frames carry only the status). */
export function refusalHeaders(error: RequestError): Record<string, string> {
  return error.status === 503 ? { 'Retry-After': retryAfterSeconds } : {};
}
