// The admin guard over every admin route: the routes come from the table the server registers, so
// a route added there is checked here without editing this file.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Daemon, startDaemon } from '../../bench/daemon';
import { projectRoot } from '../../src/paths';
import { adminRoutes } from '../../src/server/admin';
import type { AdminRoute } from '../../src/server/admin_route';
import { consoleFiles, consolePath } from '../../src/server/console';

const token = 'admin-guard-token';
const httpMethod: Record<AdminRoute['method'], string> = { get: 'GET', post: 'POST', patch: 'PATCH', del: 'DELETE' };

/** One request to `route`, with its `:name` segments filled in and a JSON body where it takes one. */
async function call(
  daemon: Daemon,
  route: AdminRoute,
  authorization?: string,
): Promise<{ status: number; error: { code: string; message: string } | undefined }> {
  const url = `${daemon.url}${route.pattern.replace(/:[a-z]+/g, 'c1')}`;
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(authorization === undefined ? {} : { authorization }) };
  const body = route.method === 'get' || route.method === 'del' ? undefined : JSON.stringify({ status: 'paused' });
  const response = await fetch(url, { method: httpMethod[route.method], headers, body });
  const text = await response.text();
  const error =
    response.headers.get('content-type') === 'application/json' ? (JSON.parse(text) as { error?: { code: string; message: string } }).error : undefined;
  return { status: response.status, error };
}

describe('admin guard', () => {
  let daemon: Daemon;
  let disabled: Daemon;
  beforeAll(async () => {
    [daemon, disabled] = await Promise.all([
      startDaemon({ ADSERVE_MODEL_DIR: '/nonexistent/model', ADSERVE_ADMIN_TOKEN: token }),
      startDaemon({ ADSERVE_MODEL_DIR: '/nonexistent/model' }),
    ]);
  });
  afterAll(async () => {
    expect(await Promise.all([daemon.stop(), disabled.stop()])).toEqual([0, 0]);
  });

  it('covers every admin route of the server', () => {
    expect(adminRoutes.map((route) => `${httpMethod[route.method]} ${route.pattern}`).sort()).toEqual([
      'DELETE /v1/admin/catalog/ads/:id',
      'DELETE /v1/admin/catalog/advertisers/:id',
      'DELETE /v1/admin/catalog/campaigns/:id',
      'DELETE /v1/admin/models/b',
      'GET /v1/admin/campaigns',
      'GET /v1/admin/campaigns/:id',
      'GET /v1/admin/catalog/ads',
      'GET /v1/admin/catalog/ads/:id',
      'GET /v1/admin/catalog/advertisers',
      'GET /v1/admin/catalog/advertisers/:id',
      'GET /v1/admin/catalog/campaigns',
      'GET /v1/admin/catalog/campaigns/:id',
      'GET /v1/admin/catalog/export',
      'GET /v1/admin/models',
      'GET /v1/admin/pacing',
      'GET /v1/admin/reports',
      'GET /v1/admin/spend',
      'PATCH /v1/admin/ads/:id',
      'PATCH /v1/admin/campaigns/:id',
      'PATCH /v1/admin/catalog/ads/:id',
      'PATCH /v1/admin/catalog/advertisers/:id',
      'PATCH /v1/admin/catalog/campaigns/:id',
      'POST /v1/admin/catalog/ads',
      'POST /v1/admin/catalog/advertisers',
      'POST /v1/admin/catalog/campaigns',
      'POST /v1/admin/catalog/import',
      'POST /v1/admin/models',
      'POST /v1/admin/models/rollback',
    ]);
    // No admin path is registered outside the table, where the guard would not see it.
    const serverDir = path.join(projectRoot, 'src', 'server');
    const declared = readdirSync(serverDir).flatMap((file) =>
      Array.from(readFileSync(path.join(serverDir, file), 'utf8').matchAll(/(\w+:\s*)?'\/v1\/admin[^']*'/g), (match) => match[0]),
    );
    // The one exception is the console's static page, which holds no data (see the next test).
    expect(declared.filter((literal) => !literal.startsWith('pattern:'))).toEqual([`'${consolePath}'`]);
    expect(declared.length).toBe(adminRoutes.length + 1);
  });

  it('serves the console page and its files without the token, the same bytes as in the repository, and nothing else', async () => {
    for (const [url, file] of [[consolePath, 'index.html'], ...consoleFiles.map((name) => [`${consolePath}/${name}`, name])] as const) {
      for (const server of [daemon, disabled]) {
        const response = await fetch(`${server.url}${url}`);
        expect({ url, status: response.status }).toEqual({ url, status: 200 });
        expect(response.headers.get('content-security-policy')).toMatch(/frame-ancestors 'none'/);
        expect(Buffer.from(await response.arrayBuffer()).equals(readFileSync(path.join(projectRoot, 'console', file)))).toBe(true);
      }
    }
    for (const name of ['index.html', 'nope.js', '..%2Fpackage.json', '%2E%2E']) {
      expect((await fetch(`${daemon.url}${consolePath}/${name}`)).status).toBe(404);
    }
    expect((await fetch(`${daemon.url}${consolePath}/../../../package.json`)).status).toBe(404);
  });

  it('refuses every admin route 401 without the token or with a wrong one', async () => {
    for (const route of adminRoutes) {
      for (const authorization of [
        undefined,
        '',
        'Bearer',
        'Bearer nope',
        `Bearer ${token}x`,
        `Bearer ${'x'.repeat(token.length)}`,
        `bearer ${token}`,
        token,
      ]) {
        expect({ route: route.pattern, authorization, ...(await call(daemon, route, authorization)) }).toEqual({
          route: route.pattern,
          authorization,
          status: 401,
          error: { code: 'unauthorized', message: 'missing or wrong bearer token' },
        });
      }
    }
  });

  it('refuses every admin route 403 when no admin token is configured', async () => {
    for (const route of adminRoutes) {
      for (const authorization of [undefined, 'Bearer ', `Bearer ${token}`]) {
        const { status, error } = await call(disabled, route, authorization);
        expect({ route: route.pattern, status, code: error?.code }).toEqual({ route: route.pattern, status: 403, code: 'admin_disabled' });
      }
    }
  });

  it('lets the right token through to every route, which answers for itself', async () => {
    for (const route of adminRoutes) {
      const { status, error } = await call(daemon, route, `Bearer ${token}`);
      expect({ route: route.pattern, refused: status === 401 || status === 403, unrouted: /^no route for/.test(error?.message ?? '') }).toEqual({
        route: route.pattern,
        refused: false,
        unrouted: false,
      });
    }
  });
});
