import { z } from 'zod';
import { describeClaim } from '../shared/inbox/inbox.ts';
import { FILE_FORMATS } from '../shared/ingest/formats/file-format.ts';
import { REJECTS_SUFFIX } from '../shared/ingest/rejects.ts';
import { redactDsn } from '../shared/redact.ts';
import { BadRequestError, ForbiddenError } from '../shared/errors.ts';
import { entityName } from '../shared/storage/names.ts';
import { DEFAULT_JOB_OPTIONS } from './default-job-options.ts';
import { declareQueue, type SealContext } from './queue-declaration.ts';

const relativePath = (what: string) =>
  z
    .string()
    .min(1)
    .max(1024)
    .refine((p) => !p.startsWith('/') && !p.split('/').some((s) => s === '..' || s === ''), `${what}: a relative path without .. or empty segments`);

export const uploadSource = z.object({
  kind: z.literal('upload'),
  /** Relative to the primary data root, under staging/uploads/. Made by the upload route. */
  path: z.string().regex(/^staging\/uploads\/(?!\.)[A-Za-z0-9._-]+$/, 'a file under staging/uploads/'),
  filename: z.string().max(255).optional(),
  bytes: z.number().int().nonnegative().optional(),
});

/** In a job: a file claimed for it (moved to inbox/.claimed/), so no watcher can take it too. */
export const inboxSource = z.object({
  kind: z.literal('inbox'),
  path: z.string().regex(/^\.claimed\/[a-z][a-z0-9_]{0,62}\/[^/]+$/, 'a claimed inbox file (.claimed/<dataset>/<uuid>__<file>)'),
  filename: z.string().max(255).optional(),
});

/** As a client posts it: a file dropped into inbox/<folder>/, claimed by the server before the job is added. */
export const inboxSourceRequest = z.object({
  kind: z.literal('inbox'),
  path: relativePath('path inside inbox/').refine((p) => p.split('/').length === 2 && !p.startsWith('.'), '<folder>/<file> inside inbox/'),
});

const identifier = z.string().regex(/^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$/, 'a table name, optionally schema-qualified');

const dbCommon = {
  kind: z.enum(['postgres', 'mysql']),
  table: identifier.optional(),
  query: z.string().min(1).max(100_000).optional(),
  batch_size: z.number().int().min(1).max(100_000).default(5_000),
  incremental: z
    .object({ column: z.string().regex(/^[A-Za-z_][A-Za-z0-9_$]*$/), since: z.union([z.string(), z.number()]).nullable().optional() })
    .optional(),
  decimals_as_float: z.boolean().default(false),
};

const oneOfTableOrQuery = (s: { table?: string | undefined; query?: string | undefined }) => (s.table === undefined) !== (s.query === undefined);
const TABLE_OR_QUERY = { message: 'give exactly one of table or query', path: ['table'] };

/** A database source as stored in a job: a named connection or a sealed secret — never a password. */
export const dbSource = z
  .object({
    ...dbCommon,
    connection: z.string().regex(/^[a-z][a-z0-9_]{0,62}$/).optional(),
    secret: z.string().uuid().optional().describe('set by the server: the sealed DSN'),
    dsn_redacted: z.string().overwrite(redactDsn).optional().describe('set by the server, for people reading the job (redacted again whenever read)'),
  })
  .refine((s) => (s.connection === undefined) !== (s.secret === undefined), { message: 'give exactly one of dsn or connection', path: ['connection'] })
  .refine(oneOfTableOrQuery, TABLE_OR_QUERY);

/** A database source as a client posts it: a DSN (sealed by the server before the job is added) or a named connection. */
export const dbSourceRequest = z
  .object({
    ...dbCommon,
    dsn: z.string().regex(/^(postgres|postgresql|mysql|mariadb):\/\//, 'a postgres:// or mysql:// URL').optional(),
    connection: z.string().regex(/^[a-z][a-z0-9_]{0,62}$/).optional(),
  })
  .refine((s) => (s.dsn === undefined) !== (s.connection === undefined), { message: 'give exactly one of dsn or connection', path: ['dsn'] })
  .refine(oneOfTableOrQuery, TABLE_OR_QUERY);

const common = {
  dataset: entityName,
  mode: z.enum(['replace', 'append']).default('append'),
  format: z.enum(['auto', ...FILE_FORMATS]).default('auto').describe('file sources: detected from content and name unless given'),
  split_markdown: z.boolean().default(false).describe('markdown: one row per heading section'),
  bucket: z.string().regex(/^[a-z][a-z0-9_]{0,62}$/).optional().describe('storage bucket of a new dataset (default primary)'),
  on_error: z
    .enum(['fail', 'skip'])
    .default('fail')
    .describe(
      'CSV/TSV records that do not fit the header (field count, unterminated quote, NUL byte, not UTF-8): fail fails the job naming the first bad lines; ' +
        'skip loads the good rows, reports rejected_rows and appends the bad lines (line, error, raw) to the dataset <dataset>_rejects (at most LAKEHOUSE_INGEST_MAX_REJECTS)',
    ),
};

/** A dataset name that leaves room for {@link REJECTS_SUFFIX} within the 63 characters of a name. */
const REJECTS_NAME_MAX = 63 - REJECTS_SUFFIX.length;

/** What a missing or unknown `source` is told: the kinds there are and an example of each (not zod's "Invalid input"). */
export const SOURCE_EXPECTED =
  'source must be an object whose "kind" is upload, inbox, postgres or mysql, e.g. ' +
  '{"kind":"inbox","path":"sales/q1.csv"} (a file dropped into inbox/sales/), ' +
  '{"kind":"postgres","connection":"shop","table":"orders"} (a connection configured as LAKEHOUSE_CONNECTION_SHOP), ' +
  'or upload the file with POST /datasets/:name/upload (which makes the upload source)';

// discriminated by kind, so a source of a known kind gets the errors of that kind's fields
const sourceOf = <T extends readonly [z.core.$ZodTypeDiscriminable, ...z.core.$ZodTypeDiscriminable[]]>(options: T) =>
  z.discriminatedUnion('kind', options, { error: (iss) => (iss.code === 'invalid_union' || iss.code === 'invalid_type' ? SOURCE_EXPECTED : undefined) });

export const ingestPayload = z.object({ ...common, source: sourceOf([uploadSource, inboxSource, dbSource]) });
export const ingestRequest = z.object({ ...common, source: sourceOf([uploadSource, inboxSourceRequest, dbSourceRequest]) });

export const ingestResult = z.object({
  dataset: z.string(),
  bucket: z.string(),
  rows: z.number().int().describe('rows this job added'),
  bytes: z.number().int().describe('Parquet bytes this job wrote'),
  version: z.number().int().describe('dataset manifest version after the job'),
  dataset_rows: z.number().int(),
  part: z.string().nullable(),
  duplicate: z.boolean().describe('the same bytes were already in the dataset: nothing was added'),
  fingerprint: z.string(),
  rejected_rows: z.number().int().describe('CSV/TSV records left out by on_error=skip (0 otherwise)'),
  rejects_dataset: z.string().nullable().describe('the dataset holding the left-out records (line, error, raw), when there were any'),
});

type IngestRequest = z.output<typeof ingestRequest>;

/** Checks names against the server's configuration and moves a posted DSN into a sealed secret. */
export async function sealIngest(request: IngestRequest, ctx: SealContext): Promise<z.input<typeof ingestPayload>> {
  if (request.on_error === 'skip' && request.dataset.length > REJECTS_NAME_MAX) {
    throw new BadRequestError(`on_error=skip keeps bad lines in ${REJECTS_SUFFIX.slice(1)} dataset "<dataset>${REJECTS_SUFFIX}": the dataset name may have at most ${REJECTS_NAME_MAX} characters`);
  }
  if (request.bucket !== undefined && !ctx.buckets.includes(request.bucket)) {
    throw new BadRequestError(`unknown bucket ${JSON.stringify(request.bucket)}; buckets: ${ctx.buckets.join(', ')}`);
  }
  const source = request.source;
  if (source.kind === 'inbox') return { ...request, source: { kind: 'inbox', path: await ctx.claimInbox(source.path) } };
  if (source.kind !== 'postgres' && source.kind !== 'mysql') return { ...request, source };
  if (source.connection !== undefined && !ctx.connections.includes(source.connection)) {
    throw new BadRequestError(
      `unknown connection ${JSON.stringify(source.connection)}; configured: ${ctx.connections.join(', ') || 'none (set LAKEHOUSE_CONNECTION_<NAME>)'}`,
    );
  }
  const { dsn, ...rest } = source;
  if (dsn === undefined) return { ...request, source: rest };
  assertJobDsnAllowed(ctx);
  return { ...request, source: { ...rest, secret: await ctx.secrets.seal(dsn), dsn_redacted: redactDsn(dsn) } };
}

/**
 * A DSN in a job points a worker at any address: that is an admin's decision twice over — the
 * server must allow it (LAKEHOUSE_ALLOW_JOB_DSN) and the caller must be an admin. Everyone else
 * names a connection the server configures.
 */
function assertJobDsnAllowed(ctx: SealContext): void {
  const hint = `name a connection configured on the server instead ("connection": "<name>" for LAKEHOUSE_CONNECTION_<NAME>${ctx.connections.length ? `; configured: ${ctx.connections.join(', ')}` : ''})`;
  if (!ctx.allowJobDsn) throw new BadRequestError(`a DSN in an ingest job is disabled on this server (LAKEHOUSE_ALLOW_JOB_DSN=false): ${hint}`);
  if (ctx.callerRole !== 'admin') throw new ForbiddenError(`a DSN in an ingest job needs the admin role (LAKEHOUSE_ALLOW_JOB_DSN allows it to admins only): ${hint}`);
}

export const ingest = declareQueue({
  name: 'ingest',
  description: 'Load a file, an upload or a database table into a Parquet dataset of the catalog',
  payload: ingestPayload,
  request: ingestRequest,
  seal: sealIngest,
  result: ingestResult,
  jobOptions: DEFAULT_JOB_OPTIONS,
  // one job per claimed inbox file, whoever enqueues it (a client, a watcher's sweep)
  jobIdFor: (payload) => (payload.source.kind === 'inbox' ? describeClaim(payload.source.path).jobId : undefined),
  sandboxed: true,
});
