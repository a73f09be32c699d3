/**
 * The error a remote embedding provider fails with. Its message names the provider, the model and
 * the endpoint (scheme and host only, never credentials), then what went wrong, so a failed embed
 * job explains itself in Bull Board without a log dive. What went wrong may quote the provider's
 * answer: that text is scrubbed (the provider's own key and credentials in every encoding, then
 * everything shared/redact.ts finds) before it is trimmed, so a cut can never leave half a key.
 */
import { DomainError } from '../../errors.ts';
import { REDACTED, redactSecrets } from '../../redact.ts';

/** The longest message an upstream failure produces (the quoted body is bounded separately, see retrying-post.ts). */
const MAX_MESSAGE_CHARS = 1_000;

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
    /** Literal secrets (the key, proxy credentials) to remove from the message. */
    secrets: readonly string[] = [],
  ) {
    super(trim(scrubUpstream(`${provider} embedding model "${model}" at ${endpoint}: ${detail}`, secrets), MAX_MESSAGE_CHARS), 502, 'Bad Gateway');
  }
}

/** `text` without any of `secrets` (as written, URL-encoded, JSON-escaped or base64) and without what redaction finds. */
export function scrubUpstream(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    for (const form of new Set([secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1), Buffer.from(secret).toString('base64')])) {
      if (form.length >= 4) out = out.split(form).join(REDACTED);
    }
  }
  return redactSecrets(out);
}

/** At most `max` characters, whitespace runs flattened, with `…` when cut. */
export function trim(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/** `scheme://host[:port]` of a URL: no user, password, path or query. */
export function endpointOf(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}`;
}
