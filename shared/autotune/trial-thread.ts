/**
 * Worker-thread entry for trials (trial.ts `runTrialInThread`): the build's inserts and the timed
 * searches are synchronous hnswlib calls that would hold the event loop renewing job locks.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { DomainError } from '../errors.ts';
import { runTrial, type RunTrialOptions, type TrialThreadMessage } from './trial.ts';

const port = parentPort!;
const post = (m: TrialThreadMessage) => port.postMessage(m);
try {
  const result = await runTrial({ ...(workerData as Omit<RunTrialOptions, 'progress'>), progress: (fraction, detail) => post({ type: 'progress', fraction, detail }) });
  post({ type: 'done', result });
} catch (err) {
  post({ type: 'failed', status: err instanceof DomainError ? err.status : undefined, message: err instanceof Error ? err.message : String(err) });
}
