/**
 * bench queue: the same no-op workload through raw BullMQ and through ours (Producer + a
 * runner-configured Worker, and the HTTP bulk route), in one run against the real Redis.
 * Rounds interleave the sections (raw, ours, http; then rotated) so warm-up and Redis state
 * don't favour whichever runs second; the table shows the median round.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import { Redis } from 'ioredis';
import { DEFAULT_JOB_OPTIONS } from '../../queues/default-job-options.ts';
import { createLogger } from '../../shared/logger.ts';
import { startCpuMeter, startPhase, type Phase } from '../cpu-meter.ts';
import { compare, machineInfo, row, type BenchReport } from '../report.ts';
import { httpRound } from './http-bulk.ts';
import { ourRound } from './our-queue.ts';
import { rawRound, type RoundTimes } from './raw-bullmq.ts';
import { withFreshPrefix } from './redis-prefix.ts';
import { loadSettings, type QueueBenchSettings } from './settings.ts';

const SECTIONS = ['raw', 'ours', 'http'] as const;
type Section = (typeof SECTIONS)[number];

interface Timings {
  raw: RoundTimes[];
  ours: RoundTimes[];
  http: Phase[];
  /** Per section and round: cores other processes kept busy (bench/cpu-meter.ts). */
  others: Record<Section, number[]>;
}

async function redisFacts(admin: Redis): Promise<{ version: string; policy: string }> {
  const info = await admin.info('server');
  const policy = ((await admin.config('GET', 'maxmemory-policy')) as string[])[1] ?? 'unknown';
  if (policy !== 'noeviction') throw new Error(`Redis maxmemory-policy is ${policy}; BullMQ needs noeviction (redis-cli CONFIG SET maxmemory-policy noeviction)`);
  return { version: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown', policy };
}

/** redis-server's own CPU seconds, so the meter does not count the Redis we drive as a neighbour. */
async function redisCpuSeconds(admin: Redis): Promise<number> {
  const info = await admin.info('cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return field('used_cpu_user') + field('used_cpu_sys');
}

async function runRounds(s: QueueBenchSettings, admin: Redis): Promise<Timings> {
  const log = createLogger('warn', 'bench-worker');
  const t: Timings = { raw: [], ours: [], http: [], others: { raw: [], ours: [], http: [] } };
  const phase = () => startPhase(() => redisCpuSeconds(admin));
  const runOne: Record<Section, (prefix: string) => Promise<void>> = {
    raw: async (p) => void t.raw.push(await rawRound(s, p, phase)),
    ours: async (p) => void t.ours.push(await ourRound(s, p, log, phase)),
    http: async (p) => void t.http.push(await httpRound(s, p, phase)),
  };
  for (let r = 0; r < s.rounds; r++) {
    const order = [...SECTIONS.slice(r % SECTIONS.length), ...SECTIONS.slice(0, r % SECTIONS.length)];
    for (const section of order) {
      process.stderr.write(`queue bench: round ${r + 1}/${s.rounds} ${section}…\n`);
      const stopMeter = await startCpuMeter(() => redisCpuSeconds(admin));
      await withFreshPrefix(admin, section, runOne[section]);
      t.others[section].push(await stopMeter());
    }
  }
  return t;
}

interface RunFacts {
  date: string;
  loadAtStart: number;
  redis: { version: string; policy: string };
}

/** Wall seconds and CPU per round of one timed span, as a row wants them. */
function timed(phases: Phase[]): { rounds: number[]; cpu_seconds: Record<string, number[]> } {
  return { rounds: phases.map((p) => p.seconds), cpu_seconds: { bench: phases.map((p) => p.ownCpu), redis: phases.map((p) => p.serviceCpu) } };
}

function report(s: QueueBenchSettings, facts: RunFacts, t: Timings): BenchReport {
  const bullmq = (createRequire(import.meta.url)('bullmq/package.json') as { version: string }).version;
  const c = s.concurrency;
  const rows = compare([
    row({
      section: 'raw add', items: s.jobs, unit: 'jobs/s', ...timed(t.raw.map((x) => x.add)), other_cores_busy: t.others.raw,
      measures: `raw BullMQ Queue.addBulk, ${s.batch} jobs per call awaited in sequence, job opts {removeOnComplete: true}.`,
    }),
    row({
      section: 'raw worker', items: s.jobs, unit: 'jobs/s', ...timed(t.raw.map((x) => x.work)), other_cores_busy: t.others.raw,
      measures: `raw BullMQ Worker (own connection from options), no-op processor, concurrency ${c}: from new Worker() until the ${s.jobs}th 'completed' event, all jobs waiting beforehand.`,
    }),
    row({
      section: 'ours add', items: s.jobs, unit: 'jobs/s', ...timed(t.ours.map((x) => x.add)), other_cores_busy: t.others.ours, baseline: 'raw add',
      measures: `queues/producer.ts Producer.addBulk('ingest'), ${s.batch} per call in sequence: per job the request schema, the seal step and the payload schema, then the ingest declaration's job options, on a createRedis(url,'producer') connection.`,
    }),
    row({
      section: 'ours worker', items: s.jobs, unit: 'jobs/s', ...timed(t.ours.map((x) => x.work)), other_cores_busy: t.others.ours, baseline: 'raw worker',
      target: { kind: 'ratio', min: 0.8 },
      measures: `a Worker built as workers/runner.ts builds one for a non-sandboxed queue (createRedis(url,'worker'), {connection, prefix, concurrency: ${c}}, failed/error listeners, membership heartbeat) with an in-process no-op processor, on the jobs 'ours add' enqueued: from worker start until the ${s.jobs}th completion.`,
    }),
    row({
      section: 'http bulk add', items: s.jobs, unit: 'jobs/s', ...timed(t.http), other_cores_busy: t.others.http, baseline: 'raw add',
      target: { kind: 'rate', min: 10_000 },
      measures: `the real API (startApi) on 127.0.0.1, POST /jobs/ingest/bulk with ${s.batch} valid ingest upload payloads per request, ${s.httpConcurrency} requests in flight, Bearer admin key (auth, JSON body, route schema, then Producer.addBulk as above): from the first request until the last 202. Enqueue only.`,
    }),
  ]);
  return {
    bench: 'queue',
    date: facts.date,
    machine: machineInfo({
      bullmq,
      redis: facts.redis.version,
      redis_maxmemory_policy: facts.redis.policy,
      load_avg_1m_at_start: Number(facts.loadAtStart.toFixed(2)),
    }),
    settings: { jobs: s.jobs, concurrency: c, batch: s.batch, http_concurrency: s.httpConcurrency, rounds: s.rounds, redis_url: s.redisUrl },
    rows,
    notes: [
      `Ours runs the 'ingest' declaration because the Producer only accepts registry queues and ingest is the only one; its jobs therefore carry ingest's job options (attempts ${DEFAULT_JOB_OPTIONS.attempts}, exponential backoff, removeOnComplete {count: ${DEFAULT_JOB_OPTIONS.removeOnComplete.count}, age: ${DEFAULT_JOB_OPTIONS.removeOnComplete.age} s}) where raw jobs carry removeOnComplete: true. Both keep Redis bounded; the difference is part of what 'ours' costs.`,
      "The ingest processor itself (sandboxed, real work) is not measured: 'ours worker' runs a no-op in-process. startWorkers() cannot be handed a processor, so bench/queue/runner-configured-worker.ts mirrors runner.ts's Worker set-up; see bench/README.md for the runner change that would remove the mirror.",
      `http bulk add: no ingest worker is started, the enqueued jobs wait until the prefix is dropped. Its ${s.httpConcurrency} requests in flight keep several addBulk calls in flight in the API, where 'raw add' and 'ours add' await one call at a time, so its ratio against 'raw add' is not like for like. The HTTP client runs in the same process as the API (bodies pre-serialized), which makes the figure a lower bound for a remote client.`,
      'The same payload object is used everywhere, already in the ingest schema\'s output shape, so the stored job data is identical byte for byte.',
      `Everything — bench process, API, workers and redis-server — shares this machine's ${os.availableParallelism()} cores; the 1-minute load average was ${facts.loadAtStart.toFixed(1)} before the bench started. CPU µs/job 'bench' is this whole process (for http: client and API together), 'redis' is redis-server (INFO used_cpu_*). 'cores busy with other processes' is measured per section and round (whole section, adds and worker together): machine CPU time minus this process's and redis-server's.`,
    ],
  };
}

export async function run(): Promise<BenchReport> {
  const s = loadSettings();
  const date = new Date().toISOString();
  const loadAtStart = os.loadavg()[0]!;
  const admin = new Redis(s.redisUrl, { maxRetriesPerRequest: 3 });
  try {
    const redis = await redisFacts(admin);
    const timings = await runRounds(s, admin);
    return report(s, { date, loadAtStart, redis }, timings);
  } finally {
    await admin.quit().catch(() => admin.disconnect());
  }
}
