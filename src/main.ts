// The adserve daemon: load config, start the server, drain on SIGTERM/SIGINT.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { ConfigError, loadConfig } from './config';
import { addon } from './engine/addon';
import { createLogger } from './log';
import { createMetrics } from './metrics';
import { projectRoot } from './paths';
import { startServer } from './server/app';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`adserve: invalid configuration: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const log = createLogger(config.logLevel);
  const version = JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')).version as string;
  addon.configure({ workerThreads: config.workerThreads, computeThreads: config.computeThreads, queueCapacity: config.queueCapacity });
  const build = addon.buildInfo();
  log.info('native engine', { ...build });
  const metrics = createMetrics(build, version);
  const server = await startServer({
    config,
    metrics,
    log,
    readiness: () => ({ ready: false, reason: 'no engine loaded (model and catalog not available)' }),
  });
  log.info('listening', { host: config.host, port: server.port, version });

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn('second signal, exiting without draining', { signal });
      process.exit(1);
    }
    stopping = true;
    log.info('draining', { signal, graceMs: config.shutdownGraceMs });
    server.drain(config.shutdownGraceMs).then(({ drained, abandoned }) => {
      log.info('stopped', { drained, abandoned });
      process.exit(0);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error: Error) => {
  process.stderr.write(`adserve: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
