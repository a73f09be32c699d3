/**
 * Test environment against the real services (DESIGN §6): every test gets its own queue prefix
 * and data directory, both put into process.env (so sandboxed processors forked afterwards see
 * them too), and `cleanup()` removes both — the directory and every Redis key under the prefix.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '../../shared/config.ts';

export const TEST_REDIS_URL = 'redis://127.0.0.1:6379';

const ENV_KEYS = ['REDIS_URL', 'LAKEHOUSE_DATA_DIR', 'LAKEHOUSE_QUEUE_PREFIX', 'LOG_LEVEL'] as const;

export interface TestEnv {
  config: Config;
  /** Absolute path of this test's data root (a fresh temp directory). */
  dataDir: string;
  /** `lhtest-<random>`: every Redis key this test makes starts with `<prefix>:`. */
  prefix: string;
  /** `<dataDir>/staging/uploads`, created. */
  uploadsDir: string;
  /** A connection for the test's own checks; closed by cleanup(). */
  redis: Redis;
  /** Registers an async teardown step; cleanup() runs them last-registered first, before deleting anything. */
  defer(step: () => unknown): void;
  /** Runs deferred steps, deletes the prefix's Redis keys and the data dir, restores process.env. */
  cleanup(): Promise<void>;
}

export async function testEnv(): Promise<TestEnv> {
  const prefix = `lhtest-${randomBytes(6).toString('hex')}`;
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'lhtest-'));
  const uploadsDir = path.join(dataDir, 'staging', 'uploads');
  await fs.mkdir(uploadsDir, { recursive: true });

  const saved = new Map(ENV_KEYS.map((k) => [k, process.env[k]]));
  process.env['REDIS_URL'] = TEST_REDIS_URL;
  process.env['LAKEHOUSE_DATA_DIR'] = dataDir;
  process.env['LAKEHOUSE_QUEUE_PREFIX'] = prefix;
  process.env['LOG_LEVEL'] = 'silent';
  const config = loadConfig(process.env);

  const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 3 });
  const steps: (() => unknown)[] = [];
  let cleaned: Promise<void> | undefined;

  const cleanup = () =>
    (cleaned ??= (async () => {
      const errors: unknown[] = [];
      for (const step of steps.reverse()) {
        try {
          await step();
        } catch (err) {
          errors.push(err);
        }
      }
      try {
        await deleteKeys(redis, `${prefix}:*`);
      } catch (err) {
        errors.push(err);
      }
      await redis.quit().catch(() => redis.disconnect());
      await fs.rm(dataDir, { recursive: true, force: true });
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      if (errors.length > 0) throw new AggregateError(errors, `cleanup of ${prefix} had ${errors.length} error(s)`);
    })());

  return { config, dataDir, prefix, uploadsDir, redis, defer: (step) => void steps.push(step), cleanup };
}

/** SCAN + DEL every key matching `pattern`; returns how many were deleted. */
export async function deleteKeys(redis: Redis, pattern: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  return deleted;
}

export interface WaitOptions {
  /** @defaultValue 10000 */
  timeoutMs?: number;
  /** @defaultValue 50 */
  intervalMs?: number;
  /** Said in the timeout error. */
  what?: string;
}

/**
 * Polls `fn` until it returns a truthy value (which is returned) or the deadline passes (which
 * throws, naming the last value or error seen). Errors thrown by `fn` count as "not yet".
 */
export async function waitFor<T>(fn: () => T | Promise<T>, opts: WaitOptions = {}): Promise<NonNullable<T>> {
  const { timeoutMs = 10_000, intervalMs = 50, what = 'condition' } = opts;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? `last error: ${last.message}` : `last value: ${JSON.stringify(last)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${detail})`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export type CsvValue = string | number | boolean | null | undefined;

export interface CsvOptions {
  /** @defaultValue '\r\n' (RFC 4180) */
  eol?: string;
}

/** One CSV field, quoted (RFC 4180) when it holds a delimiter, a quote or a line break. */
export function csvField(value: CsvValue): string {
  if (value === null || value === undefined) return '';
  const s = String(value);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvText(rows: readonly (readonly CsvValue[])[], { eol = '\r\n' }: CsvOptions = {}): string {
  return rows.map((r) => r.map(csvField).join(',') + eol).join('');
}

/** Writes `rows` (the first one being the header, if any) as UTF-8 CSV, creating parent directories. */
export async function writeCsv(file: string, rows: readonly (readonly CsvValue[])[], opts: CsvOptions = {}): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, csvText(rows, opts), 'utf8');
}

export async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}
