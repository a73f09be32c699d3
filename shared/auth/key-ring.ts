/**
 * API keys and their roles. Lookup compares the presented key against every configured key in
 * constant time (timingSafeEqual on SHA-256 digests, so lengths don't leak either) and never
 * stops early.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Role } from '../config.ts';
import { createFileOnce } from '../storage/atomic-write.ts';

const digest = (s: string) => createHash('sha256').update(s).digest();

export const ROLE_RANK: Record<Role, number> = { reader: 1, writer: 2, admin: 3 };

export class KeyRing {
  private readonly entries: { digest: Buffer; role: Role }[];

  constructor(keys: { key: string; role: Role }[]) {
    this.entries = keys.map((k) => ({ digest: digest(k.key), role: k.role }));
  }

  get size(): number {
    return this.entries.length;
  }

  roleOf(presented: string): Role | undefined {
    const d = digest(presented);
    let found: Role | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(e.digest, d) && (!found || ROLE_RANK[e.role] > ROLE_RANK[found])) found = e.role;
    }
    return found;
  }
}

export function allows(role: Role, needed: Role): boolean {
  return ROLE_RANK[role] >= ROLE_RANK[needed];
}

export const GENERATED_KEY_FILE = 'admin.key';

/**
 * With no keys configured the API still never runs open: an admin key is generated once,
 * stored with mode 0600 in the data root's secrets folder, and reused on later starts.
 */
export async function ensureGeneratedKey(secretsDir: string): Promise<{ key: string; file: string; created: boolean }> {
  await fs.mkdir(secretsDir, { recursive: true, mode: 0o700 });
  const file = path.join(secretsDir, GENERATED_KEY_FILE);
  const { content, created } = await createFileOnce(file, () => `lh_${randomBytes(24).toString('base64url')}\n`);
  return { key: content.trim(), file, created };
}

/** The key a local CLI uses when none is given: the generated one, if this machine has it. */
export async function readGeneratedKey(secretsDir: string): Promise<string | undefined> {
  try {
    return (await fs.readFile(path.join(secretsDir, GENERATED_KEY_FILE), 'utf8')).trim() || undefined;
  } catch {
    return undefined;
  }
}
