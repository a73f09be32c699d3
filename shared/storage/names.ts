import { z } from 'zod';

/** Names that become paths (datasets, indexes, buckets) follow one rule everywhere. */
export const ENTITY_NAME = /^[a-z][a-z0-9_]{0,62}$/;

export const entityName = z
  .string()
  .regex(ENTITY_NAME, 'lower-case letter first, then lower-case letters, digits or _; at most 63 characters');
