/**
 * Every provider hands out unit-length vectors (recorded as `normalized: true` in the index), so
 * downstream code may use a dot product as cosine similarity whatever the model did.
 */

/** Scales `v` in place to length 1 and returns it; a zero vector has no direction and stays zero. */
export function normalizeInPlace(v: Float32Array): Float32Array {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i]! * v[i]!;
  if (!Number.isFinite(sum)) throw new Error('vector holds a non-finite value (NaN or Infinity)');
  if (sum === 0) return v;
  const scale = 1 / Math.sqrt(sum);
  for (let i = 0; i < v.length; i++) v[i]! *= scale;
  return v;
}

/** A unit-length Float32Array copy of `values`. */
export function toUnitVector(values: ArrayLike<number>): Float32Array {
  return normalizeInPlace(Float32Array.from(values));
}
