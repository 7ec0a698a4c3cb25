// The example clients under test: an AdRequest with every schema field set, in each client's form,
// the Python client run as a user runs it, and the schema's tables read from schemas/*.fbs.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { ByteBuffer } from 'flatbuffers';

import type { AdRequestSpec } from '../../clients/typescript/adserve_client';
import { projectRoot } from '../../src/paths';
import { AuctionType, DeviceType, Gender, Placement } from '../../src/protocol/schema';

/** Every AdRequest field set to a value other than its default (a default is not written), in the schema's names. */
export const everyFieldRequest = {
  id: 'clients-every-field',
  placement: 'Search',
  tmax_ms: 5000,
  user: { id: 'u0000001', yob: 1990, gender: 'Female', segments: ['runners', 'outdoor'], consent: 'CQcoverageAAAA' },
  device: { type: 'Mobile', os: 'Android', language: 'en-US' },
  geo: { country: 'US', region: 'CA', city: 'San Francisco', zip: '94103' },
  query: 'running shoes',
  product_id: 'p00000010',
  category_id: 'shoes',
  slots: 3,
  floor_cpm_micros: 1000,
  auction_type: 'Gsp',
  blocked_advertisers: ['adv00000'],
  blocked_categories: ['auto'],
  blocked_products: ['p00000005'],
  debug: true,
  test: true,
  timestamp_ms: 1_764_590_400_000,
  utc_offset_minutes: -480,
  session_id: 'clients-session',
  page: 1,
  cur: ['EUR', 'USD'],
  regs: { coppa: true, gdpr: true, us_privacy: '1YYN', gpp: 'DBABMA~CQcoverageAAAA', gpp_sid: [2] },
} as const;

/** The same request for the TypeScript client; `Required` makes a new spec field fail to compile until it is set here. */
export function everyFieldSpec(id: string): Required<AdRequestSpec> {
  const r = everyFieldRequest;
  return {
    id,
    placement: Placement.Search,
    tmaxMs: r.tmax_ms,
    userId: r.user.id,
    yob: r.user.yob,
    gender: Gender.Female,
    segments: [...r.user.segments],
    deviceType: DeviceType.Mobile,
    os: r.device.os,
    language: r.device.language,
    country: r.geo.country,
    region: r.geo.region,
    city: r.geo.city,
    zip: r.geo.zip,
    query: r.query,
    productId: r.product_id,
    categoryId: r.category_id,
    slots: r.slots,
    floorCpmMicros: BigInt(r.floor_cpm_micros),
    auctionType: AuctionType.Gsp,
    blockedAdvertisers: [...r.blocked_advertisers],
    blockedCategories: [...r.blocked_categories],
    blockedProducts: [...r.blocked_products],
    debug: r.debug,
    test: r.test,
    timestampMs: BigInt(r.timestamp_ms),
    utcOffsetMinutes: r.utc_offset_minutes,
    sessionId: r.session_id,
    page: r.page,
    cur: [...r.cur],
    consent: r.user.consent,
    coppa: r.regs.coppa,
    gdpr: r.regs.gdpr,
    usPrivacy: r.regs.us_privacy,
    gpp: r.regs.gpp,
    gppSid: [...r.regs.gpp_sid],
  };
}

export interface PythonRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs /usr/bin/python3 with the Python client and its generated code on the path, as the README says to. */
export function runPython(args: string[], stdin?: string): Promise<PythonRun> {
  return new Promise((resolve) => {
    const child = execFile(
      '/usr/bin/python3',
      args,
      {
        cwd: projectRoot,
        env: { PATH: process.env.PATH, PYTHONPATH: [path.join(projectRoot, 'clients', 'python'), path.join(projectRoot, 'build', 'gen', 'python')].join(':') },
      },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
    if (stdin !== undefined) child.stdin!.end(stdin);
  });
}

export interface SchemaField {
  name: string;
  type: string;
}

/** Every table of schemas/*.fbs with its fields in declaration order (the order of their vtable slots). */
export function schemaTables(): Map<string, SchemaField[]> {
  const tables = new Map<string, SchemaField[]>();
  const dir = path.join(projectRoot, 'schemas');
  for (const file of readdirSync(dir).filter((name) => name.endsWith('.fbs'))) {
    const text = readFileSync(path.join(dir, file), 'utf8').replace(/\/\/.*$/gm, '');
    for (const [, name, body] of text.matchAll(/\btable\s+(\w+)\s*\{([^}]*)\}/g)) {
      const fields = [...body!.matchAll(/(\w+)\s*:\s*([\w[\]]+)/g)].map(([, field, type]) => ({ name: field!, type: type! }));
      tables.set(name!, fields);
    }
  }
  return tables;
}

/**
 * The fields of `table` (and of the tables it holds, as `user.segments`) that `bytes` does not
 * carry. A scalar equal to its default is not written either, so a request meant to set every
 * field must set each to something else.
 */
export function absentFields(bytes: Uint8Array, table: string): string[] {
  const tables = schemaTables();
  const buffer = new ByteBuffer(bytes);
  const absent: string[] = [];
  const walk = (tableName: string, position: number, prefix: string): void => {
    tables.get(tableName)!.forEach((field, slot) => {
      const offset = buffer.__offset(position, 4 + 2 * slot);
      if (offset === 0) absent.push(prefix + field.name);
      else if (tables.has(field.type)) walk(field.type, buffer.__indirect(position + offset), `${prefix}${field.name}.`);
    });
  };
  walk(table, buffer.readInt32(buffer.position()) + buffer.position(), '');
  return absent;
}

/** `ad_id` → `adId`: the TypeScript client's name for a schema field. */
export const camelCase = (name: string): string => name.replace(/_(\w)/g, (_, letter: string) => letter.toUpperCase());
