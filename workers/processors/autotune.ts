import { Job, UnrecoverableError } from 'bullmq';
import fs from 'node:fs/promises';
import type { z } from 'zod';
import { autotuneJobPayload, type autotuneResult, type trialPayload } from '../../queues/autotune.ts';
import { activateConfig } from '../../shared/autotune/activate.ts';
import { agentGate, bestTrial, proposeNext } from '../../shared/autotune/agent.ts';
import { generateEvalSet, listEvalSets, readEvalSet, saveEvalSet, suppliedEvalSet } from '../../shared/autotune/evalset.ts';
import { configKey, DEFAULT_GRID, type HnswConfig } from '../../shared/autotune/hnsw-config.ts';
import { findTrial, listTrials, MAX_TRIAL_LIMIT, trialId, type TrialRecord } from '../../shared/autotune/journal.ts';
import { promote } from '../../shared/autotune/promotion.ts';
import { runAndRecordTrial } from '../../shared/autotune/trial-run.ts';
import { trialBuildDir } from '../../shared/autotune/trial.ts';
import { indexLeaseKey, indexLockKey } from '../../shared/catalog/lock-keys.ts';
import type { Bucket } from '../../shared/storage/buckets.ts';
import { providerFor } from '../../shared/vectors/embedding/provider-cache.ts';
import { specOf } from '../../shared/vectors/index-search.ts';
import { jobTag } from '../../shared/vectors/embed-shards.ts';
import { currentGeneration, type IndexManifest } from '../../shared/vectors/index/index-manifest.ts';
import { isPermanent } from '../permanent-failure.ts';
import { workerContext, type WorkerContext } from '../context.ts';
import { locateIndex } from '../embed-steps.ts';
import { fanOutTrials } from '../fan-out.ts';
import { jobProgress, progressStore, setProgress } from '../job-progress.ts';

type Payload = z.output<typeof autotuneJobPayload>;
type Result = z.output<typeof autotuneResult>;

/** The `autotune` queue: autotune runs (fanning out trials), single trials, eval sets, agent ticks. */
export default async function autotune(job: Job, token?: string): Promise<Result> {
  const ctx = await workerContext();
  const p = autotuneJobPayload.parse(job.data);
  try {
    switch (p.kind) {
      case 'trial': {
        const record = await trial(job, ctx, p);
        await reportTrialDone(ctx, job);
        return summary(record);
      }
      case 'evalset':
        return await makeEvalSet(ctx, p);
      case 'agent':
        return await agentTick(job, ctx, p);
      default:
        return await orchestrate(job, token!, ctx, p);
    }
  } catch (err) {
    if (isPermanent(err)) throw new UnrecoverableError((err as Error).message);
    throw err;
  }
}

function summary(t: TrialRecord) {
  return { trial_id: t.trial_id, config: t.config, recall: t.recall, p50_ms: t.p50_ms, p95_ms: t.p95_ms, build_seconds: t.build_seconds };
}

/** The autotune run's progress: trials done of its trials (each trial is a child job). */
async function reportTrialDone(ctx: WorkerContext, job: Job): Promise<void> {
  const parentId = job.parent?.id;
  const parent = parentId ? await Job.fromId(ctx.queue('autotune'), parentId) : undefined;
  if (!parent) return;
  const c = await parent.getDependenciesCount();
  const done = (c.processed ?? 0) + (c.failed ?? 0) + (c.ignored ?? 0) + 1; // this one is not counted yet
  const total = done - 1 + (c.unprocessed ?? 0);
  await setProgress(progressStore(ctx), parent, Math.min(done / Math.max(total, 1), 1) * 95, { phase: 'trials', trials_done: Math.min(done, total), trials_total: total });
}

async function trial(job: Job, ctx: WorkerContext, p: z.output<typeof trialPayload>): Promise<TrialRecord> {
  const bucket = ctx.buckets.get(p.bucket);
  return runAndRecordTrial({
    root: bucket.root, index: p.index, evalset: p.evalset, config: p.config, k: p.k, by: p.by,
    jobTag: p.parent_tag, jobId: job.id!, progress: jobProgress(job, progressStore(ctx)),
  });
}

function embedderOf(ctx: WorkerContext, index: IndexManifest) {
  const provider = providerFor(specOf(index), ctx.config);
  return (texts: string[]) => provider.embed(texts);
}

async function makeEvalSet(ctx: WorkerContext, p: Extract<Payload, { kind: 'evalset' }>): Promise<Result> {
  const { bucket, index } = await locateIndex(ctx, p.index);
  const existing = await readEvalSet(bucket.root, p.index, p.id).catch(() => undefined); // a retry after the save
  const set =
    existing ??
    (p.items
      ? await suppliedEvalSet({ index, k: p.k, items: p.items, embed: embedderOf(ctx, index), id: p.id })
      : await generateEvalSet({ root: bucket.root, index, n: p.n ?? 100, k: p.k, seed: p.seed, id: p.id, ...(p.texts ? { texts: p.texts, embed: embedderOf(ctx, index) } : {}) }));
  if (!existing) await saveEvalSet(bucket.root, set);
  return { evalset: set.id, n: set.queries.length, k: set.k };
}

async function orchestrate(job: Job, token: string, ctx: WorkerContext, p: Extract<Payload, { kind: 'autotune' }>): Promise<Result> {
  const { bucket, index } = await locateIndex(ctx, p.index);
  if (!currentGeneration(index)) throw new UnrecoverableError(`index ${p.index} has no generation yet: run an embed job first`);
  const tag = jobTag(job.queueName, job.id!);
  const grid = p.grid ?? DEFAULT_GRID;
  if (p.step === 'plan') {
    const evalsetId = p.evalset ?? (await ensureGeneratedSet(ctx, bucket, index, `es-${tag}`.toLowerCase(), p.queries, p.k));
    p = { ...p, step: 'decide', evalset_id: evalsetId, started_at: Date.now() };
    await job.updateData(p);
    await fanOutTrials(job, token, progressStore(ctx), ctx.queue('autotune'), grid.map((config) => ({
      kind: 'trial' as const, index: p.index, bucket: bucket.name, evalset: evalsetId, k: p.k, config, parent_tag: tag, by: 'autotune' as const,
    })));
  }
  const trials = (await Promise.all(grid.map((c) => findTrial(bucket.root, p.index, trialId(c, tag))))).filter((t): t is TrialRecord => t !== undefined);
  const best = bestTrial(trials); // highest recall, then lowest p50 (the agent's champion rule)
  const decided = await decide(ctx, bucket, p, best);
  await Promise.all(trials.filter((t) => t !== best || !decided.promoted).map((t) => fs.rm(trialBuildDir(bucket.root, p.index, t.trial_id), { recursive: true, force: true })));
  return { index: p.index, evalset: p.evalset_id!, trials: trials.map(summary), winner: best ? summary(best) : null, ...decided };
}

async function decide(ctx: WorkerContext, bucket: Bucket, p: Extract<Payload, { kind: 'autotune' }>, best: TrialRecord | undefined): Promise<{ promoted: boolean; reason: string; generation: number | null }> {
  if (!best) return { promoted: false, reason: 'no trial finished; nothing to promote', generation: null };
  if (best.recall < p.min_recall) {
    return { promoted: false, reason: `the best recall@${p.k} was ${best.recall.toFixed(3)} (${configKey(best.config)}), below min_recall ${p.min_recall}: nothing promoted`, generation: null };
  }
  const { registry } = await promote({
    root: bucket.root, name: p.index, redis: ctx.redis, lockKey: indexLockKey(ctx.config, p.index),
    // a run's decision waits out an embed or refresh in progress (its trials are done by now)
    lease: { key: indexLeaseKey(ctx.config, p.index), waitMs: ctx.config.indexLease.maxWaitMs, ttlMs: ctx.config.indexLease.ttlMs },
    trial: { trial_id: best.trial_id, config: best.config, built_dir: best.built_dir }, by: 'autotune', activate: activateConfig(bucket.root, p.index),
  });
  return { promoted: true, reason: `promoted ${configKey(best.config)}: recall@${p.k} ${best.recall.toFixed(3)}, p50 ${best.p50_ms} ms`, generation: registry.current?.generation ?? null };
}

async function ensureGeneratedSet(ctx: WorkerContext, bucket: Bucket, index: IndexManifest, id: string, n: number, k: number): Promise<string> {
  await makeEvalSet(ctx, { kind: 'evalset', index: index.name, id, n, k, seed: 1 });
  return id;
}

/** One step of the opt-in agent: propose the next config around the champion and try it, within its budget. */
async function agentTick(job: Job, ctx: WorkerContext, p: Extract<Payload, { kind: 'agent' }>): Promise<Result> {
  const { bucket, index } = await locateIndex(ctx, p.index);
  if (!currentGeneration(index)) return { ran: false, reason: 'the index has no generation yet' };
  const journal = await listTrials(bucket.root, p.index, { limit: MAX_TRIAL_LIMIT });
  const mine = journal.filter((t) => t.by === 'agent').map((t) => Date.parse(t.at));
  const gate = agentGate({ now: Date.now(), lastTrialAt: mine.length ? Math.max(...mine) : undefined, trialsLastHour: mine, maxTrialsPerHour: p.max_trials_per_hour, cooldownMs: p.cooldown_ms });
  if (!gate.ok) return { ran: false, reason: `${gate.reason}: next trial after ${new Date(gate.retry_at).toISOString()}` };
  const config: HnswConfig | undefined = proposeNext({ journal, seed: 1 });
  if (!config) return { ran: false, reason: 'every config near the champion has been tried' };
  const evalset = p.evalset ?? (await agentEvalSet(ctx, bucket, index, p.k));
  const record = await runAndRecordTrial({ root: bucket.root, index: p.index, evalset, config, k: p.k, by: 'agent', jobTag: jobTag(job.queueName, job.id!), jobId: job.id!, progress: jobProgress(job, progressStore(ctx)) });
  await fs.rm(trialBuildDir(bucket.root, p.index, record.trial_id), { recursive: true, force: true }); // promote by hand rebuilds it
  return { ran: true, reason: `tried ${configKey(config)}`, trial: summary(record) };
}


/**
 * The eval set the agent measures on: the newest generated one over the current vectors deep
 * enough for k; otherwise a fresh one (a supplied set of a few queries would tune to noise).
 */
async function agentEvalSet(ctx: WorkerContext, bucket: Bucket, index: IndexManifest, k: number): Promise<string> {
  const gen = currentGeneration(index)!;
  const fit = (await listEvalSets(bucket.root, index.name)).filter((s) => s.kind === 'generated' && s.k >= k && s.generation === gen.id).at(-1);
  return fit?.id ?? ensureGeneratedSet(ctx, bucket, index, `es-agent-${index.name.replace(/_/g, '-')}-g${gen.id}`, 100, k);
}
