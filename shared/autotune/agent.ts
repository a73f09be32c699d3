/**
 * The autotune agent's decisions, free of I/O: which config to try next, whether a trial may
 * run now, and whether new vectors are reason to wake up early. The job that runs trials and
 * journals them (an opt-in repeatable job per index) lives with the queues.
 *
 * Proposals are ε-greedy around the champion (the best trial so far) and deterministic for a
 * journal: the random stream is seeded from the caller's seed, the number of trials and the
 * tried configs, so a retried job proposes what the first attempt did, and a new trial moves it on.
 */
import { createHash } from 'node:crypto';
import { BadRequestError } from '../errors.ts';
import { configKey, HNSW_BOUNDS, type HnswConfig } from './hnsw-config.ts';
import { mulberry32 } from '../random.ts';

export type HnswBounds = Record<keyof HnswConfig, { min: number; max: number }>;

/** What the agent reads of a journalled trial (journal.ts `TrialRecord` has these fields). */
export interface TrialOutcome {
  config: HnswConfig;
  recall: number;
  p50_ms: number;
}

/**
 * Exploring draws on a grid from each axis' minimum: M in steps of 4, the ef values in steps of
 * 10. Finer values change recall less than run-to-run noise, and a coarse grid is what lets the
 * agent tell that a neighbourhood is exhausted.
 */
export const EXPLORE_GRID: Readonly<Record<keyof HnswConfig, number>> = { m: 4, ef_construction: 10, ef_search: 10 };

/** Exploiting moves each axis by −1, 0 or +1 of these steps around the champion. */
export const EXPLOIT_STEP: Readonly<Record<keyof HnswConfig, number>> = { m: 4, ef_construction: 20, ef_search: 10 };

const AXES = ['m', 'ef_construction', 'ef_search'] as const;

export interface ProposeOptions {
  /** Trials so far, in any order. */
  journal: readonly TrialOutcome[];
  /** @defaultValue the best trial of the journal: highest recall, then lowest p50 */
  champion?: HnswConfig | undefined;
  /** @defaultValue {@link HNSW_BOUNDS} */
  bounds?: HnswBounds;
  /** Probability of exploring (a uniform draw in bounds) instead of stepping around the champion. @defaultValue 0.25 */
  epsilon?: number;
  /** The agent's seed for this index. */
  seed: number;
  /** Uniform draws tried before giving up. @defaultValue 64 */
  maxDraws?: number;
}

/**
 * The next config to try, never one the journal holds, or undefined when the champion's
 * neighbourhood and `maxDraws` uniform draws all were tried (the space is close to exhausted).
 *
 * One draw picks the branch. Exploring tries uniform draws, then the neighbours; exploiting
 * tries the champion's neighbours (every −1/0/+1 step combination, clamped, in a random
 * order), then uniform draws — so a tried-out neighbourhood turns into exploration instead of
 * stalling. With an empty journal and no champion, only uniform draws.
 */
export function proposeNext(opts: ProposeOptions): HnswConfig | undefined {
  const { journal, bounds = HNSW_BOUNDS, epsilon = 0.25, seed, maxDraws = 64 } = opts;
  if (!(epsilon >= 0 && epsilon <= 1)) throw new BadRequestError(`epsilon ${epsilon} must be in 0–1`);
  for (const axis of AXES) {
    const { min, max } = bounds[axis];
    if (!Number.isInteger(min) || !Number.isInteger(max) || min > max) throw new BadRequestError(`bounds of ${axis} (${min}–${max}) must be integers, min ≤ max`);
  }
  const tried = new Set(journal.map((t) => configKey(t.config)));
  const rand = mulberry32(journalSeed(seed, journal));
  const champion = opts.champion ?? bestTrial(journal)?.config;
  const explore = rand() < epsilon || champion === undefined;
  const draws = function* () {
    for (let i = 0; i < maxDraws; i++) yield uniformDraw(bounds, rand);
  };
  const around = champion ? neighbours(champion, bounds, rand) : [];
  for (const list of explore ? [draws(), around] : [around, draws()]) {
    for (const c of list) if (!tried.has(configKey(c))) return c;
  }
  return undefined;
}

/** Highest recall, then lowest p50, then the config key (so the journal's order does not matter). */
export function bestTrial<T extends TrialOutcome>(journal: readonly T[]): T | undefined {
  let best: T | undefined;
  for (const t of journal) {
    if (!best || t.recall > best.recall || (t.recall === best.recall && (t.p50_ms < best.p50_ms || (t.p50_ms === best.p50_ms && configKey(t.config) < configKey(best.config))))) best = t;
  }
  return best;
}

export interface GateInput {
  /** ms since the epoch. */
  now: number;
  /** When the last trial started, ms; undefined when there was none. */
  lastTrialAt?: number | undefined;
  /** Start times (ms) of recent trials; those an hour or more before `now` are ignored. */
  trialsLastHour: readonly number[];
  maxTrialsPerHour: number;
  /** Quiet time after a trial before the next. */
  cooldownMs: number;
}

export type GateDecision = { ok: true } | { ok: false; reason: 'cooldown' | 'max_trials_per_hour'; retry_at: number };

const HOUR = 3_600_000;

/** Whether a trial may start now; when not, the binding limit and when both limits allow one. */
export function agentGate(input: GateInput): GateDecision {
  const { now, lastTrialAt, maxTrialsPerHour, cooldownMs } = input;
  if (!Number.isInteger(maxTrialsPerHour) || maxTrialsPerHour < 1) throw new BadRequestError(`max_trials_per_hour ${maxTrialsPerHour} must be an integer ≥ 1`);
  if (!(cooldownMs >= 0)) throw new BadRequestError(`cooldown ${cooldownMs} ms must be ≥ 0`);
  const cooled = lastTrialAt === undefined ? now : lastTrialAt + cooldownMs;
  const recent = input.trialsLastHour.filter((t) => t > now - HOUR && t <= now).sort((a, b) => a - b);
  // The hourly window admits one more once all but maxTrialsPerHour − 1 of the recent trials have left it.
  const excess = recent.length - maxTrialsPerHour;
  const windowed = excess < 0 ? now : recent[excess]! + HOUR;
  if (cooled <= now && windowed <= now) return { ok: true };
  return windowed > cooled ? { ok: false, reason: 'max_trials_per_hour', retry_at: windowed } : { ok: false, reason: 'cooldown', retry_at: cooled };
}

/** Whether a refresh appended enough vectors since the last trial to wake the agent early. */
export function shouldWake({ newVectorsSinceLastTrial, threshold }: { newVectorsSinceLastTrial: number; threshold: number }): boolean {
  if (!(threshold >= 1)) throw new BadRequestError(`wake threshold ${threshold} must be ≥ 1`);
  return newVectorsSinceLastTrial >= threshold;
}

function uniformDraw(bounds: HnswBounds, rand: () => number): HnswConfig {
  const pick = (axis: keyof HnswConfig) => {
    const { min, max } = bounds[axis];
    const steps = Math.floor((max - min) / EXPLORE_GRID[axis]) + 1;
    return min + EXPLORE_GRID[axis] * Math.floor(rand() * steps);
  };
  return { m: pick('m'), ef_construction: pick('ef_construction'), ef_search: pick('ef_search') };
}

/** The 26 one-step moves around `c`, clamped to bounds, without duplicates or `c` itself, shuffled. */
function neighbours(c: HnswConfig, bounds: HnswBounds, rand: () => number): HnswConfig[] {
  const clamp = (axis: keyof HnswConfig, v: number) => Math.min(bounds[axis].max, Math.max(bounds[axis].min, v));
  const seen = new Set([configKey(c)]);
  const out: HnswConfig[] = [];
  for (const dm of [-1, 0, 1]) {
    for (const dc of [-1, 0, 1]) {
      for (const ds of [-1, 0, 1]) {
        const n = {
          m: clamp('m', c.m + dm * EXPLOIT_STEP.m),
          ef_construction: clamp('ef_construction', c.ef_construction + dc * EXPLOIT_STEP.ef_construction),
          ef_search: clamp('ef_search', c.ef_search + ds * EXPLOIT_STEP.ef_search),
        };
        if (seen.has(configKey(n))) continue;
        seen.add(configKey(n));
        out.push(n);
      }
    }
  }
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** (seed, trial count, sorted tried configs) → 32 bits: the same journal in any order gives the same stream. */
function journalSeed(seed: number, journal: readonly TrialOutcome[]): number {
  const keys = journal.map((t) => configKey(t.config)).sort();
  return createHash('sha256').update(`${seed}\n${journal.length}\n${keys.join('\n')}`).digest().readUInt32BE(0);
}

