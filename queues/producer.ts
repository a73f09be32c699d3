/**
 * Adds jobs. One BullMQ Queue per declared queue, sharing the producer connection; payloads are
 * validated by the queue's schema before anything reaches Redis.
 */
import { Queue, type Job, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { z } from 'zod';
import type { Role } from '../shared/config.ts';
import { BadRequestError, DomainError } from '../shared/errors.ts';
import type { SealContext } from './queue-declaration.ts';
import { getQueueDeclaration, QUEUES } from './registry.ts';

export interface EnqueueRequest {
  payload: unknown;
  /** Client-chosen id: adding a job whose id exists returns the existing job (dedupe). */
  jobId?: string;
  options?: Pick<JobsOptions, 'priority' | 'delay' | 'attempts'>;
  /** The API caller's role, for seal steps that allow something to admins only (a job's own DSN). */
  role?: Role | undefined;
}

export class ZodPayloadError extends BadRequestError {
  constructor(
    message: string,
    readonly issues: { path: string; message: string }[],
  ) {
    super(message);
  }
}

export class Producer {
  private readonly queues = new Map<string, Queue>();

  constructor(
    private readonly connection: Redis,
    private readonly prefix: string,
    private readonly sealContext: SealContext,
  ) {}

  queue(name: string): Queue {
    const decl = getQueueDeclaration(name);
    let q = this.queues.get(decl.name);
    if (!q) {
      q = new Queue(decl.name, { connection: this.connection, prefix: this.prefix, defaultJobOptions: decl.jobOptions });
      q.on('error', () => {}); // errors surface on the awaited calls; don't crash on emitter noise
      this.queues.set(decl.name, q);
    }
    return q;
  }

  allQueues(): Queue[] {
    return QUEUES.map((d) => this.queue(d.name));
  }

  /**
   * A client's request → the payload stored in Redis: validated with the queue's request schema,
   * sealed (secrets moved out), and checked against the payload schema the worker will parse.
   */
  async prepare(name: string, request: unknown, where = 'payload', role?: Role): Promise<unknown> {
    const decl = getQueueDeclaration(name);
    let sealed: unknown;
    try {
      sealed = await decl.seal(validate(decl.request, request, name, where), { ...this.sealContext, callerRole: role });
    } catch (err) {
      // in a bulk or a schedule, say which payload the seal step refused (jobs.3.payload, body.payload)
      if (where === 'payload' || !(err instanceof DomainError) || err instanceof ZodPayloadError) throw err;
      throw new DomainError(`${where}: ${err.message}`, err.status, err.title);
    }
    return validate(decl.payload, sealed, name, where);
  }

  async add(name: string, req: EnqueueRequest): Promise<Job> {
    const job = await this.bulkJob(name, req, 'payload');
    return this.queue(name).add(job.name, job.data, job.opts);
  }

  /** A prepared job: the payload sealed and checked, its id the one the payload dictates, if any. */
  private async bulkJob(name: string, req: EnqueueRequest, where: string): Promise<{ name: string; data: unknown; opts: JobsOptions }> {
    const data = await this.prepare(name, req.payload, where, req.role);
    const decl = getQueueDeclaration(name);
    const jobId = decl.jobIdFor?.(data) ?? req.jobId;
    const dedupe = decl.dedupeFor?.(data);
    return { name, data, opts: { ...req.options, ...(jobId ? { jobId } : {}), ...(dedupe ? { deduplication: { id: dedupe } } : {}) } };
  }

  /** Server-internal jobs (the inbox watcher's, eval sets…): already in payload form, nothing to seal. */
  async addPayload(name: string, payload: unknown, jobId?: string): Promise<Job> {
    return this.queue(name).add(name, this.preparePayload(name, payload), jobId ? { jobId } : {});
  }

  /** A server-made payload, checked against the schema the worker will parse it with. */
  preparePayload(name: string, payload: unknown): unknown {
    return validate(getQueueDeclaration(name).payload, payload, name, 'payload');
  }

  async addBulk(name: string, reqs: EnqueueRequest[]): Promise<Job[]> {
    const jobs = await Promise.all(reqs.map((r, i) => this.bulkJob(name, r, `jobs.${i}.payload`)));
    return this.queue(name).addBulk(jobs);
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}

function validate(schema: z.ZodType, value: unknown, queue: string, where: string): unknown {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => ({ path: [where, ...i.path].join('.'), message: i.message }));
  throw new ZodPayloadError(`invalid ${queue} ${where}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, issues);
}
