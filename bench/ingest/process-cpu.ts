/**
 * CPU seconds of the processes this bench drives besides itself, so bench/cpu-meter.ts does not
 * count them as neighbours: redis-server (from INFO) and this process's descendants (the
 * sandboxed ingest processor BullMQ forks), read from /proc. Where /proc is missing the
 * descendants count as 0 and their CPU shows up as "other".
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import type { Redis } from 'ioredis';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime, in clock ticks. */
  ticks: number;
}

async function readStat(pid: string): Promise<ProcStat | undefined> {
  try {
    const text = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
    // the command name is in parentheses and may hold spaces: split after the last ')'
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { pid: Number(pid), ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined; // gone meanwhile, or no /proc
  }
}

/** Summed user+system CPU seconds of every live descendant of `root`. */
export async function descendantsCpuSeconds(root = process.pid): Promise<number> {
  let entries: string[];
  try {
    entries = (await fs.readdir('/proc')).filter((e) => /^\d+$/.test(e));
  } catch {
    return 0;
  }
  const stats = (await Promise.all(entries.map(readStat))).filter((s): s is ProcStat => s !== undefined);
  const children = new Map<number, ProcStat[]>();
  for (const s of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s]);
  let ticks = 0;
  const stack = [...(children.get(root) ?? [])];
  while (stack.length > 0) {
    const s = stack.pop()!;
    ticks += s.ticks;
    stack.push(...(children.get(s.pid) ?? []));
  }
  return ticks / clockTicks();
}

/**
 * Process ids of this process's live children that run a sandboxed processor (their command line
 * loads workers/sandbox-guard.ts), to check none outlives the workers' close. tsx's esbuild
 * service is a child too, and is left alone.
 */
export async function sandboxChildren(root = process.pid): Promise<number[]> {
  let entries: string[];
  try {
    entries = (await fs.readdir('/proc')).filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  const stats = (await Promise.all(entries.map(readStat))).filter((s): s is ProcStat => s !== undefined && s.ppid === root);
  const found: number[] = [];
  for (const s of stats) {
    const cmdline = await fs.readFile(`/proc/${s.pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes('sandbox-guard')) found.push(s.pid);
  }
  return found;
}

/** redis-server's own CPU seconds. */
export async function redisCpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return field('used_cpu_user') + field('used_cpu_sys');
}
