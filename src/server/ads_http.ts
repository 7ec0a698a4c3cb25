// POST /v1/ads: one AdRequest FlatBuffer in, one AdResponse FlatBuffer out.
import type { TemplatedApp } from 'uWebSockets.js';

import { RequestError } from '../errors';
import { readBody, tooLargeError } from './body';
import { flatbuffersContentType, isSaneRequestId, openPost, type RouteContext } from './context';
import type { Decisions } from './decisions';

export function registerAdsHttpRoutes(app: TemplatedApp, context: RouteContext, decisions: Decisions): void {
  const { maxBodyBytes } = context.config;
  app.post('/v1/ads', (res, req) => {
    const post = openPost(context, res, req, 'ads');
    if (!post) return;
    const { exchange } = post;
    if (post.mediaType !== flatbuffersContentType) {
      return exchange.fail(
        new RequestError(415, 'unsupported_media_type', `Content-Type must be ${flatbuffersContentType} (got ${JSON.stringify(post.contentType)})`),
      );
    }
    const started = process.hrtime.bigint();
    // The answer's X-Request-Id is the AdRequest's id whenever that can go in a header as it is.
    const adoptRequestId = (requestId: string): void => {
      if (isSaneRequestId(requestId)) exchange.requestId = requestId;
    };
    // The exchange counts itself in flight, so the settled promise is not needed here.
    const onBody = (body: Uint8Array): void =>
      void decisions.run(
        body,
        'http',
        started,
        {
          answer: (decision) => {
            exchange.placement = decision.placement;
            adoptRequestId(decision.requestId);
            exchange.send(200, flatbuffersContentType, decision.response);
          },
          refuse: (error, requestId) => {
            adoptRequestId(requestId);
            exchange.fail(error);
          },
        },
        exchange.requestId,
      );
    readBody(res, { declaredLength: post.declaredLength, maxBytes: maxBodyBytes }, onBody, () => exchange.fail(tooLargeError(maxBodyBytes), {}, true));
  });

  app.any('/v1/ads', (res, req) => {
    context.begin(res, req, 'ads').fail(new RequestError(405, 'method_not_allowed', 'use POST with an AdRequest FlatBuffer body'), { Allow: 'POST' });
  });
}
