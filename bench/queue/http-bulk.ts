/**
 * Ours over HTTP: the real API (startApi: auth, route validation, Producer) on 127.0.0.1 with a
 * configured admin key, and a client sending POST /jobs/ingest/bulk batches, a few in flight.
 * Enqueue only: no ingest worker runs, so the jobs stay waiting until the prefix is dropped.
 * Request bodies are serialized before the clock starts; the client shares this process (and
 * its event loop) with the API, which makes the figure a lower bound.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startApi } from '../../api/server.ts';
import { loadConfig } from '../../shared/config.ts';
import { createLogger } from '../../shared/logger.ts';
import { expectWaiting } from './raw-bullmq.ts';
import type { QueueBenchSettings } from './settings.ts';
import type { Phase } from '../cpu-meter.ts';
import { batchSizes, PAYLOAD, QUEUE_NAME, type StartPhase } from './workload.ts';

export async function httpRound(s: QueueBenchSettings, prefix: string, startPhase: StartPhase): Promise<Phase> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'lhbench-'));
  const key = randomBytes(24).toString('hex');
  const config = loadConfig({
    REDIS_URL: s.redisUrl,
    LAKEHOUSE_DATA_DIR: dataDir,
    LAKEHOUSE_HOST: '127.0.0.1',
    PORT: '0',
    LAKEHOUSE_API_KEYS: `${key}:admin`,
    LAKEHOUSE_QUEUE_PREFIX: prefix,
    LAKEHOUSE_PRIVATE_REDIS: 'never',
    LOG_LEVEL: 'warn',
  });
  const api = await startApi(config, createLogger(config.logLevel, 'bench-api'));
  try {
    const sizes = batchSizes(s.jobs, s.batch);
    const bodies = sizes.map((n) => JSON.stringify({ jobs: Array.from({ length: n }, () => ({ payload: PAYLOAD })) }));
    const post = async (body: string, expected: number) => {
      const res = await fetch(`${api.url}/jobs/${QUEUE_NAME}/bulk`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body,
      });
      const answer = (await res.json()) as { count?: number; detail?: string };
      if (res.status !== 202 || answer.count !== expected) {
        throw new Error(`POST /jobs/${QUEUE_NAME}/bulk answered ${res.status} ${JSON.stringify(answer).slice(0, 300)}`);
      }
    };

    const clock = await startPhase();
    let next = 0;
    const client = async () => {
      for (let i = next++; i < bodies.length; i = next++) await post(bodies[i]!, sizes[i]!);
    };
    await Promise.all(Array.from({ length: s.httpConcurrency }, client));
    const phase = await clock();

    await expectWaiting(api.deps.producer.queue(QUEUE_NAME), s.jobs);
    return phase;
  } finally {
    await api.close();
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}
