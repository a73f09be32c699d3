/**
 * SQL latency over the ingested dataset: ours is `POST /query` on the real API with the admin key
 * (HTTP, auth, body schema, view sync against the manifests on disk, the sandboxed engine, the
 * audit log line, JSON out); raw is plain DuckDB over the same Parquet part files. Every query is
 * run once on each side to warm up, then `runs` times with ours and raw interleaved (the order
 * alternating per run). A third side, ours in-process (CatalogQuery.query, as the route calls it,
 * without HTTP), is measured the same way to tell HTTP's share from the catalog's.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import type { CatalogQuery } from '../../shared/sql/catalog-query.ts';
import type { OurStack } from './our-stack.ts';
import type { RawSql } from './raw-duckdb.ts';

export const QUERIES = [
  { key: 'count', label: 'COUNT(*)', sql: 'SELECT count(*) AS n FROM profiles' },
  {
    key: 'filter',
    label: 'filter',
    // the total of matches and a first page in one statement: the count covers every match, the page 100
    sql:
      'SELECT count(*) OVER () AS matches, candidate_id, first_name, last_name, city, years_experience, desired_rate ' +
      "FROM profiles WHERE state = 'OH' AND years_experience > 5 LIMIT 100",
  },
  { key: 'group', label: 'group-by', sql: 'SELECT state, avg(desired_rate) AS avg_rate, count(*) AS n FROM profiles GROUP BY state ORDER BY 2 DESC' },
] as const;

export type QueryKey = (typeof QUERIES)[number]['key'] | 'concurrent';

export interface SideTimings {
  ours: number[];
  raw: number[];
  inProcess: number[];
  /**
   * Per run (all three sides together): cores other processes kept busy. A run lasts milliseconds
   * and CPU time is counted in 10 ms ticks, so a single figure is coarse; a run of many is not.
   */
  others: number[];
}

export type LatencyTimings = Record<QueryKey, SideTimings>;

type Rows = Record<string, unknown>[];

interface Sides {
  ours(sql: string): Promise<Rows>;
  raw(sql: string, conn?: DuckDBConnection): Promise<Rows>;
  inProcess(sql: string): Promise<Rows>;
}

function sides(stack: OurStack, raw: RawSql, sql: CatalogQuery): Sides {
  return {
    async ours(statement) {
      const res = await fetch(`${stack.url}/query`, {
        method: 'POST',
        headers: { authorization: `Bearer ${stack.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ sql: statement }),
      });
      const body = (await res.json()) as { rows?: Rows; detail?: string };
      if (res.status !== 200 || !body.rows) throw new Error(`POST /query answered ${res.status}: ${JSON.stringify(body).slice(0, 300)}`);
      return body.rows;
    },
    raw: (statement, conn) => raw.query(statement, conn),
    async inProcess(statement) {
      return (await sql.query(statement, { role: 'admin', who: 'bench' })).rows;
    },
  };
}

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const started = performance.now();
  const value = await fn();
  return [(performance.now() - started) / 1000, value];
}

/** The same answer on both sides, so the bench never times a query that went wrong on one. */
function assertSameAnswer(key: QueryKey, ours: Rows, raw: Rows, expectedRows: number): void {
  const fail = (why: string) => {
    throw new Error(`${key}: ours and raw disagree (${why}); ours ${JSON.stringify(ours.slice(0, 3))}, raw ${JSON.stringify(raw.slice(0, 3))}`);
  };
  if (ours.length !== raw.length) fail(`${ours.length} rows vs ${raw.length}`);
  if (key === 'count' && (Number(ours[0]?.['n']) !== expectedRows || Number(raw[0]?.['n']) !== expectedRows)) fail(`expected ${expectedRows}`);
  if (key === 'filter' && Number(ours[0]?.['matches']) !== Number(raw[0]?.['matches'])) fail('match counts');
  if (key === 'group' || key === 'concurrent') {
    const shape = (rows: Rows) => rows.map((r) => `${String(r['state'])}:${Number(r['n'])}`).join(',');
    if (shape(ours) !== shape(raw)) fail('groups');
  }
}

/** Starts a CPU meter; the returned function stops it and gives the cores other processes kept busy. */
export type StartMeter = () => Promise<() => Promise<number>>;

export async function measureLatency(
  stack: OurStack, raw: RawSql, runs: number, concurrency: number, expectedRows: number, startMeter: StartMeter,
): Promise<LatencyTimings> {
  const s = sides(stack, raw, stack.api.deps.sql);
  const conns = await raw.connections(concurrency);
  const out = {} as LatencyTimings;
  try {
    const group = QUERIES.find((q) => q.key === 'group')!.sql;
    const plans: { key: QueryKey; ours: () => Promise<Rows>; raw: () => Promise<Rows>; inProcess: () => Promise<Rows> }[] = [
      ...QUERIES.map((q) => ({ key: q.key, ours: () => s.ours(q.sql), raw: () => s.raw(q.sql), inProcess: () => s.inProcess(q.sql) })),
      {
        key: 'concurrent',
        // every side returns the first answer; all `concurrency` are awaited before the clock stops
        ours: async () => (await Promise.all(conns.map(() => s.ours(group))))[0]!,
        raw: async () => (await Promise.all(conns.map((c) => s.raw(group, c))))[0]!,
        inProcess: async () => (await Promise.all(conns.map(() => s.inProcess(group))))[0]!,
      },
    ];
    for (const plan of plans) {
      assertSameAnswer(plan.key, await plan.ours(), await plan.raw(), expectedRows); // the warm-up
      await plan.inProcess();
      const t: SideTimings = { ours: [], raw: [], inProcess: [], others: [] };
      for (let r = 0; r < runs; r++) {
        const order = (['ours', 'raw', 'inProcess'] as const).map((_, i, all) => all[(i + r) % all.length]!);
        const stopMeter = await startMeter();
        for (const side of order) {
          const [seconds] = await timed(plan[side]);
          t[side].push(seconds);
        }
        t.others.push(await stopMeter());
      }
      out[plan.key] = t;
    }
  } finally {
    for (const c of conns) c.closeSync();
  }
  return out;
}
