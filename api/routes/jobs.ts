import type { Job } from 'bullmq';
import type { Context } from 'koa';
import { PassThrough } from 'node:stream';
import { z } from 'zod';
import { getQueueDeclaration, QUEUE_NAMES, QUEUES } from '../../queues/registry.ts';
import { ConflictError, NotFoundError } from '../../shared/errors.ts';
import type { Role } from '../../shared/config.ts';
import { caller } from '../auth.ts';
import type { ApiDeps } from '../deps.ts';
import type { JobEvent } from '../job-events.ts';
import { enqueuedSchema, errorClass, failedEvent, jobStates, jobView, jobViewSchema, type JobView } from '../job-view.ts';
import { fromZod } from '../problem.ts';
import type { RouteTable } from '../route-table.ts';
import { JobProgressStore, progressNumber } from '../../queues/job-progress-store.ts';

const progressStore = (deps: ApiDeps) => new JobProgressStore(deps.redis, deps.config.queuePrefix);

/** BullMQ ids: no ':' (key separator) and not a bare integer (clashes with generated ids). */
export const jobIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,128}$/, 'letters, digits, . _ - (at most 128)')
  .refine((s) => !/^\d+$/.test(s), 'must not be a bare integer');

/** Unknown queue names are a 404 (a missing resource), not a 400. */
const queueName = z
  .string()
  .describe(`one of: ${QUEUE_NAMES.join(', ')}`)
  .transform((name) => getQueueDeclaration(name).name);
const queueParam = z.object({ queue: queueName });
const jobParams = queueParam.extend({ id: z.string().min(1).max(128) });
const enqueueQuery = z.object({
  jobId: jobIdSchema.optional().describe('dedupe: a job with this id already present is returned instead of adding another'),
  priority: z.coerce.number().int().min(1).max(2_097_152).optional(),
  delay_ms: z.coerce.number().int().min(0).optional(),
});
const bulkBody = (payload: z.ZodType) =>
  z.object({
    jobs: z
      .array(z.object({ payload, jobId: jobIdSchema.optional(), priority: z.number().int().min(1).optional() }))
      .min(1)
      .max(10_000),
  });
const listQuery = z.object({
  state: z.enum(jobStates).default('waiting'),
  start: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(500).default(50),
});

export function idempotencyKey(ctx: Context, fromQuery: string | undefined): string | undefined {
  const header = ctx.get('idempotency-key');
  if (!header) return fromQuery;
  const parsed = jobIdSchema.safeParse(header);
  if (!parsed.success) throw fromZod(parsed.error, 'header.Idempotency-Key');
  return parsed.data;
}

export async function answerEnqueued(ctx: Context, job: Job): Promise<void> {
  ctx.status = 202;
  ctx.set('Location', `/jobs/${job.queueName}/${job.id}`);
  ctx.body = { id: job.id!, queue: job.queueName, state: await job.getState() };
}

function noSuchJob(queue: string, id: string): NotFoundError {
  return new NotFoundError(`no job ${JSON.stringify(id)} in queue ${queue} (it may have been removed after completing)`);
}

async function findJob(deps: ApiDeps, queue: string, id: string): Promise<Job> {
  const job = await deps.producer.queue(queue).getJob(id);
  if (!job) throw noSuchJob(queue, id);
  return job;
}

/**
 * State first, then the job: read the other way round, a job that finishes in between would be
 * shown as completed without its result.
 */
async function readJobView(deps: ApiDeps, queue: string, id: string, role: Role): Promise<JobView> {
  const state = await deps.producer.queue(queue).getJobState(id);
  if (state === 'unknown') throw noSuchJob(queue, id);
  const [job, meta] = await Promise.all([findJob(deps, queue, id), progressStore(deps).read(queue, id)]);
  return jobView(job, state, role, meta);
}

export function jobRoutes(table: RouteTable, deps: ApiDeps): void {
  for (const decl of QUEUES) {
    table.add(
      {
        method: 'post', path: `/jobs/${decl.name}`, tag: 'jobs', role: 'writer', summary: `Enqueue one ${decl.name} job: ${decl.description}`,
        query: enqueueQuery, body: decl.request,
        responses: { 202: { description: 'enqueued (or the existing job with the same id)', schema: enqueuedSchema } },
      },
      async (ctx, { query, body }) => {
        const job = await deps.producer.add(decl.name, {
          payload: body,
          role: caller(ctx).role,
          jobId: idempotencyKey(ctx, query.jobId),
          options: { ...(query.priority ? { priority: query.priority } : {}), ...(query.delay_ms ? { delay: query.delay_ms } : {}) },
        });
        await answerEnqueued(ctx, job);
      },
    );
    table.add(
      {
        method: 'post', path: `/jobs/${decl.name}/bulk`, tag: 'jobs', role: 'writer', summary: `Enqueue up to 10000 ${decl.name} jobs at once`,
        body: bulkBody(decl.request), bodyLimit: deps.config.http.bulkBodyMaxBytes,
        responses: { 202: { description: 'enqueued', schema: z.object({ count: z.number().int(), jobs: z.array(enqueuedSchema) }) } },
      },
      async (ctx, { body }) => {
        const jobs = await deps.producer.addBulk(
          decl.name,
          body.jobs.map((j) => ({ payload: j.payload, role: caller(ctx).role, jobId: j.jobId, options: j.priority ? { priority: j.priority } : {} })),
        );
        ctx.status = 202;
        // the state a new job starts in; an id that already existed keeps its own (GET it to see)
        ctx.body = { count: jobs.length, jobs: jobs.map((j) => ({ id: j.id!, queue: decl.name, state: j.opts.delay ? 'delayed' : j.opts.priority ? 'prioritized' : 'waiting' })) };
      },
    );
  }

  for (const suffix of ['', '/bulk']) {
    table.add(
      { method: 'post', path: `/jobs/:queue${suffix}`, tag: 'jobs', role: 'writer', summary: 'any other queue name: 404 naming the queues',
        params: queueParam, responses: {}, hidden: true },
      async () => {
        throw new Error('unreachable: queueParam refuses every name without its own route');
      },
    );
  }

  table.add(
    {
      method: 'get', path: '/jobs/:queue', tag: 'jobs', role: 'reader', summary: 'List jobs of a queue in one state, paginated',
      params: queueParam, query: listQuery,
      responses: {
        200: {
          description: 'a page of jobs',
          schema: z.object({ queue: z.string(), state: z.string(), counts: z.record(z.string(), z.number()), jobs: z.array(jobViewSchema), next_start: z.number().nullable() }),
        },
      },
    },
    async (ctx, { params, query }) => {
      const q = deps.producer.queue(params.queue);
      const [jobs, counts] = await Promise.all([
        q.getJobs([query.state], query.start, query.start + query.limit - 1, query.state !== 'waiting'),
        q.getJobCounts(...jobStates),
      ]);
      const total = counts[query.state] ?? 0;
      const found = jobs.filter(Boolean);
      const metas = await progressStore(deps).readMany(params.queue, found.map((j) => j.id!));
      ctx.body = {
        queue: params.queue, state: query.state, counts,
        jobs: found.map((j) => jobView(j, query.state, caller(ctx).role, metas.get(j.id!))),
        next_start: query.start + query.limit < total ? query.start + query.limit : null,
      };
    },
  );

  table.add(
    {
      method: 'get', path: '/jobs/:queue/:id', tag: 'jobs', role: 'reader', summary: 'One job: state, progress, attempts, result or failure',
      params: jobParams, responses: { 200: { description: 'the job', schema: jobViewSchema } },
    },
    async (ctx, { params }) => {
      ctx.body = await readJobView(deps, params.queue, params.id, caller(ctx).role);
    },
  );

  table.add(
    {
      method: 'get', path: '/jobs/:queue/:id/events', tag: 'jobs', role: 'reader',
      summary: 'Server-Sent Events for one job: state (first, a job view), active, progress ({percent 0–100, detail: phase, counts, rates, eta_s}), completed, failed; the stream ends when the job does',
      params: jobParams, responses: { 200: { description: 'an event stream', contentType: 'text/event-stream', schema: z.string() } },
    },
    async (ctx, { params }) => streamJobEvents(ctx, deps, params.queue, params.id),
  );

  table.add(
    {
      method: 'post', path: '/jobs/:queue/:id/retry', tag: 'jobs', role: 'writer', summary: 'Retry a failed job',
      params: jobParams, responses: { 202: { description: 'moved back to waiting', schema: enqueuedSchema } },
    },
    async (ctx, { params }) => {
      const job = await findJob(deps, params.queue, params.id);
      const state = await job.getState();
      if (state !== 'failed') throw new ConflictError(`job ${params.id} is ${state}; only failed jobs can be retried`);
      await job.retry('failed');
      await answerEnqueued(ctx, job);
    },
  );

  table.add(
    {
      method: 'delete', path: '/jobs/:queue/:id', tag: 'jobs', role: 'admin', summary: 'Remove a job that is not running',
      params: jobParams, responses: { 204: { description: 'removed' } },
    },
    async (ctx, { params }) => {
      const job = await findJob(deps, params.queue, params.id);
      const state = await job.getState();
      if (state === 'active') throw new ConflictError(`job ${params.id} is running; wait for it to finish or fail`);
      await job.remove();
      await progressStore(deps).remove(params.queue, params.id);
      ctx.status = 204;
    },
  );
}

/**
 * One job's events as SSE. Every way a stream can end (the job finishes, the client leaves — even
 * while the initial state is still being read —, the lifetime cap, an error) goes through `end`,
 * which releases the listener, the timers and the key's stream slot exactly once.
 */
async function streamJobEvents(ctx: Context, deps: ApiDeps, queue: string, id: string): Promise<void> {
  const { role, who } = caller(ctx);
  const release = deps.events.quota.acquire(who);
  const stream = new PassThrough();
  let ended = false;
  let unsubscribe: (() => void) | undefined;
  let keepAlive: NodeJS.Timeout | undefined;
  let lifetime: NodeJS.Timeout | undefined;
  // Live events are held until the initial state is out, so a client always sees `state` first
  // and nothing is written after the stream ends.
  let held: JobEvent[] | undefined = [];
  const send = (event: string, data: unknown) => {
    if (!ended) stream.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const end = () => {
    if (ended) return;
    ended = true;
    unsubscribe?.();
    clearInterval(keepAlive);
    clearTimeout(lifetime);
    release();
    stream.end();
  };
  // the response's close fires when the client leaves, whenever that is; req 'close' may not
  ctx.res.once('close', end);
  const failed = (reason: string | undefined) => {
    if (role !== 'reader') return (send('failed', failedEvent(reason, role)), end());
    // a reader learns the error's class, read from the job, never its message
    findJob(deps, queue, id)
      .then((job) => errorClass(job), () => 'Error')
      .then((cls) => (send('failed', failedEvent(undefined, role, cls)), end()));
  };
  // BullMQ's progress event carries the number; its detail is read beside it. Deliveries are
  // chained so the read cannot reorder a progress after the event that follows it.
  const store = progressStore(deps);
  let chain = Promise.resolve();
  const deliver = (e: JobEvent) => {
    chain = chain.then(() => deliverNow(e), () => deliverNow(e));
  };
  const deliverNow = async (e: JobEvent) => {
    if (ended) return;
    if (e.type === 'progress') {
      const meta = await store.read(queue, id).catch(() => ({ detail: undefined }));
      send('progress', { percent: progressNumber(e.data), detail: meta.detail ?? {} });
    } else if (e.type === 'active') send('active', {});
    else if (e.type === 'completed') (send('completed', { result: e.result }), end());
    else failed(e.reason);
  };
  let view: JobView;
  try {
    // subscribe before reading the state, so an event between the two is not missed
    const off = await deps.events.subscribe(queue, id, (e) => (held ? held.push(e) : deliver(e)));
    unsubscribe = off;
    if (ended) off(); // the client left while we subscribed
    view = await readJobView(deps, queue, id, role);
  } catch (err) {
    end();
    throw err;
  }
  if (ended) return;
  keepAlive = setInterval(() => stream.write(': keep-alive\n\n'), 15_000);
  lifetime = setTimeout(() => (send('timeout', { after_ms: deps.config.http.sseMaxLifetimeMs, reconnect: true }), end()), deps.config.http.sseMaxLifetimeMs);
  ctx.status = 200;
  ctx.set({ 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
  ctx.body = stream;
  send('state', view);
  if (view.state === 'completed') return (send('completed', { result: view.result }), end());
  if (view.state === 'failed') return (send('failed', role === 'reader' ? { failed: true, error_class: view.error_class } : { reason: view.failed_reason }), end());
  const pending = held;
  held = undefined;
  pending.forEach(deliver);
}
