/**
 * Adds jobs. One BullMQ Queue per declared queue, sharing the producer connection; payloads are
 * validated by the queue's schema before anything reaches Redis.
 */
import { Queue, type Job, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { BadRequestError } from '../shared/errors.ts';
import { getQueueDeclaration, QUEUES } from './registry.ts';

export interface EnqueueRequest {
  payload: unknown;
  /** Client-chosen id: adding a job whose id exists returns the existing job (dedupe). */
  jobId?: string;
  options?: Pick<JobsOptions, 'priority' | 'delay' | 'attempts'>;
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

  parsePayload(name: string, payload: unknown): unknown {
    const parsed = getQueueDeclaration(name).payload.safeParse(payload);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
      throw new ZodPayloadError(`invalid ${name} payload: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`, issues);
    }
    return parsed.data;
  }

  async add(name: string, req: EnqueueRequest): Promise<Job> {
    const data = this.parsePayload(name, req.payload);
    return this.queue(name).add(name, data, { ...req.options, ...(req.jobId ? { jobId: req.jobId } : {}) });
  }

  async addBulk(name: string, reqs: EnqueueRequest[]): Promise<Job[]> {
    const jobs = reqs.map((r, i) => {
      try {
        return { name, data: this.parsePayload(name, r.payload), opts: { ...r.options, ...(r.jobId ? { jobId: r.jobId } : {}) } };
      } catch (err) {
        if (err instanceof ZodPayloadError) {
          throw new ZodPayloadError(`job ${i}: ${err.message}`, err.issues.map((x) => ({ ...x, path: `jobs.${i}.payload.${x.path}` })));
        }
        throw err;
      }
    });
    return this.queue(name).addBulk(jobs);
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}
