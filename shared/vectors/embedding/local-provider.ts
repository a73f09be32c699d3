/**
 * The default, fully offline provider: Universal Sentence Encoder lite (512-d) from the
 * @energetic-ai packages, run in a pool of worker threads with one model each.
 */
import type { EmbeddingProvider, ProviderIdentity } from './provider.ts';
import { EmbedThreadPool, type ThreadStats } from './thread-pool.ts';

export const LOCAL_MODEL = 'use-lite-512';
export const LOCAL_DIMS = 512;

export interface LocalProviderOptions {
  threads: number;
  /** Largest sub-batch one thread embeds at a time; throughput barely depends on it. */
  batchSize: number;
}

export class LocalProvider implements EmbeddingProvider {
  readonly #pool: EmbedThreadPool;

  constructor({ threads, batchSize }: LocalProviderOptions) {
    this.#pool = new EmbedThreadPool({
      entry: new URL('./local-thread.ts', import.meta.url),
      threads,
      batchSize,
      label: `local embedder (${LOCAL_MODEL})`,
    });
  }

  async identity(): Promise<ProviderIdentity> {
    return { provider: 'local', kind: 'local', model: LOCAL_MODEL, dims: LOCAL_DIMS, normalized: true };
  }

  embed(texts: string[], signal?: AbortSignal): Promise<Float32Array[]> {
    return this.#pool.embed(texts, signal);
  }

  /** Work done by each live thread (for metrics, and to see the threads share the load). */
  stats(): ThreadStats[] {
    return this.#pool.stats();
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}
