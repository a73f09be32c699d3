/**
 * Worker threads whose entry is TypeScript. On Node 20 a thread's `--import` hooks do not apply to
 * its entry or to other preloads, so a `.ts` entry needs a plain-JS first module that registers
 * tsx and then imports it. This works whether the parent registered tsx with `--import tsx` or
 * through the `register()` API (bin/lakehouse.js).
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

export function startTsWorker(entry: URL, options: WorkerOptions = {}): Worker {
  return new Worker(tsxBootstrap(entry), { ...options, execArgv: withoutPreloads(process.execArgv) });
}

function tsxBootstrap(entry: URL): URL {
  const source = `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))};
register();
await import(${JSON.stringify(entry.href)});`;
  return new URL(`data:text/javascript,${encodeURIComponent(source)}`);
}

const PRELOAD_FLAGS = new Set(['--import', '--loader', '--experimental-loader', '--require', '-r']);

/**
 * The parent's flags minus its preloads. The bootstrap brings tsx; other preloads are process
 * set-up (a sandboxed processor's `--import sandbox-guard.ts`), and a `.ts` one would even stop
 * the thread from starting, as tsx is not active yet when preloads run.
 */
function withoutPreloads(execArgv: string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i]!;
    if (!PRELOAD_FLAGS.has(arg.split('=', 1)[0]!)) kept.push(arg);
    else if (!arg.includes('=')) i++; // skip its value too
  }
  return kept;
}
