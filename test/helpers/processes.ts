/**
 * Real worker processes for reliability tests: `node bin/lakehouse.js worker …` spawned with the
 * test environment's Redis prefix and data directory, its output kept for failure messages, and
 * its process tree (the worker plus the sandboxed processor children BullMQ forks) read from
 * /proc, so a test can SIGKILL exactly the processes it started and check what is left.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { listWorkers } from '../../shared/cluster/membership.ts';
import { waitFor, type TestEnv } from './env.ts';

export const BIN = path.resolve(import.meta.dirname, '../../bin/lakehouse.js');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface WorkerProcessOptions {
  /** @defaultValue 'ingest' */
  queues?: string;
  /** @defaultValue 2 */
  concurrency?: number;
  /** Added to (and overriding) the environment built from the test env. */
  extraEnv?: Record<string, string>;
  /** Graceful stop deadline the process is given, and cleanup waits for. @defaultValue 10000 */
  shutdownTimeoutMs?: number;
}

/** A `lakehouse worker` child process. */
export class WorkerProcess {
  stdout = '';
  stderr = '';
  readonly exited: Promise<Exit>;

  constructor(
    readonly child: ChildProcess,
    readonly label: string,
  ) {
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (this.stdout += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (this.stderr += s));
    this.exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.label} did not start\n${this.output}`);
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Everything it printed, labelled, for assertion messages. */
  get output(): string {
    return `--- ${this.label} (pid ${this.child.pid}) stdout\n${this.stdout}\n--- ${this.label} stderr\n${this.stderr}`;
  }

  /** Waits for the exit; fails (without killing) when it does not come within `timeoutMs`. */
  async waitExit(timeoutMs: number): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.label} did not exit within ${timeoutMs} ms\n${this.output}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, late]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Starts `lakehouse worker` against the test env (its prefix, data dir and Redis, LOG_LEVEL=warn)
 * and registers its teardown with the env: SIGTERM, then SIGKILL of it and its sandbox children
 * past the deadline. Resolves once the worker is listed in the cluster membership, i.e. its BullMQ
 * workers exist; fails with its output if it exits first.
 */
export async function startWorkerProcess(env: TestEnv, label: string, opts: WorkerProcessOptions = {}): Promise<WorkerProcess> {
  const shutdownTimeoutMs = opts.shutdownTimeoutMs ?? 10_000;
  const childEnv: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('LAKEHOUSE_') && !['REDIS_URL', 'LOG_LEVEL', 'NODE_TEST_CONTEXT'].includes(k)),
  );
  Object.assign(childEnv, {
    REDIS_URL: env.config.redisUrl,
    LAKEHOUSE_DATA_DIR: env.dataDir,
    LAKEHOUSE_QUEUE_PREFIX: env.prefix,
    LAKEHOUSE_SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs),
    LOG_LEVEL: 'warn',
    ...opts.extraEnv,
  });
  const args = [BIN, 'worker', '--queues', opts.queues ?? 'ingest', '--concurrency', String(opts.concurrency ?? 2)];
  const proc = new WorkerProcess(spawn(process.execPath, args, { env: childEnv, cwd: env.dataDir, stdio: ['ignore', 'pipe', 'pipe'] }), label);
  env.defer(() => stopWorkerProcess(proc, shutdownTimeoutMs + 5_000));

  const listed = waitFor(async () => (await listWorkers(env.redis, env.prefix)).some((w) => w.pid === proc.pid), {
    timeoutMs: 30_000,
    intervalMs: 50,
    what: `${label} to join the cluster`,
  });
  listed.catch(() => {}); // if the process dies first, that is the failure to report
  const outcome = await Promise.race([listed.then(() => 'ready' as const, (err: Error) => err), proc.exited.then(() => 'exited' as const)]);
  if (outcome === 'ready') return proc;
  throw new Error(`${outcome === 'exited' ? `${label} exited before it was ready` : outcome.message}\n${proc.output}`);
}

/**
 * Graceful stop (SIGTERM, wait up to `timeoutMs`); whatever is left after that — the worker or
 * any sandbox child it forked — is SIGKILLed by pid. Safe to call on an exited process.
 */
export async function stopWorkerProcess(proc: WorkerProcess, timeoutMs: number): Promise<void> {
  const children = proc.child.pid === undefined ? [] : await childPids(proc.child.pid);
  if (proc.running) {
    proc.child.kill('SIGTERM');
    await proc.waitExit(timeoutMs).catch(() => {
      proc.child.kill('SIGKILL');
      return proc.exited;
    });
  }
  for (const pid of children) killIfAlive(pid);
}

/** SIGKILL by pid, ignoring a process that is already gone. */
export function killIfAlive(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

interface ProcStat {
  pid: number;
  state: string;
  ppid: number;
}

/** /proc/<pid>/stat's state and parent; the command name may hold spaces and parentheses. */
async function procStat(pid: number): Promise<ProcStat | undefined> {
  const text = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const [state, ppid] = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { pid, state: state!, ppid: Number(ppid) };
}

/** Alive = exists and is not a zombie (a dead child nobody has reaped yet). */
export async function isAlive(pid: number): Promise<boolean> {
  const stat = await procStat(pid);
  return stat !== undefined && stat.state !== 'Z';
}

/** Live direct children of `pid`. */
export async function childPids(pid: number): Promise<number[]> {
  const entries = (await fs.readdir('/proc')).filter((e) => /^\d+$/.test(e));
  const stats = await Promise.all(entries.map((e) => procStat(Number(e))));
  return stats.filter((s): s is ProcStat => s !== undefined && s.ppid === pid && s.state !== 'Z').map((s) => s.pid);
}

/**
 * Live children of `pid` that are BullMQ sandboxed processors (their command line runs BullMQ's
 * child main file). BullMQ forks one only when the worker takes a job, and keeps it for the next.
 */
export async function sandboxChildren(pid: number): Promise<number[]> {
  const pids = await childPids(pid);
  const cmdlines = await Promise.all(pids.map((p) => fs.readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '')));
  return pids.filter((_, i) => cmdlines[i]!.split('\0').some((arg) => arg.includes('bullmq')));
}
