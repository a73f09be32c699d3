/**
 * One provider per spec per process: the local provider holds worker threads with a model each,
 * which must be loaded once, not per job.
 */
import type { Config } from '../../config.ts';
import { createProvider, DEFAULT_PROVIDER_SETTINGS, type EmbeddingProvider, type ProviderSpec } from './provider.ts';

const providers = new Map<string, EmbeddingProvider>();

export function providerFor(spec: ProviderSpec, config: Config): EmbeddingProvider {
  const key = JSON.stringify([spec.provider, spec.model ?? '', spec.url ?? '']);
  let p = providers.get(key);
  if (!p) {
    p = createProvider(spec, {
      ...DEFAULT_PROVIDER_SETTINGS,
      ollamaUrl: config.embedding.ollamaUrl,
      openaiUrl: config.embedding.openaiUrl,
      ...(config.embedding.openaiApiKey ? { openaiApiKey: config.embedding.openaiApiKey } : {}),
      localThreads: config.embedding.localThreads,
      timeoutMs: config.embedding.timeoutMs,
      maxRetries: config.embedding.maxRetries,
      batchSize: config.embedding.batchSize,
    });
    providers.set(key, p);
  }
  return p;
}

export async function closeProviders(): Promise<void> {
  const all = [...providers.values()];
  providers.clear();
  await Promise.all(all.map((p) => p.close()));
}
