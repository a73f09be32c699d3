/**
 * Turns driver errors into messages that name the source (kind and host) and never its password:
 * the DSN's password is removed both as a URL credential (`redactSecrets`) and as a literal (every
 * reading shared/redact.ts finds, since `new URL` splits `u:12/ss@db` wrongly), in case a driver
 * quotes it some other way. The original error is not attached as `cause`, because
 * loggers serialise causes and drivers keep their connection config on them.
 */
import { BadRequestError, UnavailableError } from '../../errors.ts';
import { dsnPasswords, redactDsn, redactSecrets } from '../../redact.ts';

export interface SourceLabel {
  kind: 'postgres' | 'mysql';
  /** `host:port`, for messages. */
  host: string;
  /** The password as written in the DSN and URL-decoded; scrubbed from every message. */
  secrets: string[];
}

const SCHEMES: Record<SourceLabel['kind'], string[]> = {
  postgres: ['postgres:', 'postgresql:'],
  mysql: ['mysql:', 'mariadb:'],
};
const DEFAULT_PORT: Record<SourceLabel['kind'], string> = { postgres: '5432', mysql: '3306' };

/** Parses the DSN only as far as messages need; never echoes it back. */
export function sourceLabel(kind: SourceLabel['kind'], dsn: string): SourceLabel {
  let url: URL;
  try {
    url = new URL(dsn);
  } catch {
    throw new BadRequestError(`${kind} source: the DSN is not a URL (expected ${SCHEMES[kind][0]}//user:password@host:port/database)`);
  }
  if (!SCHEMES[kind].includes(url.protocol)) {
    throw new BadRequestError(`${kind} source: the DSN scheme must be one of ${SCHEMES[kind].join(', ')}`);
  }
  const secrets = dsnPasswords(dsn).filter((s) => s.length > 0);
  // the host as redaction splits it: `new URL` reads `u:12/ss@db` as host u, port 12 — part of the password
  const shown = URL.canParse(redactDsn(dsn)) ? new URL(redactDsn(dsn)) : url;
  return { kind, host: `${shown.hostname || 'localhost'}:${shown.port || DEFAULT_PORT[kind]}`, secrets };
}

/** SQLSTATE classes that mean the request itself is wrong: retrying cannot help. */
const CALLER_CLASSES = new Set(['22', '25', '28', '3D', '3F', '42']);
/** Socket-level failures: the source may come back, so the job may retry. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE',
  'PROTOCOL_CONNECTION_LOST',
]);

/** `<kind> source at <host>: <driver message>`, redacted, as a 400, a 503 or a plain Error. */
export function sourceError(label: SourceLabel, err: unknown): Error {
  const message = scrub(label, `${label.kind} source at ${label.host}: ${describe(err)}`);
  if (err instanceof BadRequestError || CALLER_CLASSES.has(sqlState(err).slice(0, 2))) return new BadRequestError(message);
  if (err instanceof UnavailableError || isNetworkError(err)) return new UnavailableError(message);
  return new Error(message);
}

function scrub(label: SourceLabel, text: string): string {
  let out = redactSecrets(text);
  for (const secret of label.secrets) out = out.split(secret).join('***');
  return out;
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // Node reports a refused dual-stack connect as an AggregateError with an empty message.
  if (err.message) return err.message;
  if (err instanceof AggregateError) return err.errors.map(describe).join('; ');
  return errorCode(err) || err.name;
}

/** pg puts the SQLSTATE in `code`; mysql2 puts it in `sqlState` (and its own name in `code`). */
function sqlState(err: unknown): string {
  if (!(err instanceof Error)) return '';
  const e = err as { sqlState?: unknown; code?: unknown };
  if (typeof e.sqlState === 'string') return e.sqlState;
  return typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : '';
}

function isNetworkError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (NETWORK_CODES.has(errorCode(err))) return true;
  if (err instanceof AggregateError) return err.errors.some(isNetworkError);
  // pg's connectionTimeoutMillis and a server closing the socket carry no code.
  return /timeout|Connection terminated/i.test(err.message);
}

function errorCode(err: Error): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : '';
}
