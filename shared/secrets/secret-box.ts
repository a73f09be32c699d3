/**
 * Server-side secrets (DSNs with passwords): sealed with AES-256-GCM into the primary data
 * root's secrets folder, so a job payload — which Redis keeps and Bull Board shows — carries
 * only an opaque reference. The key comes from LAKEHOUSE_SECRET_KEY or, when that is unset, is
 * generated once into the secrets folder (mode 0600) that every host of the cluster shares.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { BadRequestError } from '../errors.ts';
import { createFileOnce, writeFileAtomic } from '../storage/atomic-write.ts';

const KEY_FILE = 'secret.key';
const SECRET_ID = /^[0-9a-f-]{36}$/;

export class SecretBox {
  private constructor(
    private readonly dir: string,
    private readonly key: Buffer,
  ) {}

  static async open(secretsDir: string, configuredKey: string | undefined): Promise<SecretBox> {
    const dir = path.join(secretsDir, 'sealed');
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const material = configuredKey ?? (await generatedKey(secretsDir));
    return new SecretBox(dir, createHash('sha256').update(material).digest());
  }

  async seal(plaintext: string): Promise<string> {
    const id = randomUUID();
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const sealed = { v: 1, iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), body: body.toString('base64') };
    await writeFileAtomic(path.join(this.dir, `${id}.json`), JSON.stringify(sealed), 0o600);
    return id;
  }

  async open(id: string): Promise<string> {
    if (!SECRET_ID.test(id)) throw new BadRequestError('malformed secret reference');
    let sealed: { iv: string; tag: string; body: string };
    try {
      sealed = JSON.parse(await fs.readFile(path.join(this.dir, `${id}.json`), 'utf8'));
    } catch {
      throw new BadRequestError(`secret ${id} is not in this data root's secrets (deleted, or another data root?)`);
    }
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(sealed.iv, 'base64'));
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
    try {
      return Buffer.concat([decipher.update(Buffer.from(sealed.body, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      throw new BadRequestError(`secret ${id} cannot be decrypted with this server's key (LAKEHOUSE_SECRET_KEY differs between processes?)`);
    }
  }
}

async function generatedKey(secretsDir: string): Promise<string> {
  const { content } = await createFileOnce(path.join(secretsDir, KEY_FILE), () => randomBytes(32).toString('base64'));
  return content.trim();
}
