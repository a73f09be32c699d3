/**
 * Repeatable jobs: one BullMQ job scheduler per schedule id. The payload goes through the
 * Producer's request → seal → payload step when the schedule is written, and only the sealed
 * payload is stored (a DSN's password lives in the secret box, never in Redis), so every run gets
 * the same, valid data.
 *
 * Scheduler ids are per queue in BullMQ but unique across queues here: the id is the only thing a
 * client names in the URL. A per-id Redis lock makes "is it on another queue? then upsert" atomic.
 */
import type { Job, JobSchedulerJson, RepeatOptions } from 'bullmq';
import { z } from 'zod';
import { getQueueDeclaration, QUEUE_NAMES } from '../../queues/registry.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../../shared/errors.ts';
import { LockTimeoutError, withEntityLock } from '../../shared/redis/entity-lock.ts';
import { cadenceShape, checkCadence, type Cadence } from '../../shared/schedules/cadence.ts';
import type { Role } from '../../shared/config.ts';
import { caller } from '../auth.ts';
import type { ApiDeps } from '../deps.ts';
import { enqueuedSchema } from '../job-view.ts';
import type { RouteTable } from '../route-table.ts';
import { answerEnqueued, idempotencyKey } from './jobs.ts';

/** What the schedule routes use of the API's dependencies. */
export type ScheduleDeps = Pick<ApiDeps, 'producer' | 'redis' | 'config'>;

export const scheduleIdSchema = z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'letters, digits, . _ - (at most 128)');

const queueName = z.string().min(1).describe(`one of: ${QUEUE_NAMES.join(', ')}`);

const scheduleBody = z
  .strictObject({
    queue: queueName,
    payload: z
      .unknown()
      .refine((p) => p !== undefined, 'required')
      .describe("the job payload, checked against the queue's payload schema"),
    ...cadenceShape,
  })
  .superRefine((body, ctx) => checkCadence(body, ctx));

type ScheduleBody = z.output<typeof scheduleBody>;

export const scheduleViewSchema = z.object({
  id: z.string(),
  queue: z.string(),
  every_ms: z.number().int().optional(),
  cron: z.string().optional(),
  tz: z.string().optional(),
  start: z.string().optional(),
  end: z.string().optional(),
  limit: z.number().int().optional(),
  next_run_at: z.string().nullable().describe('ISO 8601; null once the schedule has no run left'),
  iteration_count: z.number().int().optional().describe('runs created so far'),
  payload: z.unknown().optional().describe('writers and admins only: the sealed job payload'),
});

export type ScheduleView = z.infer<typeof scheduleViewSchema>;

const idParams = z.object({ id: scheduleIdSchema });

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

function scheduleView(queue: string, id: string, s: JobSchedulerJson): ScheduleView {
  return {
    id,
    queue,
    ...(s.every !== undefined ? { every_ms: s.every } : {}),
    ...(s.pattern !== undefined ? { cron: s.pattern } : {}),
    ...(s.tz !== undefined ? { tz: s.tz } : {}),
    ...(s.startDate !== undefined ? { start: iso(s.startDate) } : {}),
    ...(s.endDate !== undefined ? { end: iso(s.endDate) } : {}),
    ...(s.limit !== undefined ? { limit: s.limit } : {}),
    next_run_at: s.next ? iso(s.next)! : null,
    ...(s.iterationCount !== undefined ? { iteration_count: s.iterationCount } : {}),
    payload: s.template?.data ?? {}, // BullMQ does not store an empty template
  };
}

/** A payload can hold source SQL and redacted DSNs, like a job's data: not for readers (api/job-view.ts). */
function forRole(view: ScheduleView, role: Role): ScheduleView {
  if (role !== 'reader') return view;
  const { payload: _hidden, ...rest } = view;
  return rest;
}

/** The schedule with this id on whichever queue holds it. */
async function findSchedule(deps: ScheduleDeps, id: string): Promise<ScheduleView | undefined> {
  const found = await Promise.all(deps.producer.allQueues().map(async (q) => ({ queue: q.name, s: await q.getJobScheduler(id) })));
  const hit = found.find((f) => f.s);
  return hit && scheduleView(hit.queue, id, hit.s!);
}

async function readSchedule(deps: ScheduleDeps, id: string): Promise<ScheduleView> {
  const view = await findSchedule(deps, id);
  if (!view) throw new NotFoundError(`no schedule ${JSON.stringify(id)}`);
  return view;
}

/**
 * A stored payload is already sealed, so it is checked against the payload schema (what the
 * worker parses), not the request schema a client posts: a sealed DSN has no `dsn` any more.
 */
function storedPayload(queue: string, id: string, payload: unknown): unknown {
  const parsed = getQueueDeclaration(queue).payload.safeParse(payload);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
  throw new ConflictError(`schedule ${JSON.stringify(id)} holds a payload the ${queue} queue no longer accepts (${problems}); PUT it again`);
}

function repeatOptions(c: Cadence): Omit<RepeatOptions, 'key'> {
  return {
    ...(c.every_ms !== undefined ? { every: c.every_ms } : { pattern: c.cron! }),
    ...(c.tz !== undefined ? { tz: c.tz } : {}),
    ...(c.start !== undefined ? { startDate: Date.parse(c.start) } : {}),
    ...(c.end !== undefined ? { endDate: Date.parse(c.end) } : {}),
    ...(c.limit !== undefined ? { limit: c.limit } : {}),
  };
}

/** Creates or replaces the schedule; true when it was created. */
async function upsertSchedule(deps: ScheduleDeps, id: string, queue: string, data: unknown, body: ScheduleBody): Promise<boolean> {
  const lockKey = `${deps.config.queuePrefix}:lock:schedule:${id}`;
  try {
    return await withEntityLock(
      deps.redis,
      lockKey,
      async (lock) => {
        const existing = await findSchedule(deps, id);
        if (existing && existing.queue !== queue) {
          throw new ConflictError(`schedule ${JSON.stringify(id)} belongs to queue ${existing.queue}; delete it there first or pick another id`);
        }
        await lock.assertHeld();
        const next: Job | undefined = await deps.producer.queue(queue).upsertJobScheduler(id, repeatOptions(body), { name: queue, data });
        // BullMQ stores nothing when the cadence has no run left; checkCadence refuses such
        // bodies, so this only happens when `end` passed while the request was in flight.
        if (!next) throw new BadRequestError(`schedule ${JSON.stringify(id)} has no run left before its end`);
        return !existing;
      },
      { ttlMs: 10_000, waitMs: 10_000 },
    );
  } catch (err) {
    if (err instanceof LockTimeoutError) throw new ConflictError(`schedule ${JSON.stringify(id)} is being changed by another request; retry`);
    throw err;
  }
}

export function scheduleRoutes(table: RouteTable, deps: ScheduleDeps): void {
  table.add(
    {
      method: 'get', path: '/schedules', tag: 'schedules', role: 'reader', summary: 'Every repeatable job schedule, with its next run',
      query: z.object({ queue: queueName.optional() }),
      responses: { 200: { description: 'schedules, by id', schema: z.object({ schedules: z.array(scheduleViewSchema) }) } },
    },
    async (ctx, { query }) => {
      const queues = query.queue ? [deps.producer.queue(query.queue)] : deps.producer.allQueues();
      const perQueue = await Promise.all(
        queues.map(async (q) => (await q.getJobSchedulers(0, -1, true)).map((s) => scheduleView(q.name, s.key, s))),
      );
      ctx.body = { schedules: perQueue.flat().sort((a, b) => a.id.localeCompare(b.id)).map((v) => forRole(v, caller(ctx).role)) };
    },
  );

  table.add(
    {
      method: 'get', path: '/schedules/:id', tag: 'schedules', role: 'reader', summary: 'One schedule: cadence, payload and next run',
      params: idParams, responses: { 200: { description: 'the schedule', schema: scheduleViewSchema } },
    },
    async (ctx, { params }) => {
      ctx.body = forRole(await readSchedule(deps, params.id), caller(ctx).role);
    },
  );

  table.add(
    {
      method: 'put', path: '/schedules/:id', tag: 'schedules', role: 'writer',
      summary: 'Create or replace a schedule: every_ms or cron (in tz), optional start, end and limit; the payload is checked against the queue',
      params: idParams, body: scheduleBody,
      responses: {
        200: { description: 'replaced', schema: scheduleViewSchema },
        201: { description: 'created', schema: scheduleViewSchema },
      },
    },
    async (ctx, { params, body }) => {
      const queue = getQueueDeclaration(body.queue).name;
      const data = await deps.producer.prepare(queue, body.payload, 'body.payload', caller(ctx).role);
      const created = await upsertSchedule(deps, params.id, queue, data, body);
      ctx.status = created ? 201 : 200;
      if (created) ctx.set('Location', `/schedules/${params.id}`);
      ctx.body = await readSchedule(deps, params.id);
    },
  );

  table.add(
    {
      method: 'delete', path: '/schedules/:id', tag: 'schedules', role: 'writer', summary: 'Remove a schedule and its pending next run',
      params: idParams, responses: { 204: { description: 'removed' } },
    },
    async (ctx, { params }) => {
      const view = await readSchedule(deps, params.id);
      await deps.producer.queue(view.queue).removeJobScheduler(params.id);
      ctx.status = 204;
    },
  );

  table.add(
    {
      method: 'post', path: '/schedules/:id/run', tag: 'schedules', role: 'writer',
      summary: "Enqueue one job now with the schedule's payload (the schedule itself is unchanged)",
      params: idParams, responses: { 202: { description: 'enqueued', schema: enqueuedSchema } },
    },
    async (ctx, { params }) => {
      const view = await readSchedule(deps, params.id);
      const data = storedPayload(view.queue, view.id, view.payload);
      const jobId = idempotencyKey(ctx, undefined);
      const job = await deps.producer.queue(view.queue).add(view.queue, data, jobId ? { jobId } : {});
      await answerEnqueued(ctx, job);
    },
  );
}
