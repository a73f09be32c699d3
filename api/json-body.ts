import type { Context } from 'koa';
import { HttpProblem } from './problem.ts';

export interface JsonBodyLimits {
  /** Largest body in bytes. */
  maxBytes: number;
  /** The whole body must have arrived within this; a trickle is cut (408). */
  timeoutMs: number;
}

/**
 * Reads a JSON request body up to `limit` bytes within `timeoutMs`. The Content-Type is not
 * insisted on: `curl -d` sends form encoding by default and people will paste such lines from
 * the README. An oversized or too-slow body is answered at once with `Connection: close`, so the
 * rest is never read and the socket goes away with the answer.
 */
export async function readJsonBody(ctx: Context, { maxBytes, timeoutMs }: JsonBodyLimits): Promise<unknown> {
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > maxBytes) throw refuse(ctx, tooLarge(maxBytes));
  const text = (await collect(ctx, maxBytes, timeoutMs)).toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpProblem(400, 'Bad Request', `the body is not valid JSON: ${(err as Error).message}`);
  }
}

function collect(ctx: Context, maxBytes: number, timeoutMs: number): Promise<Buffer> {
  const req = ctx.req;
  if (req.readableEnded) return Promise.resolve(Buffer.alloc(0));
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (err?: HttpProblem) => {
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('error', onError);
      if (err) {
        req.pause();
        reject(refuse(ctx, err));
      }
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) return stop(tooLarge(maxBytes));
      chunks.push(chunk);
    };
    const onEnd = () => {
      stop();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: Error) => {
      stop();
      reject(new HttpProblem(400, 'Bad Request', `the body was interrupted: ${err.message}`));
    };
    const timer = setTimeout(
      () => stop(new HttpProblem(408, 'Request Timeout', `the JSON body did not arrive within ${timeoutMs} ms (LAKEHOUSE_HTTP_BODY_TIMEOUT_MS)`)),
      timeoutMs,
    );
    req.on('data', onData).on('end', onEnd).on('error', onError);
  });
}

/** The rest of the body is not read: the connection closes after the answer. */
function refuse(ctx: Context, problem: HttpProblem): HttpProblem {
  ctx.set('Connection', 'close');
  return problem;
}

function tooLarge(limit: number): HttpProblem {
  return new HttpProblem(413, 'Payload Too Large', `the JSON body is larger than ${limit} bytes`);
}
