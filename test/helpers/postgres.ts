// A real PostgreSQL 15 (Debian's binaries) in its own temporary directory on a free loopback port,
// run as the unprivileged `postgres` user when the tests run as root (initdb and postgres refuse
// root), as the current user otherwise. Fsync is off: the cluster lives only as long as the file.
// Its default collation is ICU's en-US, as a production database's usually is linguistic, so that
// tests catch text ordering that only holds under a bytewise collation.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import pg from 'pg';

import { freePort } from './redis';

const binDir = '/usr/lib/postgresql/15/bin';

export interface PostgresServer {
  /** URL of the `postgres` database, for administration. */
  adminUrl: string;
  /** Creates a fresh, empty database and returns its URL. */
  createDatabase(): Promise<string>;
  /** Runs one statement on the admin database (e.g. pg_terminate_backend). */
  query<Row extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<Row[]>;
  stop(): Promise<void>;
}

function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const [uid, gid] = ['-u', '-g'].map((flag) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim()));
  return { uid: uid!, gid: gid! };
}

export async function startPostgres(): Promise<PostgresServer> {
  const user = postgresUser();
  const dir = mkdtempSync(path.join(tmpdir(), 'adserve-postgres-'));
  const data = path.join(dir, 'data');
  if (user) {
    chownSync(dir, user.uid, user.gid);
    // The run's temporary root is root's and 0700; the postgres user needs to pass through it.
    const parent = path.dirname(dir);
    if ((statSync(parent).mode & 0o001) === 0) chmodSync(parent, statSync(parent).mode | 0o711);
  }
  const asUser = user ? { uid: user.uid, gid: user.gid } : {};
  execFileSync(
    path.join(binDir, 'initdb'),
    ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--locale-provider=icu', '--icu-locale=en-US', '--no-sync'],
    { ...asUser, stdio: 'pipe' },
  );
  const port = await freePort();
  const settings = [
    'listen_addresses=127.0.0.1',
    `port=${port}`,
    'unix_socket_directories=',
    'fsync=off',
    'synchronous_commit=off',
    'full_page_writes=off',
    'max_connections=200',
  ];
  const child: ChildProcess = spawn(path.join(binDir, 'postgres'), ['-D', data, ...settings.flatMap((setting) => ['-c', setting])], {
    ...asUser,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('database system is ready to accept connections')) resolve();
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`postgres exited with ${code}:\n${output}`)));
    setTimeout(() => reject(new Error(`postgres did not start within 30 s:\n${output}`)), 30_000).unref();
  });
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const admin = new pg.Pool({ connectionString: adminUrl, max: 2 });
  // An idle admin connection may be ended under the pool (a test's pg_terminate_backend, shutdown): the pool drops it.
  admin.on('error', () => undefined);
  let databases = 0;
  return {
    adminUrl,
    async createDatabase() {
      const name = `test_${process.pid}_${++databases}`;
      await admin.query(`CREATE DATABASE ${name}`);
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    async query<Row extends pg.QueryResultRow>(text: string, values?: unknown[]) {
      return (await admin.query<Row>(text, values)).rows;
    },
    async stop() {
      await admin.end();
      // SIGINT: fast shutdown, which ends every client connection rather than waiting for it.
      const pid = Number(readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
      process.kill(pid, 'SIGINT');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
