/**
 * How domain code reports progress without knowing about BullMQ: a fraction in [0, 1] and a
 * small detail object (counts, rates) that ends up in the job's progress field.
 */
export type ProgressFn = (fraction: number, detail?: Record<string, number | string>) => void | Promise<void>;

export const noProgress: ProgressFn = () => {};
