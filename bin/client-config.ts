/**
 * Where the client commands find the API and which key they present. LAKEHOUSE_API_URL and
 * LAKEHOUSE_API_KEY are read here and nowhere else: they belong to the CLI, not to the servers
 * (whose variables shared/config.ts reads). Flags win over the environment, which wins over the
 * local defaults; the server config is only consulted for those defaults.
 */
import { readGeneratedKey } from '../shared/auth/key-ring.ts';
import { ConfigError, loadConfig, type Config } from '../shared/config.ts';
import { DataRoot } from '../shared/storage/data-root.ts';
import { UsageError } from './cli-errors.ts';

export interface ClientConfig {
  /** Without a trailing slash, so paths can be appended. */
  baseUrl: string;
  key: string | undefined;
  /** Where the key came from, said when the API refuses it (or its absence). */
  keySource: string;
}

export interface ClientFlags {
  url?: string | undefined;
  key?: string | undefined;
}

export async function resolveClientConfig(flags: ClientFlags, command: string, env: NodeJS.ProcessEnv = process.env): Promise<ClientConfig> {
  let serverConfig: Config | undefined;
  const server = () => (serverConfig ??= loadConfig(env));

  const envUrl = env['LAKEHOUSE_API_URL'] || undefined;
  const baseUrl = flags.url !== undefined
    ? checkUrl(flags.url, (msg) => new UsageError(`--url: ${msg}`, command))
    : envUrl !== undefined
      ? checkUrl(envUrl, (msg) => new ConfigError(`invalid configuration:\n  LAKEHOUSE_API_URL: ${msg}`))
      : `http://127.0.0.1:${server().port}`;

  if (flags.key !== undefined) return { baseUrl, key: flags.key, keySource: 'from --key' };
  const envKey = env['LAKEHOUSE_API_KEY'] || undefined;
  if (envKey !== undefined) return { baseUrl, key: envKey, keySource: 'from LAKEHOUSE_API_KEY' };
  const secrets = new DataRoot(server().dataDir).secretsDir();
  const generated = await readGeneratedKey(secrets);
  return generated
    ? { baseUrl, key: generated, keySource: `generated, read from ${secrets}` }
    : { baseUrl, key: undefined, keySource: `none found: pass --key, set LAKEHOUSE_API_KEY, or run where ${secrets} holds the generated key` };
}

function checkUrl(raw: string, fail: (message: string) => Error): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw fail(`expected an http:// or https:// URL, got ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw fail(`expected an http:// or https:// URL, got ${JSON.stringify(raw)}`);
  return url.href.replace(/\/+$/, '');
}
