/**
 * The error a remote embedding provider fails with. Its message names the provider, the model and
 * the endpoint (scheme and host only, never credentials), then what went wrong, so a failed embed
 * job explains itself in Bull Board without a log dive.
 */
import { DomainError } from '../../errors.ts';
import { redactSecrets } from '../../redact.ts';

/** A 502 to API callers (the upstream failed, not their request); jobs retry it with backoff. */
export class EmbeddingProviderError extends DomainError {
  override name = 'EmbeddingProviderError';

  constructor(
    readonly provider: string,
    readonly model: string,
    /** `scheme://host[:port]` of the server. */
    readonly endpoint: string,
    detail: string,
    /** HTTP status of the provider's last answer, when there was one. */
    readonly upstreamStatus?: number,
  ) {
    super(redactSecrets(`${provider} embedding model "${model}" at ${endpoint}: ${detail}`), 502, 'Bad Gateway');
  }
}

/** `scheme://host[:port]` of a URL: no user, password, path or query. */
export function endpointOf(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}`;
}
