import type { Config } from '../config.ts';

/** Entity lock keys: every writer of a dataset or an index, on any host, uses these. */
export const datasetLockKey = (config: Config, dataset: string) => `${config.queuePrefix}:lock:dataset:${dataset}`;
export const indexLockKey = (config: Config, index: string) => `${config.queuePrefix}:lock:index:${index}`;
/** The per-index generation lease (shared/vectors/index/generation-lease.ts): held from a build's plan to its commit. */
export const indexLeaseKey = (config: Config, index: string) => `${config.queuePrefix}:lease:index:${index}`;
