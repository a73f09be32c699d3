/**
 * A pool of worker threads that embed text, one model per thread (DESIGN §5: the offline embedder
 * is single-threaded wasm, so throughput comes from more threads, and the event loop that renews
 * job locks must stay free).
 *
 * A call is split into sub-batches spread over the threads; results come back in input order.
 * Threads start on first use, load their model once and live until `close()`. A thread that dies
 * rejects the sub-batch it held (and so the whole call) and is replaced when work is waiting; a
 * thread that dies before it is ready rejects everything queued, so a model that cannot load
 * fails the call instead of respawning forever.
 *
 * Thread protocol: the thread posts {@link ThreadReady} once its model is loaded, then answers
 * each {@link ThreadRequest} with {@link ThreadDone} or {@link ThreadFailed}.
 */
import type { Worker } from 'node:worker_threads';
import { startTsWorker } from '../../threads/ts-worker.ts';

export interface ThreadRequest {
  texts: string[];
}
export interface ThreadReady {
  type: 'ready';
}
/** `vectors` holds `texts.length` unit vectors of `dims` floats back to back (its buffer is transferred). */
export interface ThreadDone {
  type: 'done';
  dims: number;
  vectors: Float32Array;
}
export interface ThreadFailed {
  type: 'failed';
  message: string;
}
export type ThreadReply = ThreadReady | ThreadDone | ThreadFailed;

export interface ThreadPoolOptions {
  /** Module the threads run (TypeScript is fine: tsx is registered in the thread first). */
  entry: URL;
  /** Number of threads, each with its own model. */
  threads: number;
  /** Largest sub-batch handed to one thread at a time. */
  batchSize: number;
  /** Names the embedder in error messages, e.g. `local embedder (use-lite-512)`. */
  label: string;
}

export interface ThreadStats {
  threadId: number;
  /** Sub-batches this thread has embedded. */
  batches: number;
  texts: number;
}

class Job {
  settled = false;
  readonly done: Promise<Float32Array[]>;
  #resolve!: (v: Float32Array[]) => void;
  #reject!: (e: unknown) => void;

  constructor(readonly texts: string[]) {
    this.done = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }
  succeed(v: Float32Array[]): void {
    if (this.settled) return;
    this.settled = true;
    this.#resolve(v);
  }
  fail(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.#reject(err);
  }
}

interface Slot {
  worker: Worker;
  ready: boolean;
  job?: Job;
  stats: ThreadStats;
}

export class EmbedThreadPool {
  #queue: Job[] = [];
  readonly #slots = new Set<Slot>();
  #closed = false;

  constructor(readonly options: ThreadPoolOptions) {}

  async embed(texts: string[], signal?: AbortSignal): Promise<Float32Array[]> {
    if (texts.length === 0) return [];
    if (this.#closed) throw new Error(`${this.options.label} is closed`);
    signal?.throwIfAborted();
    const jobs = this.#split(texts).map((part) => new Job(part));
    this.#queue.push(...jobs);
    const abort = () => jobs.forEach((j) => j.fail(signal!.reason));
    signal?.addEventListener('abort', abort, { once: true });
    this.#pump();
    try {
      return (await Promise.all(jobs.map((j) => j.done))).flat();
    } catch (err) {
      // One sub-batch failed: the call has failed, so its queued siblings need not run.
      jobs.forEach((j) => j.fail(err));
      throw err;
    } finally {
      signal?.removeEventListener('abort', abort);
    }
  }

  /** Work done by each live thread. */
  stats(): ThreadStats[] {
    return [...this.#slots].map((s) => ({ ...s.stats }));
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#failQueued(new Error(`${this.options.label} was closed`));
    await Promise.all([...this.#slots].map((s) => s.worker.terminate()));
  }

  /** Even shares for every thread, but never more than batchSize texts per message. */
  #split(texts: string[]): string[][] {
    const per = Math.max(1, Math.min(this.options.batchSize, Math.ceil(texts.length / this.options.threads)));
    const parts: string[][] = [];
    for (let i = 0; i < texts.length; i += per) parts.push(texts.slice(i, i + per));
    return parts;
  }

  #pump(): void {
    this.#queue = this.#queue.filter((j) => !j.settled);
    for (const slot of this.#slots) {
      if (!slot.ready || slot.job || this.#queue.length === 0) continue;
      this.#assign(slot, this.#queue.shift()!);
    }
    if (this.#queue.length === 0 || this.#closed) return;
    while (this.#slots.size < this.options.threads) this.#spawn();
  }

  #assign(slot: Slot, job: Job): void {
    slot.job = job;
    slot.worker.ref();
    slot.worker.postMessage({ texts: job.texts } satisfies ThreadRequest);
  }

  #spawn(): void {
    const worker = startTsWorker(this.options.entry);
    const slot: Slot = { worker, ready: false, stats: { threadId: worker.threadId, batches: 0, texts: 0 } };
    this.#slots.add(slot);
    let crash: Error | undefined;
    worker.on('message', (reply: ThreadReply) => this.#onReply(slot, reply));
    worker.on('error', (err) => (crash = err));
    worker.on('exit', (code) => this.#onExit(slot, crash?.message ?? `exit code ${code}`));
  }

  #onReply(slot: Slot, reply: ThreadReply): void {
    const job = slot.job;
    slot.job = undefined;
    if (reply.type === 'ready') slot.ready = true;
    else if (reply.type === 'failed') job?.fail(new Error(`${this.options.label}: ${reply.message}`));
    else if (job) {
      slot.stats.batches++;
      slot.stats.texts += job.texts.length;
      job.succeed(job.texts.map((_, i) => reply.vectors.subarray(i * reply.dims, (i + 1) * reply.dims)));
    }
    slot.worker.unref(); // an idle thread must not keep the process alive
    this.#pump();
  }

  #onExit(slot: Slot, reason: string): void {
    this.#slots.delete(slot);
    if (this.#closed) {
      slot.job?.fail(new Error(`${this.options.label} was closed while embedding`));
      return;
    }
    if (!slot.ready) {
      this.#failQueued(new Error(`${this.options.label}: thread ${slot.stats.threadId} could not start: ${reason}`));
      return;
    }
    const lost = slot.job;
    const what = `thread ${slot.stats.threadId} died (${reason}) while embedding a batch of ${lost?.texts.length} texts`;
    lost?.fail(new Error(`${this.options.label}: ${what}; a new thread replaces it`));
    this.#pump();
  }

  #failQueued(err: Error): void {
    for (const job of this.#queue) job.fail(err);
    this.#queue = [];
  }
}
