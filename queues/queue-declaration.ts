/**
 * Glossary
 * - queue declaration: everything the system knows about one queue — its name, the zod schemas
 *   of a job's payload and result, default job options and whether its processor is sandboxed.
 *   The API validates with it, the worker parses with it; both come from here.
 * - request: what a client posts. Usually the payload itself; a queue whose requests may carry
 *   secrets declares a `request` schema and a `seal` step that turns a request into the payload
 *   stored in Redis (where Bull Board shows it), with secrets moved out.
 * - processor: the function that does a job, in `workers/processors/<queue name>.ts`.
 * - sandboxed: the processor runs in a child process, so CPU-heavy work cannot stall the
 *   worker's event loop (which must keep renewing job locks).
 */
import type { JobsOptions } from 'bullmq';
import type { z } from 'zod';
import type { Role } from '../shared/config.ts';
import type { SecretBox } from '../shared/secrets/secret-box.ts';
import type { Buckets } from '../shared/storage/buckets.ts';

/** What a seal step may use: server-side services that never leave the server. */
export interface SealContext {
  secrets: SecretBox;
  /** Names of DSNs configured on the server (LAKEHOUSE_CONNECTION_<NAME>). */
  connections: readonly string[];
  /** Names of storage buckets. */
  buckets: readonly string[];
  /** Names of embedding providers configured on the server (local, ollama, openai, LAKEHOUSE_EMBED_PROVIDER_<NAME>). */
  embedProviders: readonly string[];
  /** LAKEHOUSE_ALLOW_JOB_DSN: an admin's job may carry its own DSN. */
  allowJobDsn: boolean;
  /** The role of the API caller adding the job; undefined for server-internal producers (the inbox watcher). */
  callerRole?: Role | undefined;
  /** The catalog's storage: seal steps check the datasets and indexes a job names before it is added. */
  catalog: Buckets;
  /** Claims `<folder>/<file>` in the inbox for one job (atomic rename); returns the claimed path. */
  claimInbox: (path: string) => Promise<string>;
}

export interface QueueDeclaration<P extends z.ZodType = z.ZodType, R extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType> {
  name: string;
  /** One line for the OpenAPI document and Bull Board. */
  description: string;
  payload: P;
  result: R;
  /** What clients post. @defaultValue payload */
  request: Q;
  /** Request → payload. @defaultValue identity */
  seal: (request: z.output<Q>, ctx: SealContext) => Promise<z.input<P>>;
  jobOptions: JobsOptions;
  /**
   * A job id the payload itself dictates (e.g. one per claimed inbox file, so every path that
   * enqueues that file dedupes onto one job). @defaultValue none: the client's or BullMQ's id
   */
  jobIdFor?: (payload: z.output<P>) => string | undefined;
  /**
   * At most one unfinished job per key (BullMQ deduplication): adding another while one waits or
   * runs returns the one there. @defaultValue none
   */
  dedupeFor?: (payload: z.output<P>) => string | undefined;
  /** @defaultValue false */
  sandboxed: boolean;
}

export type PayloadOf<D extends QueueDeclaration> = z.output<D['payload']>;
export type ResultOf<D extends QueueDeclaration> = z.output<D['result']>;

type Declared<P extends z.ZodType, R extends z.ZodType, Q extends z.ZodType> = Pick<
  QueueDeclaration<P, R, Q>,
  'name' | 'description' | 'payload' | 'result' | 'jobOptions'
> &
  Partial<Pick<QueueDeclaration<P, R, Q>, 'request' | 'seal' | 'sandboxed' | 'jobIdFor' | 'dedupeFor'>>;

export function declareQueue<P extends z.ZodType, R extends z.ZodType, Q extends z.ZodType = P>(
  d: Declared<P, R, Q>,
): QueueDeclaration<P, R, Q> {
  return {
    sandboxed: false,
    request: d.payload as unknown as Q,
    seal: async (request) => request as z.input<P>,
    ...d,
  } as QueueDeclaration<P, R, Q>;
}
