/**
 * The autotune agent's decisions: proposals are deterministic for a journal (in any order),
 * never repeat a tried config, stay in bounds and on the grid, explore with probability ε and
 * otherwise step around the champion; the gate enforces the cooldown and the hourly cap and says
 * when to retry; new vectors wake the agent past a threshold.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EXPLOIT_STEP, agentGate, bestTrial, proposeNext, shouldWake, type HnswBounds, type TrialOutcome } from '../../shared/autotune/agent.ts';
import { HNSW_BOUNDS, configKey, type HnswConfig } from '../../shared/autotune/hnsw-config.ts';
import { BadRequestError } from '../../shared/errors.ts';

const START: HnswConfig = { m: 16, ef_construction: 200, ef_search: 100 };

/** A made-up response surface: recall grows with every parameter and saturates; latency grows with ef_search and M. */
function measure(c: HnswConfig): TrialOutcome {
  const recall = 1 - 0.5 * Math.exp(-c.m / 12) - 0.3 * Math.exp(-c.ef_construction / 120) - 0.2 * Math.exp(-c.ef_search / 60);
  return { config: c, recall: Math.round(recall * 1e4) / 1e4, p50_ms: Math.round((0.05 + c.ef_search * 0.004 + c.m * 0.002) * 1e3) / 1e3 };
}

/** Whether `c` is at most one step from `centre` on every axis: what exploiting proposes. */
function isNeighbour(c: HnswConfig, centre: HnswConfig): boolean {
  return (['m', 'ef_construction', 'ef_search'] as const).every((axis) => Math.abs(c[axis] - centre[axis]) <= EXPLOIT_STEP[axis]);
}

function inBounds(c: HnswConfig, bounds: HnswBounds = HNSW_BOUNDS): boolean {
  return (['m', 'ef_construction', 'ef_search'] as const).every((axis) => Number.isInteger(c[axis]) && c[axis] >= bounds[axis].min && c[axis] <= bounds[axis].max);
}

function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const out = [...xs];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** A journal the agent grew itself, `n` trials from START. */
function grownJournal(n: number, seed: number): TrialOutcome[] {
  const journal = [measure(START)];
  while (journal.length < n) journal.push(measure(proposeNext({ journal, seed })!));
  return journal;
}

describe('proposeNext', () => {
  it('is deterministic for a journal, whatever its order', () => {
    const journal = grownJournal(12, 7);
    for (let seed = 0; seed < 50; seed++) {
      const first = proposeNext({ journal, seed });
      assert.ok(first);
      for (let k = 1; k <= 3; k++) assert.deepEqual(proposeNext({ journal: shuffled(journal, seed * 10 + k), seed }), first);
    }
  });

  it('moves on when the journal changes, and with the seed', () => {
    const journal = grownJournal(12, 7);
    const longer = [...journal, measure(proposeNext({ journal, seed: 3 })!)];
    const differ = (a: HnswConfig | undefined, b: HnswConfig | undefined) => configKey(a!) !== configKey(b!);
    const seeds = Array.from({ length: 40 }, (_, s) => s);
    assert.ok(seeds.some((seed) => differ(proposeNext({ journal, seed }), proposeNext({ journal: longer, seed }))));
    assert.ok(seeds.some((seed) => differ(proposeNext({ journal, seed }), proposeNext({ journal, seed: seed + 1000 }))));
  });

  it('never proposes a tried config, stays in bounds and on the grid', () => {
    for (const seed of [1, 2, 3]) {
      const journal = grownJournal(150, seed);
      assert.equal(new Set(journal.map((t) => configKey(t.config))).size, journal.length, 'every proposal was new');
      for (const t of journal) {
        assert.ok(inBounds(t.config), configKey(t.config));
        // START is on both grids (M from 4 in steps of 4, ef from 10 in steps of 10), and so is every step.
        assert.equal((t.config.m - HNSW_BOUNDS.m.min) % 4, 0);
        assert.equal((t.config.ef_construction - HNSW_BOUNDS.ef_construction.min) % 10, 0);
        assert.equal((t.config.ef_search - HNSW_BOUNDS.ef_search.min) % 10, 0);
      }
    }
  });

  it('finds the last untried config of a small space, then reports it exhausted', () => {
    const bounds: HnswBounds = { m: { min: 4, max: 8 }, ef_construction: { min: 10, max: 20 }, ef_search: { min: 10, max: 20 } };
    const all: HnswConfig[] = [];
    for (const m of [4, 8]) for (const ef_construction of [10, 20]) for (const ef_search of [10, 20]) all.push({ m, ef_construction, ef_search });
    for (let seed = 0; seed < 30; seed++) {
      const missing = all[seed % all.length]!;
      const journal = all.filter((c) => c !== missing).map(measure);
      assert.deepEqual(proposeNext({ journal, bounds, seed }), missing);
      assert.equal(proposeNext({ journal: all.map(measure), bounds, seed }), undefined);
    }
  });

  it('explores with probability ε, otherwise steps around the champion', () => {
    const journal = [START, { m: 8, ef_construction: 80, ef_search: 60 }, { m: 32, ef_construction: 80, ef_search: 60 }].map(measure);
    const champion = bestTrial(journal)!.config;
    const runs = 4000;
    const share = (epsilon: number) => {
      let away = 0;
      for (let seed = 0; seed < runs; seed++) if (!isNeighbour(proposeNext({ journal, seed, epsilon })!, champion)) away++;
      return away / runs;
    };
    // A uniform draw lands in the champion's neighbourhood with probability 27 / 12,800, so nearly every exploration is "away".
    const at25 = share(0.25);
    assert.ok(Math.abs(at25 - 0.25) < 0.03, `explored ${at25}`);
    assert.equal(share(0), 0);
    assert.ok(share(1) > 0.98);
  });

  it('takes the champion as given, or the best trial: highest recall, then lowest p50', () => {
    const a = { config: { m: 16, ef_construction: 100, ef_search: 50 }, recall: 0.9, p50_ms: 2 };
    const b = { config: { m: 32, ef_construction: 300, ef_search: 150 }, recall: 0.95, p50_ms: 3 };
    const c = { config: { m: 48, ef_construction: 300, ef_search: 150 }, recall: 0.95, p50_ms: 1 };
    assert.equal(bestTrial([a, b, c]), c);
    assert.equal(bestTrial([c, b, a]), c);
    for (let seed = 0; seed < 50; seed++) {
      assert.ok(isNeighbour(proposeNext({ journal: [a, b, c], seed, epsilon: 0 })!, c.config));
      assert.ok(isNeighbour(proposeNext({ journal: [a, b, c], seed, epsilon: 0, champion: a.config })!, a.config));
    }
  });

  it('clamps steps at the bounds and draws uniformly with an empty journal', () => {
    const corner = { m: 64, ef_construction: 400, ef_search: 200 };
    for (let seed = 0; seed < 100; seed++) {
      const near = proposeNext({ journal: [measure(corner)], seed, epsilon: 0 })!;
      assert.ok(inBounds(near) && isNeighbour(near, corner) && configKey(near) !== configKey(corner));
      assert.ok(inBounds(proposeNext({ journal: [], seed })!));
    }
  });

  it('refuses an ε outside 0–1 and inverted bounds', () => {
    assert.throws(() => proposeNext({ journal: [], seed: 1, epsilon: 1.5 }), BadRequestError);
    assert.throws(() => proposeNext({ journal: [], seed: 1, bounds: { ...HNSW_BOUNDS, m: { min: 10, max: 4 } } }), BadRequestError);
  });
});

describe('agentGate', () => {
  const MIN = 60_000;
  const now = Date.UTC(2025, 5, 1, 12);

  it('lets the first trial run', () => {
    assert.deepEqual(agentGate({ now, trialsLastHour: [], maxTrialsPerHour: 2, cooldownMs: 10 * MIN }), { ok: true });
  });

  it('waits out the cooldown after the last trial', () => {
    const last = now - 4 * MIN;
    assert.deepEqual(agentGate({ now, lastTrialAt: last, trialsLastHour: [last], maxTrialsPerHour: 5, cooldownMs: 10 * MIN }), { ok: false, reason: 'cooldown', retry_at: last + 10 * MIN });
    assert.deepEqual(agentGate({ now, lastTrialAt: now - 10 * MIN, trialsLastHour: [now - 10 * MIN], maxTrialsPerHour: 5, cooldownMs: 10 * MIN }), { ok: true });
  });

  it('caps trials per hour and says when the window admits the next', () => {
    const times = [now - 50 * MIN, now - 30 * MIN, now - 20 * MIN];
    assert.deepEqual(agentGate({ now, lastTrialAt: times[2], trialsLastHour: times, maxTrialsPerHour: 3, cooldownMs: MIN }), { ok: false, reason: 'max_trials_per_hour', retry_at: times[0]! + 60 * MIN });
    assert.deepEqual(agentGate({ now, lastTrialAt: times[2], trialsLastHour: times, maxTrialsPerHour: 2, cooldownMs: MIN }), { ok: false, reason: 'max_trials_per_hour', retry_at: times[1]! + 60 * MIN });
    assert.deepEqual(agentGate({ now, lastTrialAt: times[2], trialsLastHour: times, maxTrialsPerHour: 4, cooldownMs: MIN }), { ok: true });
    // Trials an hour old or more no longer count.
    assert.deepEqual(agentGate({ now, lastTrialAt: times[2], trialsLastHour: [now - 60 * MIN, now - 70 * MIN, ...times.slice(1)], maxTrialsPerHour: 3, cooldownMs: MIN }), { ok: true });
  });

  it('names the limit that clears last when both bind', () => {
    const times = [now - 59 * MIN, now - 1 * MIN];
    assert.deepEqual(agentGate({ now, lastTrialAt: times[1], trialsLastHour: times, maxTrialsPerHour: 2, cooldownMs: 30 * MIN }), { ok: false, reason: 'cooldown', retry_at: times[1]! + 30 * MIN });
    assert.deepEqual(agentGate({ now, lastTrialAt: times[1], trialsLastHour: times, maxTrialsPerHour: 1, cooldownMs: 30 * MIN }), { ok: false, reason: 'max_trials_per_hour', retry_at: times[1]! + 60 * MIN });
  });

  it('refuses a cap below one', () => {
    assert.throws(() => agentGate({ now, trialsLastHour: [], maxTrialsPerHour: 0, cooldownMs: 0 }), BadRequestError);
  });
});

describe('shouldWake', () => {
  it('wakes once enough new vectors arrived', () => {
    assert.equal(shouldWake({ newVectorsSinceLastTrial: 999, threshold: 1000 }), false);
    assert.equal(shouldWake({ newVectorsSinceLastTrial: 1000, threshold: 1000 }), true);
    assert.throws(() => shouldWake({ newVectorsSinceLastTrial: 5, threshold: 0 }), BadRequestError);
  });
});
