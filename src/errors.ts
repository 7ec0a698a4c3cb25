/** HTTP statuses adserve answers errors with (the README's error table). */
export type ErrorStatus = 400 | 401 | 403 | 404 | 405 | 409 | 412 | 413 | 415 | 422 | 429 | 503;

/** A request adserve refuses, with the status and a message that says what was wrong. */
export class RequestError extends Error {
  constructor(
    readonly status: ErrorStatus,
    readonly code: string,
    message: string,
    /** The request field at fault (a path such as `targeting[0][1].type`), when one is. */
    readonly field?: string,
  ) {
    super(message);
  }
}
