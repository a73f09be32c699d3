/**
 * Creating an index, or checking that an embed job fits the index it names: the same source
 * dataset and columns, and vectors from the same provider and model (vectors of different
 * models cannot be compared, so mixing them is refused).
 */
import type { Redis } from 'ioredis';
import type { EmbedProviderEndpoint } from '../config.ts';
import { ConflictError } from '../errors.ts';
import { withEntityLock } from '../redis/entity-lock.ts';
import type { DataRoot } from '../storage/data-root.ts';
import { assertSameModel, type ProviderIdentity, type ProviderSpec } from './embedding/provider.ts';
import { newIndexManifest, readIndexManifest, writeIndexManifest, type IndexDefinition, type IndexManifest } from './index/index-manifest.ts';

export interface EnsureIndexRequest {
  root: DataRoot;
  redis: Redis;
  lockKey: string;
  /** What the job asks for; `embedding` is filled from the provider's identity. */
  def: Omit<IndexDefinition, 'embedding'>;
  spec: ProviderSpec;
  /** The server's configured providers, to check the spec's kind against the index's. */
  providers: Readonly<Record<string, EmbedProviderEndpoint>>;
  identity: () => Promise<ProviderIdentity>;
}

export async function ensureIndex(req: EnsureIndexRequest): Promise<IndexManifest> {
  return withEntityLock(req.redis, req.lockKey, async (lock) => {
    const now = new Date().toISOString();
    const current = await readIndexManifest(req.root, req.def.name);
    if (current) {
      assertSameModel(current.embedding, req.spec, req.providers);
      const s = current.source;
      const a = req.def.source;
      if (s.dataset !== a.dataset || s.id_column !== a.id_column || s.text_column !== a.text_column) {
        throw new ConflictError(
          `index ${current.name} is built from ${s.dataset}(${s.id_column}, ${s.text_column}); this job names ${a.dataset}(${a.id_column}, ${a.text_column}) — use another index name`,
        );
      }
    }
    const identity = await req.identity();
    const next: IndexManifest = current
      // an existing index keeps its HNSW config: it may be a promoted one (autotune), which the
      // next build must use; a job's `hnsw` only sets up a new index
      ? {
          ...current, chunking: req.def.chunking, refresh_policy: req.def.refresh_policy, version: current.version + 1, updated_at: now,
          // the same kind and model may be served by another configured provider now: shards and searches follow its name
          embedding: { ...current.embedding, provider: identity.provider, kind: identity.kind },
        }
      : { ...newIndexManifest({ ...req.def, embedding: identity }, now), version: 1 };
    await lock.assertHeld();
    await writeIndexManifest(req.root, next);
    return next;
  });
}
