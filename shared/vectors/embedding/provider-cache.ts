/**
 * One provider per configured endpoint and model per process: the local provider holds worker
 * threads with a model each, which must be loaded once, not per job. The cache key includes the
 * endpoint's URL and a digest of its key, so a provider is never reused for another URL or key.
 */
import { createHash } from 'node:crypto';
import type { Config } from '../../config.ts';
import { createProvider, DEFAULT_PROVIDER_SETTINGS, resolveProvider, type EmbeddingProvider, type ProviderSpec } from './provider.ts';

const providers = new Map<string, EmbeddingProvider>();

export function providerFor(spec: ProviderSpec, config: Config): EmbeddingProvider {
  const endpoint = resolveProvider(spec.provider, config.embedding.providers);
  const url = 'url' in endpoint ? endpoint.url : '';
  const keyDigest = 'key' in endpoint && endpoint.key ? createHash('sha256').update(endpoint.key).digest('hex') : '';
  const key = JSON.stringify([endpoint.name, endpoint.kind, url, keyDigest, spec.model ?? '']);
  let p = providers.get(key);
  if (!p) {
    p = createProvider(spec, {
      ...DEFAULT_PROVIDER_SETTINGS,
      providers: config.embedding.providers,
      localThreads: config.embedding.localThreads,
      timeoutMs: config.embedding.timeoutMs,
      maxRetries: config.embedding.maxRetries,
      batchSize: config.embedding.batchSize,
      errorBodyChars: config.embedding.errorBodyChars,
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
