// POST /v1/ads: one AdRequest FlatBuffer in, one AdResponse FlatBuffer out; or, for curl and
// debugging, the same request as JSON in and the same answer as JSON out. Both take the one
// decision path: the JSON is built into the AdRequest FlatBuffer first.
import type { TemplatedApp } from 'uWebSockets.js';

import { RequestError } from '../errors';
import type { Logger } from '../log';
import { adRequestFromJson, JsonRequestError } from '../protocol/json_request';
import { adResponseJson } from '../protocol/json_response';
import { readBody, tooLargeError } from './body';
import { flatbuffersContentType, isSaneRequestId, openPost, type RouteContext } from './context';
import type { Decisions } from './decisions';
import { toRefusal } from './refusal';

const jsonContentType = 'application/json';

/** The AdRequest FlatBuffer of a JSON body, or the refusal to answer it with. */
function fromJson(body: Uint8Array, log: Logger): Uint8Array | RequestError {
  try {
    return adRequestFromJson(body);
  } catch (error) {
    if (!(error instanceof JsonRequestError)) return toRefusal(error, 'the ad request was not answered', log);
    return new RequestError(error.status, error.status === 400 ? 'bad_request' : 'invalid_request', error.message, error.field);
  }
}

export function registerAdsHttpRoutes(app: TemplatedApp, context: RouteContext, decisions: Decisions): void {
  const { maxBodyBytes } = context.config;
  app.post('/v1/ads', (res, req) => {
    const post = openPost(context, res, req, 'ads');
    if (!post) return;
    const { exchange } = post;
    const json = post.mediaType === jsonContentType;
    if (!json && post.mediaType !== flatbuffersContentType) {
      return exchange.fail(
        new RequestError(
          415,
          'unsupported_media_type',
          `Content-Type must be ${flatbuffersContentType} or ${jsonContentType} (got ${JSON.stringify(post.contentType)})`,
        ),
      );
    }
    const started = process.hrtime.bigint();
    // The answer's X-Request-Id is the AdRequest's id whenever that can go in a header as it is.
    const adoptRequestId = (requestId: string): void => {
      if (isSaneRequestId(requestId)) exchange.requestId = requestId;
    };
    const onBody = (body: Uint8Array): void => {
      const request = json ? fromJson(body, exchange.log) : body;
      if (request instanceof RequestError) return exchange.fail(request);
      // The exchange counts itself in flight, so the settled promise is not needed here.
      void decisions.run(
        request,
        'http',
        started,
        {
          answer: (decision) => {
            exchange.placement = decision.placement;
            adoptRequestId(decision.requestId);
            if (json) exchange.send(200, jsonContentType, adResponseJson(decision.response));
            else exchange.send(200, flatbuffersContentType, decision.response);
          },
          refuse: (error, requestId) => {
            adoptRequestId(requestId);
            exchange.fail(error);
          },
        },
        exchange.requestId,
      );
    };
    readBody(res, { declaredLength: post.declaredLength, maxBytes: maxBodyBytes }, onBody, () => exchange.fail(tooLargeError(maxBodyBytes), {}, true));
  });

  app.any('/v1/ads', (res, req) => {
    context.begin(res, req, 'ads').fail(new RequestError(405, 'method_not_allowed', 'use POST with an AdRequest FlatBuffer or JSON body'), { Allow: 'POST' });
  });
}
