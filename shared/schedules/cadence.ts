/**
 * Glossary
 * - cadence: when a repeatable job runs — a fixed interval (`every_ms`) or a cron expression
 *   (`cron`, read in `tz`) — bounded by an optional `start`, `end` and run `limit`.
 * - next run: the first time at or after now (and `start`) the cadence fires, before `end`.
 *
 * Checked here, once, so a schedule that cannot fire is refused when it is written instead of
 * being stored and silently never running.
 */
import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';

/** Shorter intervals would make the scheduler the busiest client of Redis. */
export const MIN_EVERY_MS = 1_000;

const CRON_FIELDS = 'minute hour day-of-month month day-of-week, or 6 fields with seconds first, or a shorthand such as @hourly';

export const cadenceShape = {
  every_ms: z.number().int().min(MIN_EVERY_MS).optional().describe(`run every this many milliseconds (at least ${MIN_EVERY_MS})`),
  cron: z.string().trim().min(1).max(256).optional().describe(`cron expression: ${CRON_FIELDS}`),
  tz: z.string().min(1).max(64).optional().describe('IANA time zone the cron expression is read in (default UTC); cron only'),
  start: z.iso.datetime({ offset: true }).optional().describe('ISO 8601: no run before this instant'),
  end: z.iso.datetime({ offset: true }).optional().describe('ISO 8601: no run after this instant'),
  limit: z.number().int().min(1).optional().describe('stop after this many runs'),
};

export interface Cadence {
  every_ms?: number | undefined;
  cron?: string | undefined;
  tz?: string | undefined;
  start?: string | undefined;
  end?: string | undefined;
  limit?: number | undefined;
}

/** Why `tz` is not a time zone, or undefined when it is one (Intl throws a RangeError on unknown zones). */
export function timeZoneProblem(tz: string): string | undefined {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return undefined;
  } catch {
    return `unknown time zone ${JSON.stringify(tz)}; use an IANA name such as Europe/Berlin or UTC`;
  }
}

/**
 * The first run of a cron expression at or after `from`, or the reason there is none. cron-parser
 * alone accepts expressions with three or four fields, which nobody means; they are refused here.
 */
export function nextCronRun(expr: string, opts: { tz?: string | undefined; from: number; end?: number | undefined }): { next: number } | { problem: string } {
  const fields = expr.trim().split(/\s+/);
  if (!expr.trim().startsWith('@') && fields.length !== 5 && fields.length !== 6) {
    return { problem: `cron ${JSON.stringify(expr)} has ${fields.length} field(s); expected ${CRON_FIELDS}` };
  }
  let parsed;
  try {
    parsed = CronExpressionParser.parse(expr, { currentDate: new Date(opts.from), ...(opts.tz ? { tz: opts.tz } : {}) });
  } catch (err) {
    return { problem: `cron ${JSON.stringify(expr)} is invalid: ${(err as Error).message}` };
  }
  let next: number;
  try {
    next = parsed.next().getTime();
  } catch (err) {
    return { problem: `cron ${JSON.stringify(expr)} never fires: ${(err as Error).message}` };
  }
  if (opts.end !== undefined && next > opts.end) {
    return { problem: `cron ${JSON.stringify(expr)} does not fire between ${new Date(opts.from).toISOString()} and end ${new Date(opts.end).toISOString()}` };
  }
  return { next };
}

/**
 * The rules between fields (zod's per-field checks have run): exactly one of every_ms and cron, tz
 * only with cron and a real zone, end in the future and after start, and a cron that fires at
 * least once in that window. Meant for a zod `superRefine`.
 */
export function checkCadence(c: Cadence, ctx: z.RefinementCtx, now = Date.now()): void {
  const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
  if ((c.every_ms === undefined) === (c.cron === undefined)) {
    issue(c.cron === undefined ? 'every_ms' : 'cron', 'give exactly one of every_ms or cron');
    return;
  }
  const start = c.start === undefined ? undefined : Date.parse(c.start);
  const end = c.end === undefined ? undefined : Date.parse(c.end);
  if (end !== undefined && end <= now) issue('end', 'end must be in the future');
  if (end !== undefined && start !== undefined && end <= start) issue('end', 'end must be after start');
  if (c.tz !== undefined) {
    if (c.cron === undefined) issue('tz', 'tz applies to cron schedules only');
    const problem = timeZoneProblem(c.tz);
    if (problem) return issue('tz', problem);
  }
  if (c.cron !== undefined) {
    const found = nextCronRun(c.cron, { tz: c.tz, from: Math.max(now, start ?? now), end });
    if ('problem' in found) issue('cron', found.problem);
  }
}
