import { z } from 'zod';
import { BadRequestError } from '../shared/errors.ts';
import { ENDPOINT_NAME } from '../shared/outbound/named-endpoints.ts';
import { DEFAULT_CHUNK } from '../shared/vectors/chunking.ts';
import { entityName } from '../shared/storage/names.ts';
import { checkEmbedSource } from '../shared/vectors/embed-source-check.ts';
import { DEFAULT_JOB_OPTIONS } from './default-job-options.ts';
import { declareQueue, type SealContext } from './queue-declaration.ts';

export const hnswConfig = z.object({
  m: z.number().int().min(4).max(64).default(16),
  ef_construction: z.number().int().min(10).max(400).default(200),
  ef_search: z.number().int().min(10).max(400).default(100),
});

export const refreshPolicy = z.union([z.enum(['manual', 'on_append']), z.object({ cron: z.string().min(1).max(256) })]);

/** Fields a client might use to point a job at an address or hand it a key: refused, naming the setting to use instead. */
const OUTBOUND_FIELDS = ['url', 'base_url', 'baseUrl', 'endpoint', 'host', 'api_key', 'apiKey', 'key', 'token', 'authorization', 'headers'] as const;
export const NAMED_PROVIDER_HINT =
  'embedding endpoints and keys are server configuration: name a provider configured with LAKEHOUSE_EMBED_PROVIDER_<NAME>=<ollama|openai>:<base url> ' +
  '(key in LAKEHOUSE_EMBED_PROVIDER_<NAME>_KEY), or the built-in local, ollama (LAKEHOUSE_OLLAMA_URL) or openai (LAKEHOUSE_OPENAI_URL + OPENAI_API_KEY)';
const refusedOutbound = Object.fromEntries(
  OUTBOUND_FIELDS.map((f) => [f, z.never({ error: `a job may not carry "${f}": ${NAMED_PROVIDER_HINT}` }).optional()]),
) as Record<(typeof OUTBOUND_FIELDS)[number], z.ZodOptional<z.ZodNever>>;

const providerName = z.string().regex(ENDPOINT_NAME, 'a provider name configured on the server (lower-case letters, digits, _)');

export const embedRequest = z
  .object({
    index: entityName,
    dataset: entityName,
    id_column: z.string().min(1).max(255),
    text_column: z.string().min(1).max(255),
    provider: providerName.default('local').describe('a named embedding provider configured on the server: local, ollama, openai or LAKEHOUSE_EMBED_PROVIDER_<NAME>'),
    model: z.string().min(1).max(200).optional(),
    ...refusedOutbound,
    chunk_size: z.number().int().min(50).max(20_000).default(DEFAULT_CHUNK.size),
    overlap: z.number().int().min(0).max(10_000).default(DEFAULT_CHUNK.overlap),
    hnsw: hnswConfig.default({ m: 16, ef_construction: 200, ef_search: 100 }),
    refresh_policy: refreshPolicy.default('manual'),
  })
  .refine((r) => r.overlap < r.chunk_size, { message: 'overlap must be smaller than chunk_size', path: ['overlap'] });

/** What the orchestrating job remembers between its steps (it waits for its shards in between). */
const orchestration = z.object({
  step: z.enum(['plan', 'build']).default('plan'),
  shards: z.number().int().optional(),
  chunks: z.number().int().optional(),
  docs: z.number().int().optional(),
  source_version: z.number().int().optional(),
  started_at: z.number().optional(),
  /** refresh: chunk ids leaving the index */
  removed: z.number().int().optional(),
  added_docs: z.number().int().optional(),
  changed_docs: z.number().int().optional(),
  deleted_docs: z.number().int().optional(),
  /** The generation current when the job planned, under the index's lease (0: none yet). */
  base_generation: z.number().int().min(0).optional(),
  /** When the job first found the index's lease busy (workers/index-lease.ts). */
  lease_waiting_since: z.number().optional(),
});

/** A child job: embed one shard file of a parent's chunks. */
export const shardPayload = z.object({
  kind: z.literal('shard'),
  index: entityName,
  bucket: z.string(),
  parent_job: z.string(),
  parent_queue: z.enum(['embed', 'refresh']),
  started_at: z.number(),
  shard: z.number().int().min(0),
  shards: z.number().int().min(1),
  chunks_total: z.number().int(),
  // set by the server from the index manifest; an unconfigured name fails where it is resolved, with the reason
  provider: z.string().min(1).max(200),
  model: z.string().optional(),
});

export const embedJobPayload = z.union([
  z.object({ kind: z.literal('embed').default('embed'), ...embedRequest.shape, ...orchestration.shape }),
  shardPayload,
]);

export const embedResult = z.union([
  z.object({ index: z.string(), generation: z.number().int(), docs: z.number().int(), chunks: z.number().int(), dims: z.number().int(), seconds: z.number() }),
  z.object({ shard: z.number().int(), rows: z.number().int(), file: z.string() }),
]);

type EmbedRequest = z.output<typeof embedRequest>;

/**
 * The provider must be one the server configures; the URL and key are looked up when it is used, never stored in the job.
 * The dataset and its columns are checked now, so a mistake is a 400 and creates no index.
 */
export async function sealEmbed(request: EmbedRequest, ctx: SealContext): Promise<z.input<typeof embedJobPayload>> {
  if (!ctx.embedProviders.includes(request.provider)) {
    throw new BadRequestError(`embedding provider ${JSON.stringify(request.provider)} is not configured on this server (configured: ${ctx.embedProviders.join(', ')}); ${NAMED_PROVIDER_HINT}`);
  }
  await checkEmbedSource(ctx.catalog, request);
  return { kind: 'embed', ...request };
}

export const embed = declareQueue({
  name: 'embed',
  description: 'Embed a dataset text column into a vector index (fans out shards over every embed worker, then builds an HNSW generation)',
  payload: embedJobPayload,
  request: embedRequest,
  seal: sealEmbed,
  result: embedResult,
  jobOptions: DEFAULT_JOB_OPTIONS,
});
