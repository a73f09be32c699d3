/**
 * Query latency per role over the same part: raw is plain DuckDB (a `:memory:` instance, a view
 * over the raw part, one kept-open connection, rows as JS objects: bench/ingest/raw-duckdb.ts);
 * writer and reader are QueryEngine.query with that role on one engine opened as CatalogQuery
 * opens it, the product's default limits (10,000 rows, 30 s, 32 MiB of JSON). Writers' queries run
 * on the full engine over the raw part; readers' go through the reader guard (parse tree walked
 * before binding) and run on the reader engine over the masked reader copy. Each query runs once
 * per side to warm up (and the answers are checked against each other), then `runs` times with
 * the three sides interleaved, the order rotated per run.
 */
import type { QueryEngine } from '../../shared/sql/query-engine.ts';
import { MASK } from '../../shared/sql/sql-text.ts';
import type { RawSql } from '../ingest/raw-duckdb.ts';
import { startCpuMeter } from '../cpu-meter.ts';
import { DATASET } from './reader-copy-cost.ts';

export const QUERIES = [
  { key: 'count', label: 'COUNT(*)', sql: `SELECT count(*) AS n FROM ${DATASET}` },
  { key: 'filter', label: 'filter + page', sql: `SELECT * FROM ${DATASET} WHERE state = 'OH' ORDER BY candidate_id LIMIT 100` },
  { key: 'group', label: 'group-by', sql: `SELECT state, count(*) AS n, avg(years_experience) AS avg_years FROM ${DATASET} GROUP BY state` },
] as const;

export type QueryKey = (typeof QUERIES)[number]['key'];
export const ROLE_SIDES = ['raw', 'writer', 'reader'] as const;
export type RoleSide = (typeof ROLE_SIDES)[number];

export interface QueryTimings {
  seconds: Record<RoleSide, number[]>;
  cpu: Record<RoleSide, number[]>;
  /** Per run (the three sides together): cores other processes kept busy; coarse, runs last milliseconds. */
  others: number[];
  /**
   * Per run: QueryEngine.parseTree(sql) alone (a fresh reader-engine connection, json_serialize_sql),
   * the bulk of what the reader guard adds; not a side, timed after the three.
   */
  parse: number[];
}

type Rows = Record<string, unknown>[];

const LIMITS = { maxRows: 10_000, timeoutMs: 30_000, maxBytes: 32 * 2 ** 20 };

function sideRunner(engine: QueryEngine, raw: RawSql): Record<RoleSide, (sql: string) => Promise<Rows>> {
  return {
    raw: (sql) => raw.query(sql),
    writer: async (sql) => (await engine.query(sql, { ...LIMITS, role: 'writer' })).rows,
    reader: async (sql) => (await engine.query(sql, { ...LIMITS, role: 'reader' })).rows,
  };
}

/** The same answer on every side, and masked values for the reader only: never time a query that went wrong. */
function checkAnswers(key: QueryKey, answers: Record<RoleSide, Rows>, expectedRows: number): void {
  const fail = (why: string) => {
    throw new Error(`${key}: ${why}; raw ${JSON.stringify(answers.raw.slice(0, 2))}, writer ${JSON.stringify(answers.writer.slice(0, 2))}, reader ${JSON.stringify(answers.reader.slice(0, 2))}`);
  };
  const { raw, writer, reader } = answers;
  if (raw.length !== writer.length || raw.length !== reader.length) fail(`row counts differ (${raw.length}/${writer.length}/${reader.length})`);
  if (key === 'count') {
    if (![raw, writer, reader].every((rows) => Number(rows[0]?.['n']) === expectedRows)) fail(`expected ${expectedRows}`);
  } else if (key === 'filter') {
    const ids = (rows: Rows) => rows.map((r) => Number(r['candidate_id'])).join(',');
    if (raw.length !== 100 || ids(writer) !== ids(raw) || ids(reader) !== ids(raw)) fail('pages differ');
    if (writer.some((r, i) => r['email'] !== raw[i]!['email'] || r['email'] === MASK)) fail('the writer does not see the raw e-mail addresses');
    if (!reader.every((r) => r['first_name'] === MASK && r['last_name'] === MASK && r['email'] === MASK && r['phone'] === MASK)) fail('the reader sees an unmasked PII value');
  } else {
    const shape = (rows: Rows) => rows.map((r) => `${String(r['state'])}:${Number(r['n'])}`).sort().join(',');
    if (shape(writer) !== shape(raw) || shape(reader) !== shape(raw)) fail('groups differ');
  }
}

export async function measureRoles(engine: QueryEngine, raw: RawSql, runs: number, expectedRows: number): Promise<Record<QueryKey, QueryTimings>> {
  const run = sideRunner(engine, raw);
  const out = {} as Record<QueryKey, QueryTimings>;
  for (const q of QUERIES) {
    const answers = {} as Record<RoleSide, Rows>;
    for (const side of ROLE_SIDES) answers[side] = await run[side](q.sql); // the warm-up
    checkAnswers(q.key, answers, expectedRows);
    const t: QueryTimings = { seconds: { raw: [], writer: [], reader: [] }, cpu: { raw: [], writer: [], reader: [] }, others: [], parse: [] };
    for (let r = 0; r < runs; r++) {
      const order = ROLE_SIDES.map((_, i, all) => all[(i + r) % all.length]!);
      const stopMeter = await startCpuMeter();
      for (const side of order) {
        const cpu0 = process.cpuUsage();
        const started = performance.now();
        await run[side](q.sql);
        t.seconds[side].push((performance.now() - started) / 1000);
        const cpu = process.cpuUsage(cpu0);
        t.cpu[side].push((cpu.user + cpu.system) / 1e6);
      }
      t.others.push(await stopMeter());
      const parseStarted = performance.now();
      await engine.parseTree(q.sql);
      t.parse.push((performance.now() - parseStarted) / 1000);
    }
    out[q.key] = t;
  }
  return out;
}
