import type { Context } from 'koa';
import { HttpProblem } from './problem.ts';

/**
 * Reads a JSON request body up to `limit` bytes. The Content-Type is not insisted on: `curl -d`
 * sends form encoding by default and people will paste such lines from the README.
 */
export async function readJsonBody(ctx: Context, limit: number): Promise<unknown> {
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > limit) throw tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpProblem(400, 'Bad Request', `the body is not valid JSON: ${(err as Error).message}`);
  }
}

function tooLarge(limit: number): HttpProblem {
  return new HttpProblem(413, 'Payload Too Large', `the JSON body is larger than ${limit} bytes`);
}
