/**
 * One JSON POST to an embedding server, with a timeout per attempt and retries for what is worth
 * retrying: 429, 5xx, timeouts and network errors. Waits grow exponentially with jitter (so many
 * workers hitting one server do not retry in lock-step), and a server's `Retry-After` wins.
 * Other 4xx answers are the caller's mistake and fail at once.
 *
 * Redirects are never followed: the request carries the provider's key, which belongs to the
 * configured URL only, so a 3xx fails naming where it pointed (scheme and host) instead.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { endpointOf, trim } from './provider-error.ts';

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
  /** Removes secrets from the provider's answer before it is cut to {@link errorBodyChars}. */
  scrub(text: string): string;
  /** Characters of an error answer's body quoted in the failure. */
  errorBodyChars: number;
}

/** Longest wait between attempts, whatever the backoff or Retry-After says. */
const MAX_WAIT_MS = 60_000;

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
      redirect: 'manual',
      signal: opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout,
    });
    if (res.status >= 300 && res.status < 400) {
      await res.body?.cancel();
      const detail = `HTTP ${res.status} redirect to ${redirectTarget(opts.url, res.headers.get('location'))} not followed: a provider's key is only sent to its configured URL — configure the URL it redirects to`;
      return { ok: false, retryable: false, status: res.status, detail };
    }
    const text = await res.text();
    if (!res.ok) {
      const retryable = res.status === 429 || res.status >= 500;
      const detail = `HTTP ${res.status} ${trim(opts.scrub(res.statusText), 60)}: ${snippet(opts, text)}`;
      return { ok: false, retryable, detail, status: res.status, retryAfterMs: retryAfter(res.headers.get('retry-after')) };
    }
    try {
      return { ok: true, answer: JSON.parse(text) };
    } catch {
      return { ok: false, retryable: false, status: res.status, detail: `HTTP ${res.status} with a body that is not JSON: ${snippet(opts, text)}` };
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

/** Scrubbed first, then cut: a cut through a key would leave a prefix no scrubber recognises. */
function snippet(opts: PostOptions, text: string): string {
  const flat = trim(opts.scrub(text), opts.errorBodyChars);
  return flat || '(empty body)';
}

/** Where a redirect pointed, as `scheme://host` only (a Location may carry credentials or tokens). */
function redirectTarget(from: string, location: string | null): string {
  if (!location || !URL.canParse(location, from)) return 'an unreadable location';
  return endpointOf(new URL(location, from).href);
}

/** fetch() says only "fetch failed"; the useful part (ECONNREFUSED, ENOTFOUND…) is in its cause. */
function networkCause(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  const message = err instanceof Error ? err.message : String(err);
  return cause?.code ? `${message} (${cause.code})` : cause?.message ? `${message} (${cause.message})` : message;
}
