// The admin console (console/ in the repository): a static page and its script and style, served
// on the admin listener WITHOUT the admin guard. A browser cannot send a bearer token on a plain
// navigation, and the page holds no data: it is the same bytes for everyone, read once at start,
// and every figure it shows comes from a fetch to the guarded admin API with the token the
// operator types in. The headers keep it from being framed or from loading anything but itself.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import type { TemplatedApp } from 'uWebSockets.js';

import { RequestError } from '../errors';
import { projectRoot } from '../paths';
import type { RouteContext } from './context';

/** The console's page; its files are served under it (`${consolePath}/console.js`). */
export const consolePath = '/v1/admin/console';

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/** Exactly the files served, by name: nothing else under console/ (or outside it) can be asked for. */
export const consoleFiles = ['chart.js', 'console.css', 'console.js'] as const;

const headers = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-cache',
};

function load(name: string): { contentType: string; body: Buffer } {
  return { contentType: contentTypes[path.extname(name)]!, body: readFileSync(path.join(projectRoot, 'console', name)) };
}

export function registerConsoleRoutes(app: TemplatedApp, context: RouteContext): void {
  const page = load('index.html');
  const files = new Map(consoleFiles.map((name) => [name, load(name)]));
  app.get(consolePath, (res, req) => context.begin(res, req, 'admin').send(200, page.contentType, page.body, headers));
  app.get(`${consolePath}/:file`, (res, req) => {
    const exchange = context.begin(res, req, 'admin');
    const name = req.getParameter(0) ?? '';
    const file = files.get(name as (typeof consoleFiles)[number]);
    if (!file) return exchange.fail(new RequestError(404, 'not_found', `the console has no file ${JSON.stringify(name)}`));
    exchange.send(200, file.contentType, file.body, headers);
  });
}
