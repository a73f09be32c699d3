/**
 * An embedding provider behind HTTP (Ollama or an OpenAI-compatible server): input is sent in
 * batches of `batchSize`, every answer is checked (one vector per input, all the same length,
 * numbers only) and normalised. The dimension is learned from the first answer — `identity()`
 * sends a one-line probe when nothing has been embedded yet. Batches go one at a time: a model
 * server is busy enough with one, and a job's order of work stays simple to reason about.
 *
 * The key is bound to the one base URL this provider was configured with (SECURITY.md): the
 * Authorization header is built here and nowhere else, requests go only to that URL's endpoint,
 * redirects are not followed (retrying-post.ts), and error text is trimmed and scrubbed of the
 * key and anything else redaction finds before it becomes a job's failed reason.
 */
import type { EmbeddingProvider, ProviderIdentity } from './provider.ts';
import { EmbeddingProviderError, endpointOf, scrubUpstream } from './provider-error.ts';
import type { RemoteProtocol } from './remote-protocol.ts';
import { postJson } from './retrying-post.ts';
import { toUnitVector } from './unit-vector.ts';

export interface RemoteProviderOptions {
  /** The configured provider name, recorded in identities and named in errors. */
  name: string;
  baseUrl: string;
  model: string;
  apiKey?: string;
  timeoutMs: number;
  maxRetries: number;
  retryBaseMs: number;
  batchSize: number;
  /** Characters of an error answer's body quoted in a failure, after scrubbing. */
  errorBodyChars: number;
}

const PROBE_TEXT = 'dimension probe';

export class RemoteProvider implements EmbeddingProvider {
  #dims: number | undefined;
  readonly #url: string;
  readonly #headers: Record<string, string>;
  /** `user:password` of a base URL with credentials, scrubbed from errors like the key. */
  readonly #basic: string | undefined;

  constructor(
    readonly protocol: RemoteProtocol,
    readonly options: RemoteProviderOptions,
  ) {
    // fetch refuses URLs with credentials; a proxy in front of the server may want them, as Basic auth.
    const url = new URL(protocol.endpoint(options.baseUrl));
    const basic = url.username || url.password ? `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}` : undefined;
    url.username = url.password = '';
    this.#url = url.href;
    this.#basic = basic;
    this.#headers = {
      ...(basic && { authorization: `Basic ${Buffer.from(basic).toString('base64')}` }),
      ...(options.apiKey && { authorization: `Bearer ${options.apiKey}` }),
    };
  }

  async identity(): Promise<ProviderIdentity> {
    if (this.#dims === undefined) await this.embed([PROBE_TEXT]);
    return { provider: this.options.name, kind: this.protocol.provider, model: this.options.model, dims: this.#dims!, normalized: true };
  }

  async embed(texts: string[], signal?: AbortSignal): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    for (let i = 0; i < texts.length; i += this.options.batchSize) {
      out.push(...(await this.#embedBatch(texts.slice(i, i + this.options.batchSize), signal)));
    }
    return out;
  }

  /** Nothing to release: requests share fetch's global connection pool. */
  async close(): Promise<void> {}

  async #embedBatch(input: string[], signal: AbortSignal | undefined): Promise<Float32Array[]> {
    const { model, timeoutMs, maxRetries, retryBaseMs } = this.options;
    const answer = await postJson({
      url: this.#url,
      headers: this.#headers,
      body: this.protocol.body(model, input),
      timeoutMs,
      maxRetries,
      retryBaseMs,
      signal,
      fail: (detail, status) => this.#error(detail, status),
      scrub: (text) => scrubUpstream(text, this.#secrets()),
      errorBodyChars: this.options.errorBodyChars,
    });
    let rows: unknown[];
    try {
      rows = this.protocol.vectors(answer);
    } catch (err) {
      throw this.#error((err as Error).message);
    }
    if (rows.length !== input.length) throw this.#error(`sent ${input.length} texts but got ${rows.length} vectors back`);
    return rows.map((row, i) => toUnitVector(this.#checkRow(row, i)));
  }

  #checkRow(row: unknown, i: number): number[] {
    if (!Array.isArray(row) || row.length === 0 || !row.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      throw this.#error(`vector ${i} of the answer is not a non-empty array of finite numbers`);
    }
    this.#dims ??= row.length;
    if (row.length !== this.#dims) {
      throw this.#error(`vector ${i} of the answer has ${row.length} dimensions where ${this.#dims} were expected`);
    }
    return row;
  }

  #error(detail: string, status?: number): EmbeddingProviderError {
    return new EmbeddingProviderError(this.options.name, this.options.model, endpointOf(this.#url), detail, status, this.#secrets());
  }

  /** The key and proxy credentials, as literals to scrub from anything the provider answers. */
  #secrets(): string[] {
    const basic = this.#basic;
    return [this.options.apiKey, basic, ...(basic ? basic.split(':') : [])].filter((s): s is string => !!s && s.length >= 4);
  }
}
