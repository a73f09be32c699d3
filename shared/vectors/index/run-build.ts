import type { ProgressFn } from '../../progress.ts';
import { startTsWorker } from '../../threads/ts-worker.ts';
import type { BuildGenerationOptions, BuildResult } from './hnsw-build.ts';
import type { ExtendGenerationOptions, ExtendResult } from './hnsw-extend.ts';

export type ThreadTask =
  | { kind: 'build'; options: Omit<BuildGenerationOptions, 'progress'> }
  | { kind: 'extend'; options: Omit<ExtendGenerationOptions, 'progress' | 'deletedChunkIds'> & { deletedChunkIds: string[] } };

type Message = { type: 'progress'; fraction: number; detail?: Record<string, number | string> } | { type: 'done'; result: BuildResult | ExtendResult };

/** A generation build or extension in a worker thread, so the caller's event loop stays free. */
export function buildInThread(task: Extract<ThreadTask, { kind: 'build' }>, progress: ProgressFn): Promise<BuildResult>;
export function buildInThread(task: Extract<ThreadTask, { kind: 'extend' }>, progress: ProgressFn): Promise<ExtendResult>;
export function buildInThread(task: ThreadTask, progress: ProgressFn): Promise<BuildResult | ExtendResult> {
  return new Promise((resolve, reject) => {
    const thread = startTsWorker(new URL('./build-thread.ts', import.meta.url), { workerData: task });
    let result: BuildResult | ExtendResult | undefined;
    thread.on('message', (m: Message) => {
      if (m.type === 'progress') void Promise.resolve(progress(m.fraction, m.detail)).catch(() => {});
      else result = m.result;
    });
    thread.once('error', reject);
    thread.once('exit', (code) => (result ? resolve(result) : reject(new Error(`the index build thread exited with code ${code} before finishing`))));
  });
}
