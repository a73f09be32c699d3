/**
 * HNSW configs an autotune run may try: the default grid, the bounds of a custom one, and the
 * messages a 400 carries (they name the field, the value and the bound).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configKey, DEFAULT_GRID, gridSchema, hnswConfigSchema, MAX_GRID } from '../../shared/autotune/hnsw-config.ts';

function messages(result: { success: boolean; error?: { issues: { message: string; path: PropertyKey[] }[] } }): string[] {
  assert.equal(result.success, false);
  return result.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('DEFAULT_GRID', () => {
  it("holds the earlier system's five configs at M 16, then M 8 and M 32 at 80/60", () => {
    assert.deepEqual(DEFAULT_GRID.map(configKey), [
      'm16-efc20-efs30',
      'm16-efc40-efs30',
      'm16-efc80-efs30',
      'm16-efc80-efs60',
      'm16-efc160-efs30',
      'm8-efc80-efs60',
      'm32-efc80-efs60',
    ]);
  });

  it('passes its own validation and cannot be changed by a caller', () => {
    assert.deepEqual(gridSchema.parse(DEFAULT_GRID), DEFAULT_GRID);
    assert.throws(() => (DEFAULT_GRID as unknown as { m: number }[]).push({ m: 4 }), TypeError);
    assert.throws(() => ((DEFAULT_GRID[0] as { m: number }).m = 4), TypeError);
  });
});

describe('hnswConfigSchema', () => {
  it('accepts the bounds themselves', () => {
    for (const c of [{ m: 4, ef_construction: 10, ef_search: 10 }, { m: 64, ef_construction: 400, ef_search: 200 }]) assert.deepEqual(hnswConfigSchema.parse(c), c);
  });

  it('names the field, the value and the bound it broke', () => {
    const cases: [object, string][] = [
      [{ m: 3, ef_construction: 80, ef_search: 30 }, 'm: m 3 is below the minimum 4 (allowed 4–64)'],
      [{ m: 65, ef_construction: 80, ef_search: 30 }, 'm: m 65 is above the maximum 64 (allowed 4–64)'],
      [{ m: 16, ef_construction: 9, ef_search: 30 }, 'ef_construction: ef_construction 9 is below the minimum 10 (allowed 10–400)'],
      [{ m: 16, ef_construction: 401, ef_search: 30 }, 'ef_construction: ef_construction 401 is above the maximum 400 (allowed 10–400)'],
      [{ m: 16, ef_construction: 80, ef_search: 9 }, 'ef_search: ef_search 9 is below the minimum 10 (allowed 10–200)'],
      [{ m: 16, ef_construction: 80, ef_search: 201 }, 'ef_search: ef_search 201 is above the maximum 200 (allowed 10–200)'],
      [{ m: 16.5, ef_construction: 80, ef_search: 30 }, 'm: m must be an integer in 4–64, got 16.5'],
      [{ m: '16', ef_construction: 80, ef_search: 30 }, 'm: m must be an integer in 4–64, got "16"'],
      [{ ef_construction: 80, ef_search: 30 }, 'm: m must be an integer in 4–64, got nothing'],
    ];
    for (const [config, message] of cases) assert.deepEqual(messages(hnswConfigSchema.safeParse(config)), [message]);
  });

  it('refuses unknown fields, so a misspelt parameter is not silently dropped', () => {
    const [message] = messages(hnswConfigSchema.safeParse({ m: 16, ef_construction: 80, ef_search: 30, efSearch: 50 }));
    assert.match(message!, /efSearch/);
  });
});

describe('gridSchema', () => {
  it('points at the bad config by position', () => {
    const grid = [{ m: 16, ef_construction: 80, ef_search: 30 }, { m: 16, ef_construction: 80, ef_search: 500 }];
    assert.deepEqual(messages(gridSchema.safeParse(grid)), ['1.ef_search: ef_search 500 is above the maximum 200 (allowed 10–200)']);
  });

  it('holds 1 to 50 distinct configs', () => {
    assert.deepEqual(messages(gridSchema.safeParse([])), [': a grid needs at least one config']);
    const big = Array.from({ length: MAX_GRID + 1 }, (_, i) => ({ m: 16, ef_construction: 10 + i, ef_search: 30 }));
    assert.deepEqual(messages(gridSchema.safeParse(big)), [': a grid holds at most 50 configs, got 51']);
    assert.equal(gridSchema.parse(big.slice(0, MAX_GRID)).length, MAX_GRID);
    const twice = [DEFAULT_GRID[0]!, DEFAULT_GRID[1]!, { ...DEFAULT_GRID[0]! }];
    assert.deepEqual(messages(gridSchema.safeParse(twice)), ['2: config m16-efc20-efs30 appears twice (at 0 and 2); each config is tried once']);
  });
});

describe('configKey', () => {
  it('names a config', () => {
    assert.equal(configKey({ m: 16, ef_construction: 80, ef_search: 30 }), 'm16-efc80-efs30');
  });
});
