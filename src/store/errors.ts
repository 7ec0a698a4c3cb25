// Typed failures of the catalog store. Each carries a stable `code`; the HTTP layer maps them to
// statuses (E_INVALID 422, E_NOT_FOUND 404, E_VERSION_CONFLICT 412, E_IDEMPOTENCY_CONFLICT and
// E_ARCHIVED 409) without parsing messages.
export type StoreEntity = 'advertiser' | 'campaign' | 'ad';

export class StoreError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Input the store refuses; `field` is the dotted path of the offending field (e.g. "targeting[0][1].type"). */
export class StoreValidationError extends StoreError {
  constructor(
    readonly field: string,
    /** What is wrong with it, without the field's name. */
    readonly reason: string,
  ) {
    super('E_INVALID', `${field}: ${reason}`);
  }
}

export class StoreNotFoundError extends StoreError {
  constructor(
    readonly entity: StoreEntity,
    readonly id: string,
  ) {
    super('E_NOT_FOUND', `no ${entity} ${id}`);
  }
}

/** An update or archive named a version that is no longer the row's (another writer got there first). */
export class StoreVersionConflictError extends StoreError {
  constructor(
    readonly entity: StoreEntity,
    readonly id: string,
    readonly expectedVersion: number,
    readonly currentVersion: number,
  ) {
    super('E_VERSION_CONFLICT', `${entity} ${id} is at version ${currentVersion}, not ${expectedVersion}`);
  }
}

/** A create repeated an idempotency key or a client id with a different body. */
export class StoreIdempotencyConflictError extends StoreError {
  constructor(message: string) {
    super('E_IDEMPOTENCY_CONFLICT', message);
  }
}

/** Archived rows are history: they cannot be edited, and nothing new may be created under them. */
export class StoreArchivedError extends StoreError {
  constructor(
    readonly entity: StoreEntity,
    readonly id: string,
  ) {
    super('E_ARCHIVED', `${entity} ${id} is archived`);
  }
}
