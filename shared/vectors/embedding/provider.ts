/**
 * Embedding providers behind one interface, chosen per index.
 *
 * Glossary:
 * - provider: where vectors come from — `local` (Universal Sentence Encoder lite in worker
 *   threads, offline, the default), `ollama` (its `/api/embed`), `openai` (any OpenAI-compatible
 *   `/v1/embeddings`: OpenAI, vLLM, text-embeddings-inference, LM Studio).
 * - spec: what a caller asks for (provider, model, base URL).
 * - identity: provider, model, dimension and normalisation, recorded in an index's manifest.
 *   Vectors from two models are not comparable, so an index only ever takes vectors from the
 *   identity it was built with ({@link assertSameModel}).
 *
 * Every provider returns unit-length Float32Arrays in input order, so a dot product is cosine.
 */
import os from 'node:os';
import { BadRequestError, ConflictError } from '../../errors.ts';
import { redactSecrets } from '../../redact.ts';
import { LOCAL_MODEL, LocalProvider } from './local-provider.ts';
import { RemoteProvider } from './remote-provider.ts';
import { ollamaProtocol, openaiProtocol } from './remote-protocol.ts';

export const PROVIDER_NAMES = ['local', 'ollama', 'openai'] as const;
export type ProviderName = (typeof PROVIDER_NAMES)[number];

/** The model used when a spec names none. `local` has exactly one. */
export const DEFAULT_MODELS: Readonly<Record<ProviderName, string>> = {
  local: LOCAL_MODEL,
  ollama: 'nomic-embed-text',
  openai: 'text-embedding-3-small',
};

export interface ProviderSpec {
  provider: ProviderName;
  /** local: `use-lite-512` only; ollama e.g. `nomic-embed-text`; openai e.g. `text-embedding-3-small`. @defaultValue {@link DEFAULT_MODELS} */
  model?: string;
  /** Base URL of the ollama/openai server. @defaultValue the matching {@link ProviderSettings} URL */
  url?: string;
}

/** Recorded per index. */
export interface ProviderIdentity {
  provider: ProviderName;
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
  /** @defaultValue 'http://127.0.0.1:11434' */
  ollamaUrl: string;
  /** Without `/v1` (a trailing `/v1` is tolerated). @defaultValue 'https://api.openai.com' */
  openaiUrl: string;
  /** Sent as `Authorization: Bearer …` to the openai provider when set. @defaultValue undefined */
  openaiApiKey?: string;
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
}

export const DEFAULT_PROVIDER_SETTINGS: Readonly<ProviderSettings> = Object.freeze({
  ollamaUrl: 'http://127.0.0.1:11434',
  openaiUrl: 'https://api.openai.com',
  localThreads: Math.min(2, os.availableParallelism()),
  timeoutMs: 60_000,
  maxRetries: 3,
  batchSize: 32,
  retryBaseMs: 500,
});

export function createProvider(spec: ProviderSpec, settings: ProviderSettings): EmbeddingProvider {
  const model = modelOf(spec);
  const batchSize = positive('batchSize', settings.batchSize);
  if (spec.provider === 'local') {
    if (model !== LOCAL_MODEL) throw new BadRequestError(`the local provider has one model, "${LOCAL_MODEL}"; "${model}" is not available offline`);
    return new LocalProvider({ threads: positive('localThreads', settings.localThreads), batchSize });
  }
  const protocol = spec.provider === 'ollama' ? ollamaProtocol : openaiProtocol;
  const baseUrl = spec.url ?? (spec.provider === 'ollama' ? settings.ollamaUrl : settings.openaiUrl);
  if (!URL.canParse(baseUrl) || !/^https?:$/.test(new URL(baseUrl).protocol)) {
    throw new BadRequestError(`${spec.provider} URL "${redactSecrets(baseUrl)}" is not an http(s) URL`);
  }
  return new RemoteProvider(protocol, {
    baseUrl,
    model,
    apiKey: spec.provider === 'openai' ? settings.openaiApiKey : undefined,
    timeoutMs: positive('timeoutMs', settings.timeoutMs),
    maxRetries: Math.max(0, settings.maxRetries),
    retryBaseMs: settings.retryBaseMs ?? DEFAULT_PROVIDER_SETTINGS.retryBaseMs!,
    batchSize,
  });
}

/** Refuses to put vectors of `asked` into an index recorded with `recorded` (the base URL may differ). */
export function assertSameModel(recorded: ProviderIdentity, asked: ProviderSpec): void {
  const model = modelOf(asked);
  if (recorded.provider === asked.provider && recorded.model === model) return;
  throw new ConflictError(
    `the index holds ${recorded.dims}-d vectors from ${recorded.provider} model "${recorded.model}"; ` +
      `embedding with ${asked.provider} model "${model}" is refused, as vectors of different models cannot be compared — ` +
      `embed with ${recorded.provider}/${recorded.model}, or build a new index`,
  );
}

function modelOf(spec: ProviderSpec): string {
  if (!PROVIDER_NAMES.includes(spec.provider)) throw new BadRequestError(`unknown embedding provider "${spec.provider}"; expected one of ${PROVIDER_NAMES.join(', ')}`);
  return spec.model?.trim() || DEFAULT_MODELS[spec.provider];
}

function positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new BadRequestError(`embedding setting ${name} must be a positive integer, got ${value}`);
  return value;
}
