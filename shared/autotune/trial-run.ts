/**
 * One trial from start to journal: idempotent per trial id (a retried trial job finds its record
 * and returns it), the graph kept under the index's trials/ folder so it can be promoted.
 */
import fs from 'node:fs/promises';
import type { ProgressFn } from '../progress.ts';
import type { DataRoot } from '../storage/data-root.ts';
import { readIndexManifest } from '../vectors/index/index-manifest.ts';
import { NotFoundError } from '../errors.ts';
import { readEvalSet } from './evalset.ts';
import type { HnswConfig } from './hnsw-config.ts';
import { appendTrial, findTrial, trialId, type TrialRecord } from './journal.ts';
import { runTrialInThread, TRIAL_SEED, trialBuildDir, trialBuildDirName, trialVectors } from './trial.ts';

export interface TrialRequest {
  root: DataRoot;
  index: string;
  evalset: string;
  config: HnswConfig;
  k?: number | undefined;
  by: TrialRecord['by'];
  /** Makes the trial id deterministic (`t-<jobTag>-<config>`), so a retry does not run twice. */
  jobTag?: string | undefined;
  jobId?: string | undefined;
  progress?: ProgressFn;
}

export async function runAndRecordTrial(req: TrialRequest): Promise<TrialRecord> {
  const id = trialId(req.config, req.jobTag);
  const done = await findTrial(req.root, req.index, id);
  if (done) return done;
  const index = await readIndexManifest(req.root, req.index);
  if (!index) throw new NotFoundError(`index ${JSON.stringify(req.index)} does not exist`);
  const evalset = await readEvalSet(req.root, req.index, req.evalset);
  const vectors = await trialVectors(req.root, index, evalset);
  const outDir = trialBuildDir(req.root, req.index, id);
  await fs.rm(outDir, { recursive: true, force: true }); // a crashed attempt's graph, never journaled
  const measured = await runTrialInThread(
    { files: vectors.files, tombstoneFiles: vectors.tombstoneFiles, dims: index.embedding.dims, config: req.config, seed: TRIAL_SEED, evalset, ...(req.k ? { k: req.k } : {}), outDir },
    req.progress,
  );
  const record: TrialRecord = {
    trial_id: id, index: req.index, at: new Date().toISOString(), by: req.by, ...(req.jobId ? { job_id: req.jobId } : {}),
    config: req.config, evalset: evalset.id, k: req.k ?? evalset.k,
    recall: measured.recall, p50_ms: measured.p50_ms, p95_ms: measured.p95_ms, build_seconds: measured.build_seconds, memory_mb: measured.memory_mb,
    generation: vectors.generation, built_dir: trialBuildDirName(id), seed: TRIAL_SEED, count: measured.count,
  };
  return (await appendTrial(req.root, req.index, record)).record;
}

