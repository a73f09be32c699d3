import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';

/** sha256 of a file's bytes, streamed: the identity of "the same bytes ingested twice". */
export async function fileFingerprint(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * The server's own record of an upload's sha256, written beside the staged file as it arrived.
 * Only the server writes into staging/, so a client cannot claim a fingerprint (and have its
 * data skipped as a "duplicate").
 */
export const fingerprintFile = (file: string) => `${file}.sha256`;

export async function writeFingerprint(file: string, sha256: string): Promise<void> {
  await fs.writeFile(fingerprintFile(file), sha256);
}

/** The recorded fingerprint, or the file's own when none was recorded. */
export async function knownFingerprint(file: string): Promise<string> {
  const recorded = await fs.readFile(fingerprintFile(file), 'utf8').catch(() => '');
  return /^[0-9a-f]{64}$/.test(recorded) ? recorded : fileFingerprint(file);
}
