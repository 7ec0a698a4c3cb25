// POST /v1/events: an impression, click or conversion, as an Event FlatBuffer or JSON, answered
// once it is durable.
import type { TemplatedApp } from 'uWebSockets.js';

import { RequestError } from '../errors';
import { type EventContext, type EventInput, parseEvent, recordEvent } from '../pipeline/record_event';
import { readBody, tooLargeError } from './body';
import { flatbuffersContentType, openPost, type RouteContext } from './context';
import { toRefusal } from './refusal';

export function registerEventRoutes(app: TemplatedApp, context: RouteContext, events: EventContext): void {
  const { config } = context;
  app.post('/v1/events', (res, req) => {
    const post = openPost(context, res, req, 'events');
    if (!post) return;
    const { exchange } = post;
    const binary = post.mediaType === flatbuffersContentType;
    if (!binary && post.mediaType !== 'application/json') {
      return exchange.fail(new RequestError(415, 'unsupported_media_type', `Content-Type must be ${flatbuffersContentType} or application/json`));
    }
    const refuse = (error: unknown): void => exchange.fail(toRefusal(error, 'the event was not recorded', exchange.log));
    readBody(
      res,
      { declaredLength: post.declaredLength, maxBytes: config.maxBodyBytes },
      (body) => {
        let input: EventInput;
        try {
          input = parseEvent(body, binary);
        } catch (error) {
          return refuse(error);
        }
        recordEvent(input, events, Date.now()).then((recorded) => exchange.send(200, 'application/json', JSON.stringify(recorded)), refuse);
      },
      () => exchange.fail(tooLargeError(config.maxBodyBytes), {}, true),
    );
  });
}
