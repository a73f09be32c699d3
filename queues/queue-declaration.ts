/**
 * Glossary
 * - queue declaration: everything the system knows about one queue — its name, the zod schemas
 *   of a job's payload and result, default job options and whether its processor is sandboxed.
 *   The API validates with `payload`, the worker parses with it; both come from here.
 * - processor: the function that does a job, in `workers/processors/<queue name>.ts`.
 * - sandboxed: the processor runs in a child process, so CPU-heavy work cannot stall the
 *   worker's event loop (which must keep renewing job locks).
 */
import type { JobsOptions } from 'bullmq';
import type { z } from 'zod';

export interface QueueDeclaration<P extends z.ZodType = z.ZodType, R extends z.ZodType = z.ZodType> {
  name: string;
  /** One line for the OpenAPI document and Bull Board. */
  description: string;
  payload: P;
  result: R;
  jobOptions: JobsOptions;
  /** @defaultValue false */
  sandboxed: boolean;
}

export type PayloadOf<D extends QueueDeclaration> = z.output<D['payload']>;
export type ResultOf<D extends QueueDeclaration> = z.output<D['result']>;

export function declareQueue<P extends z.ZodType, R extends z.ZodType>(
  declaration: Omit<QueueDeclaration<P, R>, 'sandboxed'> & { sandboxed?: boolean },
): QueueDeclaration<P, R> {
  return { sandboxed: false, ...declaration };
}
