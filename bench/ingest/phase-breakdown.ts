/**
 * Where an ingest job's time goes, measured exactly: the same functions the ingest processor
 * calls (shared/ingest/ingest-source.ts → fromFile, then detectPii), run one after the other in
 * this process on the bench's CSV, each timed on its own. No queue, no HTTP, no sandbox, no
 * manifest commit: those are what the end-to-end and job rows add on top.
 */
import path from 'node:path';
import { fileFingerprint } from '../../shared/ingest/fingerprint.ts';
import { detectFormat } from '../../shared/ingest/formats/file-format.ts';
import { fileToParquet } from '../../shared/ingest/formats/to-parquet.ts';
import { detectPii, type PiiFlag } from '../../shared/pii/detect.ts';
import { noProgress } from '../../shared/progress.ts';

export interface PhaseBreakdown {
  fingerprintSeconds: number;
  detectSeconds: number;
  convertSeconds: number;
  piiSeconds: number;
  rows: number;
  bytes: number;
  pii: PiiFlag[];
}

export async function phaseBreakdown(csv: string, outDir: string, filename: string): Promise<PhaseBreakdown> {
  const clock = () => {
    const t = performance.now();
    return () => (performance.now() - t) / 1000;
  };
  let stop = clock();
  await fileFingerprint(csv);
  const fingerprintSeconds = stop();

  stop = clock();
  const format = await detectFormat(csv, filename);
  const detectSeconds = stop();
  if (format !== 'csv') throw new Error(`detectFormat called the bench CSV ${format}`);

  const target = path.join(outDir, 'breakdown.parquet');
  stop = clock();
  const out = await fileToParquet(csv, target, { format, docId: 'profiles', path: filename, progress: noProgress });
  const convertSeconds = stop();

  stop = clock();
  const pii = await detectPii(target, out.schema);
  const piiSeconds = stop();
  return { fingerprintSeconds, detectSeconds, convertSeconds, piiSeconds, rows: out.rows, bytes: out.bytes, pii };
}
