/**
 * Worker-thread entry for trials (trial.ts `runTrialInThread`): the build's inserts and the timed
 * searches are synchronous hnswlib calls that would hold the event loop renewing job locks. The
 * thread lives on between trials (starting one and loading these modules costs ~0.3 s a trial)
 * and runs the tasks it is sent one at a time, in order.
 */
import { parentPort } from 'node:worker_threads';
import { DomainError } from '../errors.ts';
import { runTrial, type RunTrialOptions, type TrialThreadMessage } from './trial.ts';

const port = parentPort!;
let queue: Promise<void> = Promise.resolve();

port.on('message', ({ id, task }: { id: number; task: Omit<RunTrialOptions, 'progress'> }) => {
  const post = (m: TrialThreadMessage) => port.postMessage({ id, ...m });
  queue = queue.then(async () => {
    try {
      const result = await runTrial({ ...task, progress: (fraction, detail) => post({ type: 'progress', fraction, detail }) });
      post({ type: 'done', result });
    } catch (err) {
      post({ type: 'failed', status: err instanceof DomainError ? err.status : undefined, message: err instanceof Error ? err.message : String(err) });
    }
  });
});
