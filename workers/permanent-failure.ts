import { DomainError } from '../shared/errors.ts';
import { EmbeddingProviderError } from '../shared/vectors/embedding/provider-error.ts';

/**
 * Errors a retry cannot fix: bad input (a 4xx domain error), or an embedding server that refused
 * the request itself (a 4xx other than timeout and rate limit). Processors turn these into
 * BullMQ's UnrecoverableError so the job fails once, with its reason, instead of three times.
 */
export function isPermanent(err: unknown): boolean {
  if (err instanceof EmbeddingProviderError) {
    const s = err.upstreamStatus;
    // a 3xx is a redirect we refuse to follow (the key stays with its URL): a configuration error, not a blip
    return s !== undefined && s >= 300 && s < 500 && s !== 408 && s !== 429;
  }
  return err instanceof DomainError && err.status < 500;
}
