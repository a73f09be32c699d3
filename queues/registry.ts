/**
 * Every queue the cluster has. Adding a queue is one declaration here plus one processor file
 * `workers/processors/<name>.ts`.
 */
import { NotFoundError } from '../shared/errors.ts';
import { autotune } from './autotune.ts';
import { embed } from './embed.ts';
import { ingest } from './ingest.ts';
import { refresh } from './refresh.ts';
import type { QueueDeclaration } from './queue-declaration.ts';

export const QUEUES: readonly QueueDeclaration[] = [ingest, embed, refresh, autotune];

export const QUEUE_NAMES: readonly string[] = QUEUES.map((q) => q.name);

export function getQueueDeclaration(name: string): QueueDeclaration {
  const found = QUEUES.find((q) => q.name === name);
  if (!found) throw new NotFoundError(`no queue named ${JSON.stringify(name)}; queues: ${QUEUE_NAMES.join(', ')}`);
  return found;
}

/** Parses a comma-separated queue list (CLI, env) and refuses unknown names. */
export function parseQueueList(list: string | undefined): string[] {
  if (!list || list === 'all') return [...QUEUE_NAMES];
  const names = [...new Set(list.split(',').map((s) => s.trim()).filter(Boolean))];
  for (const name of names) getQueueDeclaration(name);
  return names;
}
