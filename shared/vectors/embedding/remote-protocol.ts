/**
 * What differs between the HTTP embedding servers we speak to: where to POST, what to send, and
 * where the vectors are in the answer. Everything else (batching, retries, checks, normalising)
 * is shared in remote-provider.ts.
 */
export interface RemoteProtocol {
  provider: 'ollama' | 'openai';
  /** Full endpoint URL for a base URL as configured. */
  endpoint(baseUrl: string): string;
  body(model: string, input: string[]): unknown;
  /** The answer's vectors in input order, unchecked; throws describing a malformed answer. */
  vectors(answer: unknown): unknown[];
}

/** Ollama's batched endpoint: POST /api/embed {model, input: [...]} → {embeddings: [[...]]}. */
export const ollamaProtocol: RemoteProtocol = {
  provider: 'ollama',
  endpoint: (baseUrl) => `${baseUrl.replace(/\/+$/, '')}/api/embed`,
  body: (model, input) => ({ model, input }),
  vectors(answer) {
    const embeddings = (answer as { embeddings?: unknown } | null)?.embeddings;
    if (!Array.isArray(embeddings)) throw new Error('the answer has no "embeddings" array');
    return embeddings;
  },
};

/**
 * Any OpenAI-compatible server (OpenAI, vLLM, text-embeddings-inference, LM Studio):
 * POST /v1/embeddings {model, input: [...]} → {data: [{index, embedding}]}. Items may come back in
 * any order, so they are placed by `index`. A base URL given with its `/v1` is accepted as is,
 * since that is how most of those servers document it.
 */
export const openaiProtocol: RemoteProtocol = {
  provider: 'openai',
  endpoint: (baseUrl) => `${baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '')}/v1/embeddings`,
  body: (model, input) => ({ model, input }),
  vectors(answer) {
    const data = (answer as { data?: unknown } | null)?.data;
    if (!Array.isArray(data)) throw new Error('the answer has no "data" array');
    const out: unknown[] = new Array(data.length);
    for (const item of data as { index?: unknown; embedding?: unknown }[]) {
      const i = item?.index;
      if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i >= data.length || out[i] !== undefined) {
        throw new Error(`the answer's data items have a missing, repeated or out-of-range index (${JSON.stringify(i)})`);
      }
      out[i] = item.embedding;
    }
    return out;
  },
};
