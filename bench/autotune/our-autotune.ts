/**
 * Ours: one autotune run through the real API and a real worker process, timed from just before
 * `POST /jobs/autotune` to the parent job's `finishedOn`, and taken apart afterwards from what the
 * run leaves behind — no instrumentation inside the product:
 *
 * - the queue's event stream (`<prefix>:autotune:events`, a Redis stream whose entry ids are the
 *   server's millisecond clock): the parent's first `active`, its `waiting-children`, its second
 *   `active` (the resume after the last trial);
 * - the trial child jobs' `processedOn`/`finishedOn` (each runs once);
 * - the eval set (`<index dir>/evalsets/<id>.json`), whose `created_at` is stamped when its
 *   brute-force ground truth is done; the raw side reuses its queries and ground truth;
 * - the job's result: per trial recall, p50, p95 and build seconds (the thread's own figures).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { EVALSETS_DIR, evalSetSchema, type EvalSet } from '../../shared/autotune/evalset.ts';
import { configKey, type HnswConfig } from '../../shared/autotune/hnsw-config.ts';
import { waitForJob, type Api } from '../vectors/cluster.ts';

export interface OurTrial {
  config: HnswConfig;
  recall: number;
  p50_ms: number;
  p95_ms: number;
  /** The thread's buildGeneration: Parquet scan, inserts, graph + labels written, fsync, rename. */
  build_seconds: number;
  /** The trial job, processedOn → finishedOn. */
  job_seconds: number;
  /** Epoch ms. */
  processedOn: number;
  finishedOn: number;
}

export interface OurRun {
  jobId: string;
  evalset: EvalSet;
  /** POST → the parent's finishedOn. */
  wallSeconds: number;
  /** First trial's processedOn → last trial's finishedOn. */
  trialsSeconds: number;
  trials: OurTrial[];
  winner: string | null;
  promoted: boolean;
  reason: string;
  /** Epoch ms of each step (see the file comment). */
  marks: { posted: number; active1: number; evalsetDone: number; waitingChildren: number; active2: number; finished: number };
}

const seconds = (fromMs: number, toMs: number) => (toMs - fromMs) / 1000;

interface Result {
  evalset: string;
  trials: { config: HnswConfig; recall: number; p50_ms: number; p95_ms: number; build_seconds: number }[];
  winner: { config: HnswConfig } | null;
  promoted: boolean;
  reason: string;
}

export async function runOurAutotune(
  api: Api, admin: Redis, req: { index: string; indexDir: string; k: number; min_recall: number; queries: number; grid: readonly HnswConfig[] }, timeoutMs: number,
): Promise<OurRun> {
  const posted = Date.now();
  // the grid is the job's default: leave it out of the request, so the run is what a user's is
  const answer = await api.call('POST', '/jobs/autotune', { index: req.index, k: req.k, min_recall: req.min_recall, queries: req.queries });
  if (answer.status !== 202) throw new Error(`POST /jobs/autotune answered ${answer.status}: ${JSON.stringify(answer.json).slice(0, 300)}`);
  const jobId = (answer.json as { id: string }).id;
  const view = await waitForJob(api, 'autotune', jobId, timeoutMs);
  const finished = Date.parse(view.finished_at!);
  const result = view.result as Result;
  if (result.trials.length !== req.grid.length) {
    throw new Error(`autotune job ${jobId} finished ${result.trials.length} of ${req.grid.length} trials: ${JSON.stringify(view.result).slice(0, 500)}`);
  }

  const queue = api.running.deps.producer.queue('autotune');
  const trials: OurTrial[] = [];
  for (const config of req.grid) {
    const key = configKey(config);
    const child = await queue.getJob(`autotune-${jobId}-trial-${key}`);
    if (!child?.processedOn || !child.finishedOn) throw new Error(`trial ${key} of autotune job ${jobId} has no timestamps (removed, or never ran)`);
    const r = result.trials.find((t) => configKey(t.config) === key);
    if (!r) throw new Error(`autotune job ${jobId} has no result for ${key}`);
    trials.push({
      config, recall: r.recall, p50_ms: r.p50_ms, p95_ms: r.p95_ms, build_seconds: r.build_seconds,
      job_seconds: seconds(child.processedOn, child.finishedOn), processedOn: child.processedOn, finishedOn: child.finishedOn,
    });
  }

  const events = await parentEvents(admin, `${api.prefix}:autotune:events`, jobId);
  // the file itself: the API's GET leaves the query vectors out, and the raw side needs them
  const evalset = evalSetSchema.parse(JSON.parse(await fs.readFile(path.join(req.indexDir, EVALSETS_DIR, `${result.evalset}.json`), 'utf8')));
  const firstTrial = Math.min(...trials.map((t) => t.processedOn));
  const lastTrial = Math.max(...trials.map((t) => t.finishedOn));
  return {
    jobId, evalset, wallSeconds: seconds(posted, finished), trialsSeconds: seconds(firstTrial, lastTrial), trials,
    winner: result.winner ? configKey(result.winner.config) : null, promoted: result.promoted, reason: result.reason,
    marks: { posted, active1: events.active[0]!, evalsetDone: Date.parse(evalset.created_at), waitingChildren: events.waitingChildren, active2: events.active.at(-1)!, finished },
  };
}

/** The parent's `active` and `waiting-children` entries in the queue's event stream, as epoch ms. */
async function parentEvents(admin: Redis, stream: string, jobId: string): Promise<{ active: number[]; waitingChildren: number }> {
  const entries = await admin.xrange(stream, '-', '+');
  const active: number[] = [];
  let waitingChildren: number | undefined;
  for (const [id, fields] of entries) {
    const f: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
    if (f['jobId'] !== jobId) continue;
    const at = Number(id.split('-')[0]);
    if (f['event'] === 'active') active.push(at);
    if (f['event'] === 'waiting-children') waitingChildren ??= at;
  }
  if (active.length < 2 || waitingChildren === undefined) {
    throw new Error(`the event stream ${stream} lacks the parent's active/waiting-children entries (found ${active.length} active): trimmed?`);
  }
  return { active, waitingChildren };
}
