/**
 * The query audit log: one JSON line per query in a daily file, `<dir>/queries-YYYY-MM-DD.jsonl`
 * (UTC day of `at`).
 *
 * Several API processes, on several hosts, append to the same folder. Each entry is written with
 * one `appendFile` call (O_APPEND) of a line kept under MAX_LINE_BYTES: Node writes a buffer that
 * small with one write(2), which a local filesystem appends whole (the inode lock serialises
 * appenders), so lines never interleave. NFS emulates O_APPEND on the
 * client and two hosts can overwrite each other's lines there: give each host its own `writer` id
 * and it writes `queries-YYYY-MM-DD.<writer>.jsonl` instead. `list` reads both forms, and skips a
 * line that does not parse rather than failing the whole page.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { redactSecrets } from '../redact.ts';

export interface QueryAuditEntry {
  /** Sortable and unique: `at` plus a random suffix. Pass it as `before` to get the next page. */
  id: string;
  /** ISO 8601, UTC. */
  at: string;
  /** `<first 8 hex of sha256(key)>:<role>` (see `auditIdentity`); never the key. */
  who: string;
  role: string;
  /**
   * The SQL with secrets redacted: whole up to MAX_SQL_CHARS, else its first SQL_HEAD_CHARS and
   * last SQL_TAIL_CHARS around a note of how much was left out; `sql_sha256` identifies it.
   */
  sql: string;
  /** sha256 (hex) of the redacted SQL, whole. */
  sql_sha256?: string;
  /** Length of the redacted SQL, whole. */
  sql_chars?: number;
  datasets: string[];
  pii_columns: { dataset: string; column: string }[];
  rows: number;
  ms: number;
  outcome: 'ok' | 'refused' | 'error';
  error?: string;
}

export type NewQueryAuditEntry = Omit<QueryAuditEntry, 'id'>;

export interface QueryLogOptions {
  /**
   * Names this process's own daily files, for shared filesystems without atomic O_APPEND (NFS).
   * Must match `^[A-Za-z0-9_-]{1,64}$`, e.g. the host name.
   * @defaultValue none: every process appends to the one daily file
   */
  writer?: string;
}

export interface ListOptions {
  /** Entries at or after this ISO time. */
  since?: string;
  /** Page size. */
  limit: number;
  /** Entries older than this entry id or ISO time: the last id of the previous page. */
  before?: string;
}

export const MAX_SQL_CHARS = 8000;
export const SQL_HEAD_CHARS = 4000;
export const SQL_TAIL_CHARS = 2000;
const MAX_ERROR_CHARS = 500;
/** Under the 4 KiB page that local filesystems append in one piece. */
const MAX_LINE_BYTES = 16_000;
const FILE_NAME = /^queries-(\d{4}-\d{2}-\d{2})(?:\.[A-Za-z0-9_-]{1,64})?\.jsonl$/;
const WRITER = /^[A-Za-z0-9_-]{1,64}$/;

/** Who ran a query, as the log records it: enough to tell keys apart, useless to an attacker. */
export function auditIdentity(key: string, role: string): string {
  return `${createHash('sha256').update(key).digest('hex').slice(0, 8)}:${role}`;
}

export class QueryLog {
  private ready: Promise<unknown> | undefined;

  constructor(
    private readonly dir: string,
    private readonly opts: QueryLogOptions = {},
  ) {
    if (opts.writer !== undefined && !WRITER.test(opts.writer)) throw new Error(`Invalid audit log writer id: ${JSON.stringify(opts.writer)}`);
  }

  /** Appends one line; returns the entry as written (trimmed, with its id). */
  async append(entry: NewQueryAuditEntry): Promise<QueryAuditEntry> {
    const at = new Date(entry.at);
    if (Number.isNaN(at.getTime())) throw new Error(`Audit entry has an invalid time: ${JSON.stringify(entry.at)}`);
    const iso = at.toISOString();
    const written = fitLine({ ...entry, id: `${iso}~${randomBytes(4).toString('hex')}`, at: iso });
    this.ready ??= fs.mkdir(this.dir, { recursive: true });
    await this.ready;
    const suffix = this.opts.writer ? `.${this.opts.writer}` : '';
    await fs.appendFile(path.join(this.dir, `queries-${iso.slice(0, 10)}${suffix}.jsonl`), JSON.stringify(written) + '\n', { flag: 'a' });
    return written;
  }

  /** Newest first; reads day by day from the newest file and stops once the page is full. */
  async list({ since, limit, before }: ListOptions): Promise<QueryAuditEntry[]> {
    if (!(Number.isInteger(limit) && limit > 0)) throw new Error(`limit must be a positive integer, got ${limit}`);
    const days = await this.days();
    const page: QueryAuditEntry[] = [];
    for (const [day, files] of days) {
      if (before !== undefined && day > before.slice(0, 10)) continue;
      if (since !== undefined && day < since.slice(0, 10)) break;
      const entries = (await Promise.all(files.map((file) => readEntries(path.join(this.dir, file)))))
        .flat()
        .filter((e) => (before === undefined || e.id < before) && (since === undefined || e.at >= since))
        .sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
      page.push(...entries.slice(0, limit - page.length));
      if (page.length >= limit) break;
    }
    return page;
  }

  /** Daily files grouped by day, newest day first. */
  private async days(): Promise<[string, string[]][]> {
    let names: string[];
    try {
      names = await fs.readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const byDay = new Map<string, string[]>();
    for (const name of names) {
      const day = FILE_NAME.exec(name)?.[1];
      if (day) byDay.set(day, [...(byDay.get(day) ?? []), name]);
    }
    return [...byDay].sort(([a], [b]) => (a < b ? 1 : -1));
  }
}

/** Redacts and truncates; if the line is still too long, drops list items and says so in `error`. */
function fitLine(entry: QueryAuditEntry): QueryAuditEntry {
  const error = entry.error === undefined ? undefined : truncate(redactSecrets(entry.error), MAX_ERROR_CHARS);
  const sql = redactSecrets(entry.sql);
  const fitted: QueryAuditEntry = {
    ...entry,
    sql: headAndTail(sql),
    sql_sha256: createHash('sha256').update(sql).digest('hex'),
    sql_chars: sql.length,
    ...(error === undefined ? {} : { error }),
  };
  let dropped = 0;
  while (Buffer.byteLength(JSON.stringify(fitted)) >= MAX_LINE_BYTES) {
    if (fitted.pii_columns.length > 0) fitted.pii_columns = fitted.pii_columns.slice(0, -1);
    else if (fitted.datasets.length > 0) fitted.datasets = fitted.datasets.slice(0, -1);
    else {
      fitted.sql = truncate(fitted.sql, Math.floor(fitted.sql.length / 2));
      continue;
    }
    dropped++;
    const note = `audit entry too long: ${dropped} dataset/PII column item(s) left out`;
    fitted.error = error === undefined ? note : `${note}; ${error}`;
  }
  return fitted;
}

function headAndTail(sql: string): string {
  if (sql.length <= MAX_SQL_CHARS) return sql;
  const omitted = sql.length - SQL_HEAD_CHARS - SQL_TAIL_CHARS;
  return `${sql.slice(0, SQL_HEAD_CHARS)}\n…[${omitted} characters left out]…\n${sql.slice(-SQL_TAIL_CHARS)}`;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

async function readEntries(file: string): Promise<QueryAuditEntry[]> {
  const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw err;
  });
  const entries: QueryAuditEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      const entry = JSON.parse(line) as QueryAuditEntry;
      if (typeof entry.id === 'string' && typeof entry.at === 'string') entries.push(entry);
    } catch {
      // A torn line (a crash mid-write, or NFS without a writer id) must not hide the rest.
    }
  }
  return entries;
}
