/**
 * Runs the benches: `npm run bench` runs all of them, `npm run bench -- queue` only those named.
 * Each prints its table and writes bench/results/<name>-<date>.json. Adding a bench is one line
 * in BENCHES.
 */
import { fileURLToPath } from 'node:url';
import { printReport, writeReport, type BenchReport } from './report.ts';

interface Bench {
  name: string;
  run(): Promise<BenchReport>;
}

const BENCHES: Bench[] = [
  { name: 'queue', run: async () => (await import('./queue/queue-bench.ts')).run() },
  { name: 'ingest', run: async () => (await import('./ingest/ingest-bench.ts')).run() },
  { name: 'vectors', run: async () => (await import('./vectors/vectors-bench.ts')).run() },
  { name: 'autotune', run: async () => (await import('./autotune/autotune-bench.ts')).run() },
  { name: 'sql', run: async () => (await import('./sql/sql-bench.ts')).run() },
];

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));

async function main(args: string[]): Promise<void> {
  const unknown = args.filter((a) => !BENCHES.some((b) => b.name === a));
  if (unknown.length > 0) {
    process.stderr.write(`no bench named ${unknown.map((u) => JSON.stringify(u)).join(', ')}; benches: ${BENCHES.map((b) => b.name).join(', ')}\n`);
    process.exitCode = 2;
    return;
  }
  let failed = false;
  for (const bench of BENCHES.filter((b) => args.length === 0 || args.includes(b.name))) {
    const report = await bench.run();
    printReport(report);
    process.stdout.write(`results: ${await writeReport(report, RESULTS_DIR)}\n`);
    failed ||= report.rows.some((r) => r.pass === false);
  }
  // a missed target is a finding, not a crash: say so in the exit code for CI to read if it wants
  process.exitCode = failed ? 1 : 0;
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 2;
});
