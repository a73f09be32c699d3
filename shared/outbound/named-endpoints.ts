/**
 * Outbound endpoints are server configuration, named in payloads (DESIGN §4 "Roles and trust"):
 * one environment variable names an endpoint and says what it is and where, another holds its key.
 *
 *   <PREFIX><NAME>=<kind>:<base url>      e.g. LAKEHOUSE_EMBED_PROVIDER_GPU=ollama:http://gpu1:11434
 *   <PREFIX><NAME>_KEY=<key>              optional; sent only to that base URL
 *
 * Embedding providers use the prefix `LAKEHOUSE_EMBED_PROVIDER_`; LLM providers will use
 * `LAKEHOUSE_LLM_`. NAME is upper-case letters, digits and `_` in the environment and lower-case
 * in payloads (`GPU_BOX` → `gpu_box`); a name may not end in `_KEY`, which marks the key.
 */

export interface NamedEndpoint<K extends string = string> {
  /** Lower-case, as payloads name it. */
  name: string;
  kind: K;
  /** http(s) base URL as configured (credentials in it become Basic auth for a proxy in front). */
  url: string;
  /** Bearer key, sent only to {@link url}. */
  key?: string;
  /** The variable it came from, for messages. */
  variable: string;
}

export interface NamedEndpointsResult<K extends string> {
  endpoints: Record<string, NamedEndpoint<K>>;
  /** `VARIABLE: what is wrong` lines; the caller refuses to start when any. */
  problems: string[];
}

/** Names as payloads give them: what a configured NAME becomes after lower-casing. */
export const ENDPOINT_NAME = /^[a-z][a-z0-9_]{0,62}$/;

const NAME_PART = /^[A-Z][A-Z0-9_]{0,62}$/;

/** Reads every `<prefix><NAME>` (and its `_KEY`) from an environment. */
export function readNamedEndpoints<K extends string>(env: NodeJS.ProcessEnv, prefix: string, kinds: readonly K[]): NamedEndpointsResult<K> {
  const endpoints: Record<string, NamedEndpoint<K>> = {};
  const problems: string[] = [];
  const vars = Object.keys(env).filter((k) => k.startsWith(prefix) && env[k] !== undefined && env[k] !== '');
  for (const variable of vars) {
    const part = variable.slice(prefix.length);
    if (!NAME_PART.test(part)) {
      problems.push(`${variable}: the name after ${prefix} must be upper-case letters, digits and _ (starting with a letter)`);
      continue;
    }
    if (part.endsWith('_KEY')) {
      if (!env[`${prefix}${part.slice(0, -4)}`]) problems.push(`${variable}: a key for ${prefix}${part.slice(0, -4)}, which is not set`);
      continue;
    }
    const parsed = parseEndpoint(env[variable]!, kinds);
    if (typeof parsed === 'string') {
      problems.push(`${variable}: ${parsed}`);
      continue;
    }
    const key = env[`${variable}_KEY`];
    const name = part.toLowerCase();
    endpoints[name] = { name, kind: parsed.kind, url: parsed.url, ...(key ? { key } : {}), variable };
  }
  return { endpoints, problems };
}

/** `<kind>:<http(s) url>` → its parts, or what is wrong (never echoing the value: it may hold credentials). */
export function parseEndpoint<K extends string>(value: string, kinds: readonly K[]): { kind: K; url: string } | string {
  const cut = value.indexOf(':');
  const kind = value.slice(0, cut).trim();
  const url = value.slice(cut + 1).trim();
  const expected = `expected <kind>:<http(s) base URL> with kind one of ${kinds.join(', ')}`;
  if (cut <= 0 || !kinds.includes(kind as K)) return expected;
  return checkBaseUrl(url) ?? { kind: kind as K, url };
}

/** Undefined when `url` is an http(s) URL without query or fragment; otherwise what is wrong. */
export function checkBaseUrl(url: string): string | undefined {
  if (!URL.canParse(url)) return 'the base URL does not parse as a URL';
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'the base URL must be http:// or https://';
  if (u.search || u.hash) return 'the base URL must not have a query or fragment';
  return undefined;
}
