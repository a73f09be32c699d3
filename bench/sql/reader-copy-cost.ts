/**
 * What reader copies cost (shared/sql/reader-copies.ts), against what ingesting the part cost in
 * the first place:
 * - raw: plain DuckDB converts the generated CSV to zstd Parquet, the bench's stand-in for ingest;
 * - masked: ensureReaderCopies with the four PII columns masked, i.e. DuckDB rewriting the part
 *   with those columns as '***' (whoever makes the copy after an ingest pays this);
 * - link: ensureReaderCopies with nothing masked: a hard link, no extra disk;
 * - sync: QueryEngine.syncViews on a freshly opened engine (describe, the masked copy, both
 *   views): everything the first query after an ingest waits for when no copy exists yet.
 * Rounds run the four in an order rotated per round; every round starts with no copy on disk.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { ensureReaderCopies } from '../../shared/sql/reader-copies.ts';
import { QueryEngine, type DatasetView } from '../../shared/sql/query-engine.ts';
import type { DataRoot } from '../../shared/storage/data-root.ts';
import { startCpuMeter, startPhase } from '../cpu-meter.ts';

export const DATASET = 'profiles';
/** The columns the ingest PII scan flags in the generated profiles, masked for readers. */
export const PII_COLUMNS = ['first_name', 'last_name', 'email', 'phone'];
/** The hard-link case goes to its own reader directory, as a second dataset would. */
const LINKED = 'profiles_public';

export const COPY_SIDES = ['raw', 'masked', 'link', 'sync'] as const;
export type CopySide = (typeof COPY_SIDES)[number];

export interface Span {
  seconds: number;
  /** CPU seconds of this process (DuckDB's threads included) during the span. */
  cpu: number;
  /** Cores other processes kept busy meanwhile. */
  others: number;
}

export type CopyRounds = Record<CopySide, Span[]>;

export interface DiskFacts {
  partBytes: number;
  maskedCopyBytes: number;
  /** Bytes the hard-link case added on disk: allocated blocks of files in its reader directory that are not the part's inode. */
  linkExtraBytes: number;
  /** Whether the link's inode is the part's. */
  linkSharesInode: boolean;
}

const sqlString = (s: string) => `'${s.replace(/'/g, "''")}'`;

async function timed(fn: () => Promise<unknown>): Promise<Span> {
  const stopMeter = await startCpuMeter();
  const stopPhase = await startPhase(async () => 0);
  await fn();
  const phase = await stopPhase();
  return { seconds: phase.seconds, cpu: phase.ownCpu, others: await stopMeter() };
}

/** A plain DuckDB with `threads` threads: the stand-in for the full engine's admin connection. */
export async function openDuckDb(threads: number): Promise<{ conn: DuckDBConnection; close(): void }> {
  const instance = await DuckDBInstance.create(':memory:', { threads: String(threads) });
  const conn = await instance.connect();
  return { conn, close: () => { conn.closeSync(); instance.closeSync(); } };
}

/** Plain DuckDB, defaults: COPY (FROM read_csv(csv)) TO out (FORMAT parquet, COMPRESSION zstd); the COPY only is timed. */
export async function rawCsvToParquet(csv: string, out: string): Promise<Span> {
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  try {
    return await timed(() => conn.run(`COPY (FROM read_csv(${sqlString(csv)})) TO ${sqlString(out)} (FORMAT parquet, COMPRESSION zstd)`));
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

export async function columnsOf(conn: DuckDBConnection, part: string): Promise<string[]> {
  const described = await conn.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${sqlString(part)})`);
  return described.getRowObjects().map((r) => String(r['column_name']));
}

export function datasetView(root: DataRoot, part: string): DatasetView {
  return { name: DATASET, version: 1, files: [part], maskedColumns: PII_COLUMNS, readerDir: root.datasetReaderDir(DATASET) };
}

/** The engine as CatalogQuery.open builds it with the product's defaults (shared/config.ts). */
export function openEngine(root: DataRoot, threads: number): Promise<QueryEngine> {
  return QueryEngine.open({
    allowedDirs: [root.datasetsDir()],
    readerDirs: [root.readerDir()],
    threads,
    memoryLimit: '1024MiB',
    tempDir: root.queryTempDir(),
    maxTempSize: '4096MiB',
  });
}

const say = (line: string) => process.stderr.write(`sql bench: ${line}\n`);

export async function copyRounds(
  root: DataRoot, csv: string, part: string, scratch: string, rounds: number, threads: number,
): Promise<{ rounds: CopyRounds; disk: DiskFacts }> {
  const out: CopyRounds = { raw: [], masked: [], link: [], sync: [] };
  const duck = await openDuckDb(threads);
  const maskedDir = root.datasetReaderDir(DATASET);
  const linkDir = root.datasetReaderDir(LINKED);
  let disk: DiskFacts | undefined;
  try {
    const columns = await columnsOf(duck.conn, part);
    for (let r = 0; r < rounds; r++) {
      const order = COPY_SIDES.map((_, i, all) => all[(i + r) % all.length]!);
      for (const side of order) {
        say(`round ${r + 1}/${rounds} ${side}…`);
        if (side === 'raw') {
          const target = path.join(scratch, `raw-${r}.parquet`);
          out.raw.push(await rawCsvToParquet(csv, target));
          await fs.rm(target, { force: true });
        } else if (side === 'masked') {
          await fs.rm(maskedDir, { recursive: true, force: true });
          let copies: string[] = [];
          out.masked.push(await timed(async () => {
            copies = await ensureReaderCopies(duck.conn, { files: [part], maskedColumns: PII_COLUMNS, columns, dir: maskedDir });
          }));
          if (copies.length !== 1 || (await fs.stat(copies[0]!)).ino === (await fs.stat(part)).ino) throw new Error('the masked case did not write a copy');
          disk = { ...(disk ?? emptyDisk()), maskedCopyBytes: (await fs.stat(copies[0]!)).size };
        } else if (side === 'link') {
          await fs.rm(linkDir, { recursive: true, force: true });
          out.link.push(await timed(() => ensureReaderCopies(duck.conn, { files: [part], maskedColumns: [], columns, dir: linkDir })));
          disk = { ...(disk ?? emptyDisk()), ...(await linkFacts(part, linkDir)) };
        } else {
          await fs.rm(maskedDir, { recursive: true, force: true });
          const engine = await openEngine(root, threads);
          try {
            out.sync.push(await timed(() => engine.syncViews([datasetView(root, part)])));
          } finally {
            await engine.close();
          }
          if ((await fs.readdir(maskedDir)).filter((f) => f.endsWith('.parquet')).length !== 1) throw new Error('the view sync did not make one reader copy');
        }
        say(`  ${side}: ${out[side].at(-1)!.seconds.toFixed(3)} s`);
      }
    }
  } finally {
    duck.close();
  }
  return { rounds: out, disk: { ...disk!, partBytes: (await fs.stat(part)).size } };
}

function emptyDisk(): DiskFacts {
  return { partBytes: 0, maskedCopyBytes: 0, linkExtraBytes: 0, linkSharesInode: false };
}

async function linkFacts(part: string, dir: string): Promise<Pick<DiskFacts, 'linkExtraBytes' | 'linkSharesInode'>> {
  const partIno = (await fs.stat(part)).ino;
  let extra = 0;
  let shares = false;
  for (const name of await fs.readdir(dir)) {
    const st = await fs.stat(path.join(dir, name));
    if (st.ino === partIno) shares = true;
    else extra += st.blocks * 512;
  }
  return { linkExtraBytes: extra, linkSharesInode: shares };
}
