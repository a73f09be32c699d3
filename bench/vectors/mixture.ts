/**
 * Seeded stand-ins for sentence embeddings: unit vectors drawn around random topic centres (a
 * Gaussian mixture, the shape real embeddings have; uniform random vectors are the worst case for
 * HNSW and would understate recall). The same as test/unit/hnsw-index.test.ts's generator, with
 * the count, dimension and topics as parameters: the same seed gives the same vectors.
 */
import { mulberry32 as prng } from '../../shared/random.ts';

export { prng };

function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

function normalise(v: Float32Array): Float32Array {
  let s = 0;
  for (let j = 0; j < v.length; j++) s += v[j]! * v[j]!;
  const n = Math.sqrt(s);
  for (let j = 0; j < v.length; j++) v[j]! /= n;
  return v;
}

export interface Mixture {
  dims: number;
  /** `count` rows × dims, flat, unit length. */
  vectors: Float32Array;
  /** Draws `n` more vectors from the same topics (queries: near the data, never in it). */
  sample(n: number): Float32Array;
}

/** Spread of a vector around its centre, per dimension, as in the unit test (≈ cos 0.55 to it). */
const SPREAD = 1.5;

export function mixture(seed: number, count: number, dims: number, topics = 50): Mixture {
  const rand = prng(seed);
  const centres = Array.from({ length: topics }, () => normalise(Float32Array.from({ length: dims }, () => gaussian(rand))));
  const spread = SPREAD / Math.sqrt(dims);
  const drawInto = (out: Float32Array, row: number) => {
    const centre = centres[Math.floor(rand() * topics)]!;
    const v = out.subarray(row * dims, (row + 1) * dims);
    for (let j = 0; j < dims; j++) v[j] = centre[j]! + gaussian(rand) * spread;
    normalise(v);
  };
  const draw = (n: number) => {
    const out = new Float32Array(n * dims);
    for (let i = 0; i < n; i++) drawInto(out, i);
    return out;
  };
  return { dims, vectors: draw(count), sample: draw };
}

/** Row `i` of a flat rows × dims array (a view, not a copy). */
export function rowOf(vectors: Float32Array, dims: number, i: number): Float32Array {
  return vectors.subarray(i * dims, (i + 1) * dims);
}
