// Starts the real daemon (dist/src/main.js, built by the bootstrap) in its own process on an ephemeral
// loopback port and stops it.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

import { projectRoot } from '../src/paths';
import { benchTempDir } from './report';

export interface Daemon {
  url: string;
  dataDir: string;
  port: number;
  child: ChildProcess;
  /** Everything the daemon printed so far. */
  output(): string;
  /** Sends `signal` (unless one was sent already) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** The environment a daemon started with `env` runs under (so its config can be derived from it). */
export function daemonEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  // No load balancer routes to these daemons, so they skip the drain delay unless a test asks for one.
  return { ...process.env, ADSERVE_HOST: '127.0.0.1', ADSERVE_PORT: '0', ADSERVE_DRAIN_DELAY_MS: '0', ...env };
}

/**
 * Starts a daemon; unless `env` names one, it gets a fresh data directory (its own spend ledger).
 * Resolves once its start-up load has finished (the "started" line), or with `until: 'listening'`
 * as soon as it listens, while the load still runs. `root` is the checkout whose dist/ and build/
 * run (another build's, to compare two builds in one run).
 */
export async function startDaemon(
  env: Record<string, string> = {},
  { until = 'started', root = projectRoot, startTimeoutMs = 120_000 }: { until?: 'listening' | 'started'; root?: string; startTimeoutMs?: number } = {},
): Promise<Daemon> {
  const dataDir = env.ADSERVE_DATA_DIR ?? benchTempDir('data-');
  const child = spawn(process.execPath, ['--expose-gc', path.join(root, 'dist', 'src', 'main.js')], {
    env: daemonEnv({ ADSERVE_DATA_DIR: dataDir, ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = /"msg":"listening".*?"port":(\d+)/.exec(output);
      if (match && (until === 'listening' || output.includes('"msg":"started"'))) resolve(Number(match[1]));
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`daemon exited with ${code} before it ${until}:\n${output}`)));
    // Needs the info-level "listening" and "started" lines, so the daemon must not run with a quieter log level.
    // A new store of a million ads takes minutes to seed on the 2-core box; such runs pass a longer bound.
    setTimeout(() => reject(new Error(`daemon did not report ${until} within ${startTimeoutMs / 1000} s:\n${output}`)), startTimeoutMs).unref();
  });
  return {
    url: `http://127.0.0.1:${port}`,
    dataDir,
    port,
    child,
    output: () => output,
    async stop(signal = 'SIGTERM') {
      // A second signal would make the daemon skip draining.
      if (!child.killed && child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}
