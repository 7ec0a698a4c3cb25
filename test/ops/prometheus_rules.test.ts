// The shipped alerting rules (ops/prometheus/adserve_rules.yml): promtool accepts them and their
// unit tests pass, and a real Prometheus (Debian's) scraping a real daemon every second fires
// AdserveLedgerFailing once the ledger is made to fail for real (its next segment is /dev/full).
// The rules are loaded as shipped: that alert has no `for`, so nothing is shortened for the test.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { projectRoot } from '../../src/paths';
import { baseEnv, send, serve } from '../helpers/events';
import { freePort } from '../helpers/redis';

const rulesDir = path.join(projectRoot, 'ops', 'prometheus');
const rulesFile = path.join(rulesDir, 'adserve_rules.yml');
const run = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Alert {
  labels: Record<string, string>;
  state: 'pending' | 'firing';
}

interface RuleGroup {
  rules: Array<{ name: string; type: 'alerting' | 'recording'; health: string; state?: string; lastEvaluation: string }>;
}

/** Polls `probe` every 200 ms until it returns a value, or fails after `timeoutMs`. */
async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

describe('Prometheus alerting rules', () => {
  it('pass promtool check rules and their promtool unit tests', async () => {
    expect((await run('promtool', ['check', 'rules', rulesFile])).stdout).toMatch(/SUCCESS: \d+ rules found/);
    expect((await run('promtool', ['test', 'rules', 'adserve_rules.test.yml'], { cwd: rulesDir })).stdout).toMatch(/SUCCESS/);
  });

  describe('in a real Prometheus scraping a real daemon', () => {
    let daemon: Daemon;
    let prometheus: ChildProcess;
    let prometheusUrl: string;
    let dir: string;
    let exited: Promise<void>;

    const api = async <T>(query: string): Promise<T> => ((await (await fetch(`${prometheusUrl}/api/v1/${query}`)).json()) as { data: T }).data;
    const ruleGroups = (): Promise<RuleGroup[]> => api<{ groups: RuleGroup[] }>('rules').then((data) => data.groups);
    const ledgerAlert = async (): Promise<Alert | undefined> =>
      (await api<{ alerts: Alert[] }>('alerts')).alerts.find((alert) => alert.labels.alertname === 'AdserveLedgerFailing');

    beforeAll(async () => {
      // A snapshot after every event, so the ledger moves to segment 2 after the first one.
      daemon = await startDaemon({ ...baseEnv, ADSERVE_LEDGER_SNAPSHOT_EVENTS: '1' });
      dir = mkdtempSync(path.join(tmpdir(), 'adserve-prometheus-'));
      const port = await freePort();
      prometheusUrl = `http://127.0.0.1:${port}`;
      const config = {
        global: { scrape_interval: '1s', evaluation_interval: '1s' },
        rule_files: [rulesFile],
        scrape_configs: [{ job_name: 'adserve', static_configs: [{ targets: [`127.0.0.1:${daemon.port}`] }] }],
      };
      // JSON is YAML.
      writeFileSync(path.join(dir, 'prometheus.yml'), JSON.stringify(config));
      prometheus = spawn(
        'prometheus',
        [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
        { stdio: 'ignore' },
      );
      exited = new Promise((resolve) => prometheus.once('exit', () => resolve()));
      await until('Prometheus to be ready', async () => ((await fetch(`${prometheusUrl}/-/ready`).catch(() => undefined))?.ok ? true : undefined), 20_000);
    });

    afterAll(async () => {
      prometheus?.kill('SIGTERM');
      await exited;
      await daemon?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('fires AdserveLedgerFailing once events are refused because the ledger cannot write', async () => {
      const [ad] = await serve(daemon.url, 1, 'prometheus');
      // Scraped, and every rule evaluated without error against the daemon's series, the ledger
      // alert not pending: a healthy daemon does not trip it.
      await until(
        'the target to be up',
        async () => ((await api<{ activeTargets: Array<{ health: string }> }>('targets')).activeTargets[0]?.health === 'up' ? true : undefined),
        10_000,
      );
      // The first event goes to segment 1; its snapshot opens segment 2, whose first write will fail.
      symlinkSync('/dev/full', path.join(daemon.dataDir, 'spend.2.log'));
      expect((await send(daemon.url, { event_id: 'prom-ok', type: 'impression', token: ad!.token })).status).toBe(200);
      const evaluatedAfter = Date.now() + 2000;
      const rules = await until(
        'two evaluations after the first event',
        async () => {
          const all = (await ruleGroups()).flatMap((group) => group.rules);
          return all.every((rule) => Date.parse(rule.lastEvaluation) > evaluatedAfter) ? all : undefined;
        },
        15_000,
      );
      expect(rules.filter((rule) => rule.type === 'alerting').map((rule) => rule.name)).toContain('AdserveLedgerFailing');
      expect(rules.filter((rule) => rule.health !== 'ok')).toEqual([]);
      expect(rules.find((rule) => rule.name === 'AdserveLedgerFailing')!.state).toBe('inactive');

      await until('the first segment to be snapshotted away', async () => (existsSync(path.join(daemon.dataDir, 'spend.1.log')) ? undefined : true), 10_000);
      const provoked = Date.now();
      let sent = 0;
      const alert = await until(
        'AdserveLedgerFailing to fire',
        async () => {
          // The first write fails (503 internal), every later event is refused (503 ledger_unavailable).
          expect((await send(daemon.url, { event_id: `prom-full-${sent++}`, type: 'click', token: ad!.token })).status).toBe(503);
          const current = await ledgerAlert();
          return current?.state === 'firing' ? current : undefined;
        },
        60_000,
      );
      expect(alert.labels).toMatchObject({ alertname: 'AdserveLedgerFailing', job: 'adserve', instance: `127.0.0.1:${daemon.port}`, severity: 'page' });
      process.stdout.write(`AdserveLedgerFailing fired ${((Date.now() - provoked) / 1000).toFixed(1)} s after the ledger failed (${sent} events refused)\n`);
    }, 90_000);
  });
});
