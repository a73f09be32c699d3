/**
 * An index's trial journal: every trial ever measured on it — by hand, by autotune or by the
 * agent — one JSON line each, in the order they finished. Trials are data: the journal is only
 * appended to, and promotion, the agent's next proposal and the API all read it.
 *
 *   <index dir>/trials.jsonl
 *
 * A retried job must not journal its trial twice, so ids are deterministic per job and config
 * ({@link trialId}) and an append whose id is already there is skipped. A crash mid-append can
 * leave a torn last line: readers skip lines that do not parse, and the next append starts on a
 * fresh line so it is not glued to the torn one.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { BadRequestError, NotFoundError } from '../errors.ts';
import type { DataRoot } from '../storage/data-root.ts';
import { entityName } from '../storage/names.ts';
import { indexDir } from '../vectors/index/index-manifest.ts';
import { configKey, hnswConfigSchema, type HnswConfig } from './hnsw-config.ts';

export const TRIALS_FILE = 'trials.jsonl';

/** Trial ids name kept graph directories too (trial.ts `trialBuildDirName`). */
const TRIAL_ID = /^t-[A-Za-z0-9_-]{1,200}$/;

/** Listing page size. @defaultValue 100 */
export const DEFAULT_TRIAL_LIMIT = 100;
export const MAX_TRIAL_LIMIT = 1000;

const millis = z.number().min(0);

export const trialRecordSchema = z.object({
  trial_id: z.string().regex(TRIAL_ID, 'a trial id is t- then letters, digits, _ or -'),
  index: entityName,
  at: z.string().describe('when the trial finished, ISO 8601'),
  by: z.enum(['manual', 'autotune', 'agent']),
  job_id: z.string().optional(),
  config: hnswConfigSchema,
  evalset: z.string().describe('the eval set id'),
  k: z.number().int().min(1),
  recall: z.number().min(0).max(1),
  p50_ms: millis,
  p95_ms: millis,
  build_seconds: millis,
  memory_mb: millis.describe('hnsw.bin size plus the label map estimate (trial.ts)'),
  generation: z.number().int().min(1).describe('the index generation whose vectors the trial indexed'),
  built_dir: z
    .string()
    .refine((p) => !path.isAbsolute(p) && !p.split(/[\\/]/).includes('..'), 'built_dir must be relative to the index directory')
    .optional()
    .describe('the kept graph, relative to the index directory, when it may be promoted'),
  seed: z.number().int().optional(),
  count: z.number().int().min(0).optional().describe('vectors in the trial graph'),
});

export type TrialRecord = z.infer<typeof trialRecordSchema>;

/**
 * `t-<jobTag>-<configKey>` for a job's trial (a retry gets the same id), else
 * `t-<yyyymmddhhmmss>-<6 hex>-<configKey>` for a one-off.
 */
export function trialId(config: HnswConfig, jobTag?: string): string {
  const tag = jobTag === undefined ? `${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}-${randomBytes(3).toString('hex')}` : jobTag.replace(/[^A-Za-z0-9_-]/g, '_');
  const id = `t-${tag}-${configKey(config)}`;
  if (!TRIAL_ID.test(id)) throw new BadRequestError(`trial id ${JSON.stringify(id)} is too long`);
  return id;
}

function journalFile(root: DataRoot, index: string): string {
  return path.join(indexDir(root, index), TRIALS_FILE);
}

/** Appends in one process are serialised per file, so two cannot both miss each other's id. */
const appending = new Map<string, Promise<unknown>>();

/**
 * Appends `record` unless a trial with its id is journalled already; returns the journalled one.
 * Across processes an index's trials come from one job at a time (autotune holds the index), so
 * the read-then-append needs no lock beyond this process's queue.
 */
export async function appendTrial(root: DataRoot, index: string, record: TrialRecord): Promise<{ appended: boolean; record: TrialRecord }> {
  const valid = trialRecordSchema.parse(record);
  if (valid.index !== index) throw new BadRequestError(`trial ${valid.trial_id} is of index ${valid.index}, not ${index}`);
  const file = journalFile(root, index);
  const previous = appending.get(file) ?? Promise.resolve();
  const run = previous.catch(() => {}).then(() => appendOnce(file, valid));
  appending.set(file, run);
  try {
    return await run;
  } finally {
    if (appending.get(file) === run) appending.delete(file);
  }
}

async function appendOnce(file: string, record: TrialRecord): Promise<{ appended: boolean; record: TrialRecord }> {
  const text = await readText(file);
  const existing = parseLines(text).find((r) => r.trial_id === record.trial_id);
  if (existing) return { appended: false, record: existing };
  const fresh = text === '' || text.endsWith('\n') ? '' : '\n';
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.appendFile(file, `${fresh}${JSON.stringify(record)}\n`, { encoding: 'utf8', flush: true });
  return { appended: true, record };
}

export interface ListTrialsOptions {
  /** @defaultValue {@link DEFAULT_TRIAL_LIMIT}; at most {@link MAX_TRIAL_LIMIT} */
  limit?: number;
  /** A trial id: only trials journalled before it (the next page after a listing ending there). */
  before?: string;
}

/** Newest first. An unknown `before` is a 404: a cursor that names nothing is a caller's mistake. */
export async function listTrials(root: DataRoot, index: string, opts: ListTrialsOptions = {}): Promise<TrialRecord[]> {
  const limit = opts.limit ?? DEFAULT_TRIAL_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_TRIAL_LIMIT) throw new BadRequestError(`limit ${limit} must be an integer in 1–${MAX_TRIAL_LIMIT}`);
  const all = parseLines(await readText(journalFile(root, index)));
  let end = all.length;
  if (opts.before !== undefined) {
    end = all.findIndex((r) => r.trial_id === opts.before);
    if (end < 0) throw new NotFoundError(`index ${index} has no trial ${JSON.stringify(opts.before)}`);
  }
  return all.slice(Math.max(0, end - limit), end).reverse();
}

export async function findTrial(root: DataRoot, index: string, id: string): Promise<TrialRecord | undefined> {
  return parseLines(await readText(journalFile(root, index))).find((r) => r.trial_id === id);
}

async function readText(file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

/** Journal lines in order; a line that does not parse (a torn append) is skipped. */
function parseLines(text: string): TrialRecord[] {
  const out: TrialRecord[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const parsed = trialRecordSchema.safeParse(JSON.parse(line));
      if (parsed.success) out.push(parsed.data);
    } catch {
      /* torn line: see the file comment */
    }
  }
  return out;
}
