// Transport only: uWebSockets.js routes, body assembly and status codes, one module per route
// family. Request stages live in src/pipeline/.
import uWS, { type TemplatedApp } from 'uWebSockets.js';

import type { Config } from '../config';
import type { LoadProgress } from '../engine/load_progress';
import type { ModelSwapper } from '../pipeline/model_swap';
import { RequestError } from '../errors';
import type { Logger } from '../log';
import type { Metrics } from '../metrics';
import type { CatalogStore } from '../store/store';
import type { StoreSync } from '../pipeline/store_sync';
import type { DecisionContext } from '../pipeline/ad_decision';
import type { EventContext } from '../pipeline/record_event';
import { registerAdminRoutes } from './admin';
import { registerAdsHttpRoutes } from './ads_http';
import { type EndSockets, registerAdsWebSocket } from './ads_ws';
import { registerConsoleRoutes } from './console';
import { type Lifecycle, RouteContext } from './context';
import { Decisions } from './decisions';
import { registerEventRoutes } from './events';
import { type Readiness, registerHealthRoutes } from './health';

export interface ServerDeps {
  config: Config;
  metrics: Metrics;
  log: Logger;
  decision: DecisionContext;
  swapper: ModelSwapper;
  events: EventContext;
  /** Whether the engine can take traffic, and why not, once the start-up load has finished. */
  readiness: () => Readiness;
  /** The start-up load, which runs while the server already listens. */
  startup: LoadProgress;
  /** Where every admin catalog edit is written; `sync` puts it into service. */
  store: CatalogStore;
  sync: StoreSync;
}

export interface Server {
  readonly port: number;
  /** The admin API's own port when `adminPort` is set; undefined when it shares `port`. */
  readonly adminPort: number | undefined;
  /** Turns /readyz to 503 for good, while every other route keeps serving, so load balancers stop routing here. */
  unready(): void;
  /** Stops accepting, lets in-flight requests finish (at most `graceMs`), then closes every connection. */
  drain(graceMs: number): Promise<{ drained: boolean; abandoned: number }>;
}

// The trufflesuite build silently falls back to a pure-JS server when its binary does not load;
// we refuse that rather than serve at a fraction of the speed.
function requireNativeUws(): void {
  if (typeof (uWS as unknown as { getParts?: unknown }).getParts !== 'function') {
    throw new Error('uWebSockets.js native binary did not load for this Node.js build (the JS fallback is not supported)');
  }
}

export function startServer(deps: ServerDeps): Promise<Server> {
  requireNativeUws();
  const app = uWS.App();
  const context = new RouteContext(deps.config, deps.metrics, deps.log, deps.startup);
  const decisions = new Decisions(context, deps.decision);
  registerAdsHttpRoutes(app, context, decisions);
  const endSockets = registerAdsWebSocket(app, context, decisions);
  registerEventRoutes(app, context, deps.events);
  registerHealthRoutes(app, context, deps.readiness);
  // With its own port, the admin API is not registered on the ad listener at all: /v1/admin/ there
  // is an unknown route (404), so ad traffic cannot reach it even with the token.
  const adminApp = deps.config.adminPort === 0 ? app : uWS.App();
  const adminDeps = {
    log: deps.log,
    decision: deps.decision,
    swapper: deps.swapper,
    sync: deps.sync,
    money: deps.events.money,
    store: deps.store,
    maxImportBytes: deps.config.maxImportBytes,
  };
  registerAdminRoutes(adminApp, context, adminDeps);
  registerConsoleRoutes(adminApp, context);
  const apps = adminApp === app ? [app] : [app, adminApp];
  for (const each of apps) {
    each.any('/*', (res, req) => {
      const target = `${req.getMethod().toUpperCase()} ${req.getUrl()}`;
      context.begin(res, req, 'other').fail(new RequestError(404, 'not_found', `no route for ${target}`));
    });
  }
  return listen(apps, deps.config, context.lifecycle, endSockets);
}

function listenOn(app: TemplatedApp, host: string, port: number): Promise<uWS.us_listen_socket> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (token) => {
      if (!token) return reject(new Error(`cannot listen on ${host}:${port}`));
      resolve(token);
    });
  });
}

async function listen(apps: TemplatedApp[], config: Config, lifecycle: Lifecycle, endSockets: EndSockets): Promise<Server> {
  const tokens = [await listenOn(apps[0]!, config.host, config.port)];
  if (apps.length > 1) {
    try {
      tokens.push(await listenOn(apps[1]!, config.adminHost === '' ? config.host : config.adminHost, config.adminPort));
    } catch (error) {
      uWS.us_listen_socket_close(tokens[0]!);
      throw error;
    }
  }
  const [port, adminPort] = tokens.map((token) => uWS.us_socket_local_port(token as unknown as uWS.us_socket));
  return {
    port: port!,
    adminPort,
    unready() {
      lifecycle.unready = true;
    },
    async drain(graceMs) {
      lifecycle.unready = true;
      lifecycle.draining = true;
      for (const token of tokens) uWS.us_listen_socket_close(token);
      const deadline = Date.now() + graceMs;
      while (lifecycle.inFlight.count > 0 && Date.now() < deadline) await new Promise((done) => setTimeout(done, 10));
      const abandoned = lifecycle.inFlight.count;
      endSockets();
      // Closes keep-alive connections too, which closing the listen socket leaves open.
      for (const app of apps) (app as unknown as { close(): void }).close();
      return { drained: abandoned === 0, abandoned };
    },
  };
}
