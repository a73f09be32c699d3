/**
 * The name a claimed file gets: `<uuid>__<original filename>`. The uuid is a version 7 one, so
 * it carries the claim time (its first 48 bits are Unix milliseconds): a watcher can tell how
 * long a claim has waited from the name alone, without trusting file times that rename keeps.
 */
import { randomBytes } from 'node:crypto';

const SEPARATOR = '__';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** RFC 9562 UUID version 7: 48-bit millisecond timestamp, version, variant, random bits. */
export function uuidV7(now = Date.now()): string {
  const b = randomBytes(16);
  b.writeUIntBE(now, 0, 6);
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function claimName(filename: string, now = Date.now()): string {
  return `${uuidV7(now)}${SEPARATOR}${filename}`;
}

/** The parts of a claimed file's name, or undefined when it is not one. */
export function parseClaimName(name: string): { uuid: string; filename: string; claimedAt: number } | undefined {
  const cut = name.indexOf(SEPARATOR);
  const uuid = name.slice(0, cut);
  const filename = name.slice(cut + SEPARATOR.length);
  if (cut < 0 || !UUID.test(uuid) || filename === '') return undefined;
  return { uuid, filename, claimedAt: parseInt(uuid.replace(/-/g, '').slice(0, 12), 16) };
}

/** One job per claim: enqueuing the same claim again (a retry, another watcher's sweep) dedupes. */
export function claimJobId(uuid: string): string {
  return `inbox-${uuid}`;
}
