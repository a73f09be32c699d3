/**
 * The error a remote embedding provider fails with. Its message names the provider, the model and
 * the endpoint (scheme and host only, never credentials), then what went wrong, so a failed embed
 * job explains itself in Bull Board without a log dive.
 */
import { redactSecrets } from '../../redact.ts';

export class EmbeddingProviderError extends Error {
  override name = 'EmbeddingProviderError';

  constructor(
    readonly provider: string,
    readonly model: string,
    /** `scheme://host[:port]` of the server. */
    readonly endpoint: string,
    detail: string,
    /** HTTP status of the last answer, when there was one. */
    readonly status?: number,
  ) {
    super(redactSecrets(`${provider} embedding model "${model}" at ${endpoint}: ${detail}`));
  }
}

/** `scheme://host[:port]` of a URL: no user, password, path or query. */
export function endpointOf(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}`;
}
