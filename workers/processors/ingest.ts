import { UnrecoverableError, type Job } from 'bullmq';
import fs from 'node:fs/promises';
import type { z } from 'zod';
import { ingestPayload, type ingestResult } from '../../queues/ingest.ts';
import { claimedFile, describeClaim, settle } from '../../shared/inbox/inbox.ts';
import { fingerprintFile } from '../../shared/ingest/fingerprint.ts';
import { ingestSource, type ResolvedSource } from '../../shared/ingest/ingest-source.ts';
import { rejectsDatasetName } from '../../shared/ingest/rejects.ts';
import { redactDsn } from '../../shared/redact.ts';
import { prepareReaderCopies } from '../../shared/sql/reader-copies.ts';
import { markStale } from '../../shared/vectors/staleness.ts';
import { isPermanent } from '../permanent-failure.ts';
import { redactFailure } from '../redacted-failure.ts';
import { workerContext, type WorkerContext } from '../context.ts';
import { datasetLockKey, indexLockKey } from '../../shared/catalog/lock-keys.ts';
import { jobProgress, progressStore } from '../job-progress.ts';

type Payload = z.output<typeof ingestPayload>;

export default async function ingest(job: Job): Promise<z.output<typeof ingestResult>> {
  const payload = ingestPayload.parse(job.data);
  const ctx = await workerContext();
  const claimedInbox = payload.source.kind === 'inbox' ? payload.source.path : undefined;
  try {
    const source = await resolveSource(payload, ctx);
    const result = await ingestSource({
      buckets: ctx.buckets,
      redis: ctx.redis,
      lockKey: datasetLockKey(ctx.config, payload.dataset),
      rejectsLockKey: datasetLockKey(ctx.config, rejectsDatasetName(payload.dataset)),
      dataset: payload.dataset,
      ...(payload.bucket ? { bucket: payload.bucket } : {}),
      mode: payload.mode,
      jobId: job.id!,
      source,
      progress: jobProgress(job, progressStore(ctx)),
    });
    if (payload.source.kind === 'upload') {
      const staged = ctx.buckets.primary.inside(ctx.buckets.primary.root, payload.source.path);
      await Promise.all([fs.rm(staged, { force: true }), fs.rm(fingerprintFile(staged), { force: true })]);
    }
    if (claimedInbox) await settle(ctx.buckets.primary, claimedInbox, { ok: true });
    if (result.part !== null) {
      // The data is committed either way: if the copies cannot be made now, the API makes them.
      await prepareReaderCopies(ctx.buckets, payload.dataset).catch((err: unknown) => ctx.log.warn({ err, dataset: payload.dataset }, 'reader copies not prepared'));
      await refreshDependents(ctx, payload.dataset, result.version);
    }
    return result;
  } catch (err) {
    // Bad input will not get better on a retry; everything else (Redis, disk, a lock) might.
    const final = isPermanent(err) || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    if (final && claimedInbox) await settle(ctx.buckets.primary, claimedInbox, { ok: false, error: (err as Error).message });
    if (isPermanent(err)) throw redactFailure(new UnrecoverableError((err as Error).message));
    throw redactFailure(err);
  }
}

async function resolveSource(payload: Payload, ctx: WorkerContext): Promise<ResolvedSource> {
  const primary = ctx.buckets.primary;
  const file = { format: payload.format, splitMarkdown: payload.split_markdown, onError: payload.on_error, maxRejects: ctx.config.ingestMaxRejects };
  const src = payload.source;
  switch (src.kind) {
    case 'upload':
      return { kind: 'upload', file: primary.inside(primary.root, src.path), ...(src.filename ? { filename: src.filename } : {}), ...file };
    case 'inbox':
      return { kind: 'inbox', file: await claimedFile(primary, src.path), filename: describeClaim(src.path).filename, ...file };
    default: {
      const dsn = src.connection !== undefined ? namedDsn(ctx, src.connection) : await ctx.secrets.open(src.secret!);
      return {
        kind: src.kind,
        dsnRedacted: src.dsn_redacted !== undefined ? redactDsn(src.dsn_redacted) : `connection:${src.connection}`,
        spec: {
          kind: src.kind, dsn, batchSize: src.batch_size, decimalsAsFloat: src.decimals_as_float,
          ...(src.table ? { table: src.table } : {}), ...(src.query ? { query: src.query } : {}),
          ...(src.incremental ? { incremental: { column: src.incremental.column, ...(src.incremental.since !== undefined ? { since: src.incremental.since } : {}) } } : {}),
        },
      };
    }
  }
}

function namedDsn(ctx: WorkerContext, name: string): string {
  const dsn = ctx.config.connections[name];
  if (!dsn) throw new UnrecoverableError(`connection ${JSON.stringify(name)} is not configured on this worker (LAKEHOUSE_CONNECTION_${name.toUpperCase()})`);
  return dsn;
}

/** Indexes built from the dataset are stale now; those that refresh on append get their refresh. */
async function refreshDependents(ctx: WorkerContext, dataset: string, version: number): Promise<void> {
  const { onAppend } = await markStale({
    buckets: ctx.buckets, redis: ctx.redis, dataset, sourceVersion: version,
    lockKeyFor: (index) => indexLockKey(ctx.config, index),
  });
  // one waiting refresh per index and dataset version: repeated appends while it waits join it
  await Promise.all(onAppend.map((index) => ctx.queue('refresh').add('refresh', { index }, { jobId: `on-append-${index}-${version}` })));
}
