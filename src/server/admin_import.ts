// POST /v1/admin/catalog/import: JSON lines, one advertiser, campaign or ad per line with its
// `kind`, written to the catalog store as the body arrives, a batch of lines per transaction. The
// answer reports every line: written (or already there with the same body), or why not.
import { RequestError } from '../errors';
import { StoreValidationError, type StoreEntity } from '../store/errors';
import { entityKinds } from './admin_catalog';
import type { AdminCall, AdminRoute } from './admin_route';
import { declaredLength } from './body';
import { toRefusal } from './refusal';

/** Lines per store transaction: large enough that commits do not dominate, small enough to report early failures. */
const batchLines = 1000;
/** Report lines per write of the answer. */
const reportChunkLines = 1000;
/** Fields the store sets on a row; an import ignores them, so that an export imports as it is. */
const outputOnly = ['version', 'created_at', 'updated_at', 'archived_at'];

type LineReport =
  | { line: number; ok: true; kind: StoreEntity; id: string; created: boolean }
  | { line: number; ok: false; kind?: StoreEntity; id?: string; status: number; code: string; field?: string; message: string };

interface EntityLine {
  line: number;
  kind: StoreEntity;
  body: Record<string, unknown>;
  /** An exported archived row: created, then archived at the end of the import. */
  archived: boolean;
}

/** A line read: an entity to write, or the report of why it cannot be. */
type ReadLine = EntityLine | LineReport;

function readLine(line: number, text: string): ReadLine {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { line, ok: false, status: 400, code: 'bad_request', message: 'line is not valid JSON' };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    return { line, ok: false, status: 422, code: 'invalid_request', message: 'line must be a JSON object' };
  const { kind, ...body } = json as Record<string, unknown>;
  if (!entityKinds.includes(kind as StoreEntity)) {
    return { line, ok: false, status: 422, code: 'invalid_request', field: 'kind', message: `kind must be one of ${entityKinds.join(', ')}` };
  }
  for (const field of outputOnly) delete body[field];
  const archived = body.status === 'archived';
  if (archived) delete body.status;
  return { line, kind: kind as StoreEntity, body, archived };
}

const isEntityLine = (read: ReadLine): read is EntityLine => !('ok' in read);

class CatalogImport {
  readonly reports: LineReport[] = [];
  readonly counts = { created: 0, unchanged: 0, failed: 0 };
  /** Set once the store failed in a way no line is to blame for; nothing more is written. */
  failure: unknown;
  private lineNumber = 0;
  /** The bytes of the line still being received. */
  private partial: Buffer[] = [];
  private pending: ReadLine[] = [];
  /** The kind of the entity lines in `pending`. */
  private pendingKind: StoreEntity | undefined;
  private queue: Promise<void> = Promise.resolve();
  private readonly toArchive: Array<{ kind: StoreEntity; id: string }> = [];

  constructor(private readonly call: AdminCall) {}

  /** Splits `chunk` into lines (on bytes, so a UTF-8 character cut between chunks stays whole). */
  feed(chunk: Uint8Array, last: boolean): void {
    let start = 0;
    for (let newline = chunk.indexOf(0x0a); newline !== -1; newline = chunk.indexOf(0x0a, start)) {
      this.partial.push(Buffer.from(chunk.buffer, chunk.byteOffset + start, newline - start));
      this.take(Buffer.concat(this.partial).toString('utf8'));
      this.partial = [];
      start = newline + 1;
    }
    // Copied: uWS reuses the chunk's memory once onData returns.
    if (start < chunk.byteLength) this.partial.push(Buffer.from(chunk.subarray(start)));
    if (last) {
      if (this.partial.length > 0) this.take(Buffer.concat(this.partial).toString('utf8'));
      this.partial = [];
    }
  }

  /**
   * Writes the complete lines still pending (a cut-off last line is dropped), then archives the
   * rows exported as archived: last, so that the rows an export lists under them are created first.
   * Resolves once everything is written and reported.
   */
  async settle(): Promise<void> {
    this.flush();
    await this.queue;
    if (this.failure !== undefined) return;
    try {
      for (const { kind, id } of this.toArchive) await this.call.deps.store.archive(kind, id);
    } catch (error) {
      this.failure = error;
    }
  }

  private take(text: string): void {
    const line = ++this.lineNumber;
    if (text.trim() === '') return;
    const read = readLine(line, text);
    if (isEntityLine(read)) {
      // A batch holds one kind, so a campaign's advertiser on an earlier line is committed before it.
      if (this.pendingKind !== undefined && this.pendingKind !== read.kind) this.flush();
      this.pendingKind = read.kind;
    }
    this.pending.push(read);
    if (this.pending.length >= batchLines) this.flush();
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = [];
    this.pendingKind = undefined;
    if (batch.length > 0) this.queue = this.queue.then(() => this.write(batch));
  }

  private async write(batch: ReadLine[]): Promise<void> {
    if (this.failure !== undefined || !this.call.exchange.open) return;
    const entities = batch.filter(isEntityLine);
    try {
      const outcomes =
        entities.length === 0
          ? []
          : await this.call.deps.store.createMany(
              entities[0]!.kind,
              entities.map((entity) => entity.body),
            );
      let next = 0;
      for (const read of batch) {
        if (!isEntityLine(read)) {
          this.report(read);
          continue;
        }
        const outcome = outcomes[next++]!;
        const id = typeof read.body.id === 'string' ? read.body.id : undefined;
        if (!outcome.ok) {
          this.report(this.refusal(read, id, outcome.error));
          continue;
        }
        if (read.archived) this.toArchive.push({ kind: read.kind, id: outcome.row.id });
        this.report({ line: read.line, ok: true, kind: read.kind, id: outcome.row.id, created: outcome.created });
      }
    } catch (error) {
      this.failure = error;
    }
  }

  private refusal(read: EntityLine, id: string | undefined, error: unknown): LineReport {
    const refused = toRefusal(error, `line ${read.line} was not imported`, this.call.deps.log);
    const field = error instanceof StoreValidationError ? error.field : undefined;
    return {
      line: read.line,
      ok: false,
      kind: read.kind,
      ...(id === undefined ? {} : { id }),
      status: refused.status,
      code: refused.code,
      ...(field === undefined ? {} : { field }),
      message: refused.message,
    };
  }

  private report(report: LineReport): void {
    this.reports.push(report);
    if (!report.ok) this.counts.failed++;
    else if (report.created) this.counts.created++;
    else this.counts.unchanged++;
  }
}

/** Writes the report as JSON lines, one per non-empty input line in order, then a summary line. */
async function sendReport(call: AdminCall, catalogImport: CatalogImport): Promise<void> {
  const stream = call.exchange.stream(200, 'application/x-ndjson');
  const { reports } = catalogImport;
  for (let start = 0; start < reports.length; start += reportChunkLines) {
    const lines = reports
      .slice(start, start + reportChunkLines)
      .map((report) => `${JSON.stringify(report)}\n`)
      .join('');
    if (!(await stream.write(lines))) return;
  }
  await stream.write(`${JSON.stringify({ summary: { lines: reports.length, ...catalogImport.counts } })}\n`);
  stream.end();
}

function importCatalog(call: AdminCall): void {
  const { exchange, res, req, deps } = call;
  const maxBytes = deps.maxImportBytes;
  const length = declaredLength(req, maxBytes);
  if (length instanceof RequestError) return exchange.failAndCloseNow(length);
  const catalogImport = new CatalogImport(call);
  const finish = (tooLarge: boolean): void => {
    void catalogImport.settle().then(() => {
      if (catalogImport.failure !== undefined)
        return exchange.fail(toRefusal(catalogImport.failure, `the import stopped after ${catalogImport.reports.length} lines`, deps.log));
      if (tooLarge) {
        return exchange.fail(
          new RequestError(
            413,
            'too_large',
            `import body exceeds the limit of ${maxBytes} bytes (maxImportBytes); the ${catalogImport.reports.length} lines before it were imported and stay`,
          ),
          {},
          true,
        );
      }
      return sendReport(call, catalogImport);
    });
  };
  // uWS delivers no data callback for an empty body.
  if (length === 0) return finish(false);
  let received = 0;
  let overflowed = false;
  res.onData((chunk, isLast) => {
    if (overflowed) return;
    received += chunk.byteLength;
    if (received > maxBytes) {
      overflowed = true;
      return finish(true);
    }
    catalogImport.feed(new Uint8Array(chunk), isLast);
    if (isLast) finish(false);
  });
}

export const importRoutes: readonly AdminRoute[] = [{ method: 'post', pattern: '/v1/admin/catalog/import', handle: importCatalog }];
