import { z } from 'zod';
import { entityName } from '../shared/storage/names.ts';
import { DEFAULT_JOB_OPTIONS } from './default-job-options.ts';
import { declareQueue } from './queue-declaration.ts';

export const uploadSource = z.object({
  kind: z.literal('upload'),
  /** Relative to the data root, under staging/uploads/. Made by the upload route. */
  path: z.string().regex(/^staging\/uploads\/[A-Za-z0-9._-]+$/, 'a file under staging/uploads/'),
  filename: z.string().max(255).optional(),
  bytes: z.number().int().nonnegative().optional(),
});

export const ingestPayload = z.object({
  dataset: entityName,
  source: uploadSource,
  mode: z.enum(['replace', 'append']).default('append'),
  format: z.literal('csv').default('csv'),
});

export const ingestResult = z.object({
  dataset: z.string(),
  rows: z.number().int().describe('rows this job added'),
  bytes: z.number().int().describe('Parquet bytes this job wrote'),
  version: z.number().int().describe('dataset manifest version after the job'),
  dataset_rows: z.number().int(),
  part: z.string(),
});

export const ingest = declareQueue({
  name: 'ingest',
  description: 'Load a file into a Parquet dataset of the catalog',
  payload: ingestPayload,
  result: ingestResult,
  jobOptions: DEFAULT_JOB_OPTIONS,
  sandboxed: true,
});
