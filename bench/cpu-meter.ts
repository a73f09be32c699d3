/**
 * How much CPU *other* processes took while a bench section ran: machine busy time minus this
 * process's CPU minus the CPU of services the bench drives (Redis, reported by the caller).
 * On a shared machine this is what tells a slow round caused by us from one caused by a
 * neighbour; it is reported next to the timings, never used to correct them.
 */
import os from 'node:os';

interface Sample {
  wall: number;
  busy: number;
  own: number;
  known: number;
}

/** Busy seconds of all cores since boot. */
function machineBusySeconds(): number {
  return os.cpus().reduce((sum, c) => sum + c.times.user + c.times.nice + c.times.sys + c.times.irq, 0) / 1000;
}

async function sample(knownCpuSeconds: () => Promise<number>): Promise<Sample> {
  const { user, system } = process.cpuUsage();
  return { wall: performance.now() / 1000, busy: machineBusySeconds(), own: (user + system) / 1e6, known: await knownCpuSeconds() };
}

/**
 * Starts measuring; the returned function stops and gives the average number of cores other
 * processes kept busy meanwhile (0 on a quiet machine, up to the core count).
 */
export async function startCpuMeter(knownCpuSeconds: () => Promise<number> = async () => 0): Promise<() => Promise<number>> {
  const start = await sample(knownCpuSeconds);
  return async () => {
    const end = await sample(knownCpuSeconds);
    const foreign = end.busy - start.busy - (end.own - start.own) - (end.known - start.known);
    return Math.round((Math.max(0, foreign) / (end.wall - start.wall)) * 100) / 100;
  };
}

/** One timed span: wall seconds, and CPU seconds spent meanwhile by this process and by a service it drives. */
export interface Phase {
  seconds: number;
  ownCpu: number;
  serviceCpu: number;
}

/**
 * Starts a timed span. CPU per item is what survives a busy neighbour: it barely moves when
 * someone else takes a core, where wall time does. CPU is read just outside the wall clock.
 */
export async function startPhase(serviceCpuSeconds: () => Promise<number>): Promise<() => Promise<Phase>> {
  const own0 = process.cpuUsage();
  const service0 = await serviceCpuSeconds();
  const wall0 = performance.now();
  return async () => {
    const seconds = (performance.now() - wall0) / 1000;
    const own = process.cpuUsage(own0);
    return { seconds, ownCpu: (own.user + own.system) / 1e6, serviceCpu: (await serviceCpuSeconds()) - service0 };
  };
}
