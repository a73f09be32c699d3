/**
 * Prometheus metrics: HTTP latency measured here, queue depths and job durations read from
 * BullMQ at scrape time (durations from the most recent completed jobs, so every API instance
 * reports the cluster's numbers, not just its own).
 */
import type { Context, Next } from 'koa';
import { Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Producer } from '../queues/producer.ts';

const DURATION_SAMPLE = 200;

export class Metrics {
  readonly registry = new Registry();
  private readonly http: Histogram<'method' | 'route' | 'status'>;

  constructor(producer: Producer) {
    collectDefaultMetrics({ register: this.registry, prefix: 'lakehouse_' });
    this.http = new Histogram({
      name: 'lakehouse_http_request_duration_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    new Gauge({
      name: 'lakehouse_queue_jobs',
      help: 'Jobs per queue and state',
      labelNames: ['queue', 'state'],
      registers: [this.registry],
      async collect() {
        for (const q of producer.allQueues()) {
          const counts = await q.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized', 'waiting-children');
          for (const [state, n] of Object.entries(counts)) this.set({ queue: q.name, state }, n);
        }
      },
    });
    new Gauge({
      name: 'lakehouse_job_duration_seconds',
      help: `Processing time of the last ${DURATION_SAMPLE} completed jobs per queue (quantile 0.5/0.9/0.99, max)`,
      labelNames: ['queue', 'quantile'],
      registers: [this.registry],
      async collect() {
        for (const q of producer.allQueues()) {
          const jobs = await q.getJobs(['completed'], 0, DURATION_SAMPLE - 1);
          const d = jobs.filter((j) => j.finishedOn && j.processedOn).map((j) => (j.finishedOn! - j.processedOn!) / 1000).sort((a, b) => a - b);
          if (d.length === 0) continue;
          for (const qt of [0.5, 0.9, 0.99]) this.set({ queue: q.name, quantile: String(qt) }, d[Math.min(d.length - 1, Math.floor(qt * d.length))]!);
          this.set({ queue: q.name, quantile: 'max' }, d[d.length - 1]!);
        }
      },
    });
  }

  middleware() {
    return async (ctx: Context, next: Next): Promise<void> => {
      const end = this.http.startTimer();
      try {
        await next();
      } finally {
        // the matched route pattern, not the raw path, keeps label cardinality bounded
        const route = (ctx as Context & { _matchedRoute?: string })._matchedRoute ?? (ctx.path.startsWith('/admin/queues') ? '/admin/queues' : 'unmatched');
        end({ method: ctx.method, route: String(route), status: String(ctx.status) });
      }
    };
  }
}
