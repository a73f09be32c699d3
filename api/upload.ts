/**
 * Streams a request body into the staging area of the data root (so a worker on another host
 * can read it), counting bytes as they pass: past the limit the transfer is cut, the partial
 * file removed, and the client told 413. The body is never held in memory.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Context } from 'koa';
import type { DataRoot } from '../shared/storage/data-root.ts';
import { fingerprintFile, writeFingerprint } from '../shared/ingest/fingerprint.ts';
import { HttpProblem } from './problem.ts';

export interface StagedUpload {
  /** Relative to the data root: what goes into the job payload. */
  relative: string;
  absolute: string;
  bytes: number;
}

/**
 * `idleMs` bounds the silence between two chunks rather than the whole transfer: a slow but
 * moving upload of hundreds of MiB goes through, a stalled one is cut (its socket closed).
 */
export async function stageUpload(ctx: Context, root: DataRoot, limit: number, idleMs: number): Promise<StagedUpload> {
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > limit) {
    ctx.set('Connection', 'close'); // don't read and discard the whole oversized body
    throw tooLarge(limit);
  }
  const name = `${randomUUID()}.upload`;
  const absolute = path.join(root.uploadsDir(), name);
  let bytes = 0;
  // hashed while it streams in, so the ingest need not read the file a second time for dedup
  const hash = createHash('sha256');
  const idle = () => counter.destroy(new HttpProblem(408, 'Request Timeout', `the upload stalled: no byte for ${idleMs} ms (LAKEHOUSE_UPLOAD_IDLE_TIMEOUT_MS)`));
  const timer = setTimeout(idle, idleMs);
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      timer.refresh();
      bytes += chunk.length;
      hash.update(chunk);
      done(bytes > limit ? tooLarge(limit) : null, chunk);
    },
  });
  try {
    await pipeline(ctx.req, counter, createWriteStream(absolute, { flags: 'wx' }));
  } catch (err) {
    await fs.rm(absolute, { force: true });
    if (err instanceof HttpProblem) {
      ctx.set('Connection', 'close'); // don't read the rest of an oversized body
      throw err;
    }
    throw new HttpProblem(400, 'Bad Request', `the upload was interrupted: ${(err as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  if (bytes === 0) {
    await fs.rm(absolute, { force: true });
    throw new HttpProblem(400, 'Bad Request', 'the upload is empty');
  }
  await writeFingerprint(absolute, hash.digest('hex'));
  return { relative: path.relative(root.root, absolute).split(path.sep).join('/'), absolute, bytes };
}

function tooLarge(limit: number): HttpProblem {
  return new HttpProblem(413, 'Payload Too Large', `uploads are limited to ${limit} bytes (LAKEHOUSE_UPLOAD_MAX_BYTES)`);
}

/** Removes a staged upload nobody will ingest, with its fingerprint record. */
export async function discardStaged(staged: StagedUpload): Promise<void> {
  await Promise.all([fs.rm(staged.absolute, { force: true }), fs.rm(fingerprintFile(staged.absolute), { force: true })]);
}
