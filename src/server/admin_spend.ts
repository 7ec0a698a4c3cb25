// GET /v1/admin/spend; the money owner computes the figures, which the campaign views show too.
import { type AdminRoute, sendJson } from './admin_route';

export const spendRoutes: readonly AdminRoute[] = [
  {
    method: 'get',
    pattern: '/v1/admin/spend',
    handle: ({ exchange, deps }) => sendJson(exchange, deps.money.spendReport(Date.now())),
  },
];
