/**
 * Every error leaves the API as application/problem+json (RFC 9457): type, title, status,
 * detail, plus `errors[]` for validation failures. Stack traces stay in the log.
 */
import type { Context, Next } from 'koa';
import { z } from 'zod';
import { DomainError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { redactSecrets } from '../shared/redact.ts';
import { ZodPayloadError } from '../queues/producer.ts';

export const problemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});

export type Problem = z.infer<typeof problemSchema>;

export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    detail: string,
    readonly errors?: Problem['errors'],
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
  }
}

export function fromZod(error: z.ZodError, where: string): HttpProblem {
  const errors = error.issues.map((i) => ({ path: [where, ...i.path].join('.'), message: i.message }));
  return new HttpProblem(400, 'Bad Request', `invalid ${where}: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, errors);
}

export function sendProblem(ctx: Context, status: number, title: string, detail: string, errors?: Problem['errors']): void {
  const body: Problem = { type: 'about:blank', title, status, detail: redactSecrets(detail), ...(errors ? { errors } : {}) };
  ctx.status = status;
  ctx.type = 'application/problem+json';
  ctx.body = body;
}

function toProblem(err: unknown): HttpProblem | undefined {
  if (err instanceof HttpProblem) return err;
  if (err instanceof ZodPayloadError) return new HttpProblem(400, 'Bad Request', err.message, err.issues);
  if (err instanceof DomainError) return new HttpProblem(err.status, err.title, err.message);
  const status = (err as { status?: number; expose?: boolean }).status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new HttpProblem(status, httpTitle(status), (err as Error).message);
  }
  return undefined;
}

function httpTitle(status: number): string {
  return { 400: 'Bad Request', 404: 'Not Found', 405: 'Method Not Allowed', 413: 'Payload Too Large', 415: 'Unsupported Media Type' }[status] ?? 'Error';
}

export function problemMiddleware(log: Logger) {
  return async function problems(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
      // errors answered without a body (no route, 405 from allowedMethods…) become problems too
      if (ctx.status >= 400 && (ctx.body === undefined || ctx.body === null || (ctx.status === 405 && typeof ctx.body === 'string'))) {
        const detail = ctx.status === 404 ? `no route for ${ctx.method} ${ctx.path}` : `${ctx.method} is not allowed on ${ctx.path}`;
        sendProblem(ctx, ctx.status, httpTitle(ctx.status), detail);
      }
    } catch (err) {
      const problem = toProblem(err);
      if (problem) {
        ctx.set(problem.headers);
        sendProblem(ctx, problem.status, problem.title, problem.message, problem.errors);
        return;
      }
      log.error({ err, method: ctx.method, path: ctx.path }, 'request failed');
      sendProblem(ctx, 500, 'Internal Server Error', 'the server failed to handle this request; the error is in its log');
    }
  };
}
