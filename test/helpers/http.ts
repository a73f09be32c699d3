/**
 * A small HTTP client for API tests: real requests over a socket (global fetch), the answer read
 * whole, plus checks for the problem+json error contract (DESIGN §4) and a Server-Sent Events
 * reader.
 */
import assert from 'node:assert/strict';
import { waitFor } from './env.ts';

export interface CallOptions {
  method?: string;
  /** Sent as `Authorization: Bearer <key>`. */
  key?: string;
  /** Sent as `Authorization: Basic base64(user:password)`. */
  basic?: { user: string; password: string };
  /** A string or bytes are sent as they are; anything else as JSON text. */
  body?: unknown;
  headers?: Record<string, string>;
  /** @defaultValue 15000 */
  timeoutMs?: number;
}

export interface HttpAnswer {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: any;
}

export function authHeader(opts: Pick<CallOptions, 'key' | 'basic'>): Record<string, string> {
  if (opts.key !== undefined) return { authorization: `Bearer ${opts.key}` };
  if (opts.basic) return { authorization: `Basic ${Buffer.from(`${opts.basic.user}:${opts.basic.password}`).toString('base64')}` };
  return {};
}

/** One request; `path` may be absolute or relative to `base` (a Location header, say). */
export async function call(base: string, path: string, opts: CallOptions = {}): Promise<HttpAnswer> {
  const { method = 'GET', body, timeoutMs = 15_000 } = opts;
  const headers: Record<string, string> = { ...authHeader(opts), ...opts.headers };
  let payload: string | Uint8Array | undefined;
  if (typeof body === 'string' || body instanceof Uint8Array) payload = body;
  else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(new URL(path, base), { method, headers, body: payload as RequestInit['body'], signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/**
 * Asserts the error contract: the status, `application/problem+json`, type/title/status/detail
 * present and consistent, no stack trace anywhere in the body. Returns the parsed problem.
 */
export function assertProblem(res: HttpAnswer, status: number, what = ''): { type: string; title: string; status: number; detail: string; errors?: { path: string; message: string }[] } {
  const label = `${what ? `${what}: ` : ''}HTTP ${res.status} ${res.text.slice(0, 300)}`;
  assert.equal(res.status, status, label);
  assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json\b/, `${label} (content-type ${res.headers.get('content-type')})`);
  const p = res.json;
  assert.ok(p && typeof p === 'object', label);
  assert.equal(typeof p.type, 'string', label);
  assert.equal(typeof p.title, 'string', label);
  assert.ok(p.title.length > 0, label);
  assert.equal(p.status, status, label);
  assert.equal(typeof p.detail, 'string', label);
  assert.ok(!('stack' in p), `${label}: body has a stack`);
  assert.doesNotMatch(res.text, /\n\s+at |\\n\s+at |node:internal|\.ts:\d+:\d+/, `${label}: body carries a stack trace`);
  return p;
}

export interface SseEvent {
  event: string;
  data: any;
}

/** Parses an event stream's text (comments and keep-alives dropped; data parsed as JSON when it is). */
export function parseSse(text: string): SseEvent[] {
  const events: SseEvent[] = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (data.length === 0) continue;
    const raw = data.join('\n');
    let parsed: unknown = raw;
    try {
      parsed = JSON.parse(raw);
    } catch {
      // not JSON: keep the text
    }
    events.push({ event, data: parsed });
  }
  return events;
}

export interface SseStream {
  status: number;
  headers: Headers;
  /** Resolves with every event once the server ends the stream; rejects if it is still open at the deadline. */
  finished: Promise<SseEvent[]>;
}

/** Opens an event stream and resolves as soon as the response headers arrive; the events come with `finished`. */
export async function openSse(base: string, path: string, opts: Pick<CallOptions, 'key' | 'basic'> & { timeoutMs?: number } = {}): Promise<SseStream> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const res = await fetch(new URL(path, base), {
    headers: { ...authHeader(opts), accept: 'text/event-stream' },
    signal: AbortSignal.timeout(timeoutMs),
  });
  let seen = '';
  const finished = (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body ?? []) seen += decoder.decode(chunk as Uint8Array, { stream: true });
    } catch (err) {
      throw new Error(`event stream ${path} did not end within ${timeoutMs} ms (${(err as Error).message}); received: ${JSON.stringify(seen)}`);
    }
    return parseSse(seen);
  })();
  finished.catch(() => {}); // the caller awaits it; don't report it unhandled meanwhile
  return { status: res.status, headers: res.headers, finished };
}

/** Polls a job (its Location) until it has finished; returns its view (state, result or failed_reason). */
export async function finishedJob(get: (path: string) => Promise<HttpAnswer>, location: string, timeoutMs = 60_000): Promise<any> {
  return waitFor(
    async () => {
      const r = await get(location);
      if (r.status !== 200) return undefined;
      if (r.json.state === 'completed' && r.json.result !== undefined) return r.json;
      if (r.json.state === 'failed' && r.json.failed_reason !== undefined) return r.json;
      return undefined;
    },
    { timeoutMs, intervalMs: 100, what: `${location} to finish` },
  );
}

/** As {@link finishedJob}, and it must have completed. */
export async function completedJob(get: (path: string) => Promise<HttpAnswer>, location: string, timeoutMs = 60_000): Promise<any> {
  const job = await finishedJob(get, location, timeoutMs);
  assert.equal(job.state, 'completed', `${location} failed: ${job.failed_reason}`);
  return job;
}

/** The JSON body of an answer that must have `status`. */
export function okJson(res: HttpAnswer, what: string, status = 200): any {
  assert.equal(res.status, status, `${what}: HTTP ${res.status} ${res.text.slice(0, 800)}`);
  return res.json;
}
