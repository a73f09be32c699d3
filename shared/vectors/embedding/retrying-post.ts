/**
 * One JSON POST to an embedding server, with a timeout per attempt and retries for what is worth
 * retrying: 429, 5xx, timeouts and network errors. Waits grow exponentially with jitter (so many
 * workers hitting one server do not retry in lock-step), and a server's `Retry-After` wins.
 * Other 4xx answers are the caller's mistake and fail at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface PostOptions {
  url: string;
  headers: Record<string, string>;
  body: unknown;
  timeoutMs: number;
  /** Attempts after the first. */
  maxRetries: number;
  /** First backoff; doubles per attempt. */
  retryBaseMs: number;
  signal?: AbortSignal;
  /** Builds the error thrown for a failure (so it can name provider and model). */
  fail(detail: string, status: number | undefined): Error;
}

/** Longest wait between attempts, whatever the backoff or Retry-After says. */
const MAX_WAIT_MS = 60_000;
const SNIPPET_CHARS = 300;

type Attempt = { ok: true; answer: unknown } | { ok: false; retryable: boolean; detail: string; status?: number; retryAfterMs?: number };

export async function postJson(opts: PostOptions): Promise<unknown> {
  for (let attempt = 1; ; attempt++) {
    const result = await attemptOnce(opts);
    if (result.ok) return result.answer;
    const attempts = `${attempt} attempt${attempt === 1 ? '' : 's'}`;
    if (!result.retryable || attempt > opts.maxRetries) throw opts.fail(`${result.detail} (${attempts})`, result.status);
    await pause(result.retryAfterMs ?? backoff(attempt, opts.retryBaseMs), opts.signal);
  }
}

async function attemptOnce(opts: PostOptions): Promise<Attempt> {
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  try {
    const res = await fetch(opts.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', ...opts.headers },
      body: JSON.stringify(opts.body),
      signal: opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout,
    });
    const text = await res.text();
    if (!res.ok) {
      const retryable = res.status === 429 || res.status >= 500;
      const detail = `HTTP ${res.status} ${res.statusText}: ${snippet(text)}`;
      return { ok: false, retryable, detail, status: res.status, retryAfterMs: retryAfter(res.headers.get('retry-after')) };
    }
    try {
      return { ok: true, answer: JSON.parse(text) };
    } catch {
      return { ok: false, retryable: false, status: res.status, detail: `HTTP ${res.status} with a body that is not JSON: ${snippet(text)}` };
    }
  } catch (err) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    if (timeout.aborted) return { ok: false, retryable: true, detail: `no answer within ${opts.timeoutMs} ms` };
    return { ok: false, retryable: true, detail: `request failed: ${networkCause(err)}` };
  }
}

/** Equal jitter: half the exponential step fixed, half random. */
function backoff(attempt: number, baseMs: number): number {
  const step = Math.min(MAX_WAIT_MS, baseMs * 2 ** (attempt - 1));
  return step / 2 + Math.random() * (step / 2);
}

/** `Retry-After` as seconds or an HTTP date, in ms; undefined when absent or unreadable. */
function retryAfter(header: string | null): number | undefined {
  if (!header) return undefined;
  const ms = /^\d+(\.\d+)?$/.test(header.trim()) ? Number(header) * 1000 : Date.parse(header) - Date.now();
  return Number.isNaN(ms) ? undefined : Math.min(MAX_WAIT_MS, Math.max(0, ms));
}

async function pause(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch {
    throw signal!.reason;
  }
}

function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (!flat) return '(empty body)';
  return flat.length > SNIPPET_CHARS ? `${flat.slice(0, SNIPPET_CHARS)}…` : flat;
}

/** fetch() says only "fetch failed"; the useful part (ECONNREFUSED, ENOTFOUND…) is in its cause. */
function networkCause(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  const message = err instanceof Error ? err.message : String(err);
  return cause?.code ? `${message} (${cause.code})` : cause?.message ? `${message} (${cause.message})` : message;
}
