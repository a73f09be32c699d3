/**
 * Embedding providers behind one interface, chosen per index.
 *
 * Glossary:
 * - provider: a NAME configured on the server (shared/config.ts): the built-in `local` (Universal
 *   Sentence Encoder lite in worker threads, offline, the default), `ollama` and `openai`
 *   (LAKEHOUSE_OLLAMA_URL, LAKEHOUSE_OPENAI_URL + OPENAI_API_KEY), and every
 *   LAKEHOUSE_EMBED_PROVIDER_<NAME>=<kind>:<base url> with its `_KEY`. Jobs and indexes name a
 *   provider, never a URL or a key: the URL is looked up when the provider is used, and the key
 *   is only ever sent to that URL (remote-provider.ts).
 * - kind: the protocol a provider speaks — `local`, `ollama` (its `/api/embed`), `openai` (any
 *   OpenAI-compatible `/v1/embeddings`: OpenAI, vLLM, text-embeddings-inference, LM Studio).
 * - spec: what a caller asks for (provider name, model).
 * - identity: provider name, kind, model, dimension and normalisation, recorded in an index's
 *   manifest. Vectors from two models are not comparable, so an index only ever takes vectors
 *   of the kind and model it was built with ({@link assertSameModel}).
 *
 * Every provider returns unit-length Float32Arrays in input order, so a dot product is cosine.
 */
import os from 'node:os';
import type { EmbedProviderEndpoint } from '../../config.ts';
import { BadRequestError, ConflictError } from '../../errors.ts';
import { LOCAL_MODEL, LocalProvider } from './local-provider.ts';
import { RemoteProvider } from './remote-provider.ts';
import { ollamaProtocol, openaiProtocol } from './remote-protocol.ts';

export const PROVIDER_KINDS = ['local', 'ollama', 'openai'] as const;
export type ProviderKind = (typeof PROVIDER_KINDS)[number];

/** The model used when a spec names none. `local` has exactly one. */
export const DEFAULT_MODELS: Readonly<Record<ProviderKind, string>> = {
  local: LOCAL_MODEL,
  ollama: 'nomic-embed-text',
  openai: 'text-embedding-3-small',
};

export interface ProviderSpec {
  /** A provider name configured on the server. */
  provider: string;
  /** local: `use-lite-512` only; ollama e.g. `nomic-embed-text`; openai e.g. `text-embedding-3-small`. @defaultValue {@link DEFAULT_MODELS} of the provider's kind */
  model?: string;
}

/** Recorded per index. */
export interface ProviderIdentity {
  /** The provider's name. */
  provider: string;
  kind: ProviderKind;
  model: string;
  dims: number;
  /** Always true: vectors are L2-normalised before they are handed out. */
  normalized: boolean;
}

export interface EmbeddingProvider {
  /** For remote providers the first call may send one probe request to learn the dimension. */
  identity(): Promise<ProviderIdentity>;
  /** One unit vector per text, in order; `[]` for `[]`. */
  embed(texts: string[], signal?: AbortSignal): Promise<Float32Array[]>;
  /** Ends the local provider's threads; the provider cannot be used afterwards. */
  close(): Promise<void>;
}

export interface ProviderSettings {
  /** The providers configured on the server, by name. @defaultValue the built-in `local`, `ollama` and `openai` */
  providers: Readonly<Record<string, EmbedProviderEndpoint>>;
  /** Worker threads of the local provider, each holding its own model (~150 MB of memory per thread). @defaultValue min(2, available cores) */
  localThreads: number;
  /** Per HTTP attempt. @defaultValue 60000 */
  timeoutMs: number;
  /** HTTP attempts after the first, on 429/5xx/timeouts/network errors. @defaultValue 3 */
  maxRetries: number;
  /** Texts per HTTP request, and the largest sub-batch one local thread takes at a time. @defaultValue 32 */
  batchSize: number;
  /** First retry wait, doubling per attempt (with jitter); a `Retry-After` header wins. @defaultValue 500 */
  retryBaseMs?: number;
  /** Characters of a provider's error answer quoted in a failure, after scrubbing. @defaultValue 200 */
  errorBodyChars?: number;
}

export const DEFAULT_PROVIDER_SETTINGS: Readonly<ProviderSettings> = Object.freeze({
  providers: Object.freeze({
    local: { name: 'local', kind: 'local', variable: '(built in)' },
    ollama: { name: 'ollama', kind: 'ollama', url: 'http://127.0.0.1:11434', variable: 'LAKEHOUSE_OLLAMA_URL' },
    openai: { name: 'openai', kind: 'openai', url: 'https://api.openai.com', variable: 'LAKEHOUSE_OPENAI_URL' },
  }) as Readonly<Record<string, EmbedProviderEndpoint>>,
  localThreads: Math.min(2, os.availableParallelism()),
  timeoutMs: 60_000,
  maxRetries: 3,
  batchSize: 32,
  retryBaseMs: 500,
  errorBodyChars: 200,
});

/**
 * The configured provider a name stands for. Looked up own-property only and byte-wise: a name
 * is never case-folded or normalised, so `OpenAI`, `ollama\u200b` or `__proto__` name nothing.
 */
export function resolveProvider(name: string, providers: Readonly<Record<string, EmbedProviderEndpoint>>): EmbedProviderEndpoint {
  if (Object.hasOwn(providers, name)) return providers[name]!;
  const shown = /^[a-z][a-z0-9_]{0,62}$/.test(name) ? name : undefined;
  throw new BadRequestError(
    `embedding provider ${JSON.stringify(name.slice(0, 64))} is not configured on this server (configured: ${Object.keys(providers).sort().join(', ')}); ` +
      `providers are server configuration: an admin adds one with LAKEHOUSE_EMBED_PROVIDER_${shown ? shown.toUpperCase() : '<NAME>'}=<ollama|openai>:<base url> ` +
      `(key in LAKEHOUSE_EMBED_PROVIDER_<NAME>_KEY), and jobs name it`,
  );
}

export function createProvider(spec: ProviderSpec, settings: ProviderSettings): EmbeddingProvider {
  const endpoint = resolveProvider(spec.provider, settings.providers);
  const model = modelOf(endpoint.kind, spec.model);
  const batchSize = positive('batchSize', settings.batchSize);
  if (endpoint.kind === 'local') {
    if (model !== LOCAL_MODEL) throw new BadRequestError(`the local provider has one model, "${LOCAL_MODEL}"; "${model}" is not available offline`);
    return new LocalProvider({ threads: positive('localThreads', settings.localThreads), batchSize });
  }
  return new RemoteProvider(endpoint.kind === 'ollama' ? ollamaProtocol : openaiProtocol, {
    name: endpoint.name,
    baseUrl: endpoint.url,
    model,
    ...(endpoint.key ? { apiKey: endpoint.key } : {}),
    timeoutMs: positive('timeoutMs', settings.timeoutMs),
    maxRetries: Math.max(0, settings.maxRetries),
    retryBaseMs: settings.retryBaseMs ?? DEFAULT_PROVIDER_SETTINGS.retryBaseMs!,
    batchSize,
    errorBodyChars: Math.max(0, settings.errorBodyChars ?? DEFAULT_PROVIDER_SETTINGS.errorBodyChars!),
  });
}

/** What an index records of how it was embedded; manifests written before named providers have no `kind`. */
export interface RecordedEmbedding {
  provider: string;
  kind?: string | undefined;
  model: string;
  dims: number;
}

/**
 * Refuses to put vectors of `asked` into an index recorded with `recorded`: the kind and model
 * must match (the provider NAME may differ — the same model may be served from another
 * configured server, as a base URL could differ before).
 */
export function assertSameModel(recorded: RecordedEmbedding, asked: ProviderSpec, providers: Readonly<Record<string, EmbedProviderEndpoint>>): void {
  const kind = resolveProvider(asked.provider, providers).kind;
  const model = modelOf(kind, asked.model);
  const recordedKind = recorded.kind ?? recorded.provider;
  if (recordedKind === kind && recorded.model === model) return;
  throw new ConflictError(
    `the index holds ${recorded.dims}-d vectors from ${recorded.provider} (${recordedKind}) model "${recorded.model}"; ` +
      `embedding with ${asked.provider} (${kind}) model "${model}" is refused, as vectors of different models cannot be compared — ` +
      `embed with a ${recordedKind} provider and model ${recorded.model}, or build a new index`,
  );
}

function modelOf(kind: ProviderKind, model: string | undefined): string {
  return model?.trim() || DEFAULT_MODELS[kind];
}

function positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new BadRequestError(`embedding setting ${name} must be a positive integer, got ${value}`);
  return value;
}
