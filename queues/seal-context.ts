import type { Config } from '../shared/config.ts';
import { claimForJob } from '../shared/inbox/inbox.ts';
import { SecretBox } from '../shared/secrets/secret-box.ts';
import { Buckets } from '../shared/storage/buckets.ts';
import type { SealContext } from './queue-declaration.ts';

/** The server-side services a Producer's seal steps use, built from the process's config. */
export async function createSealContext(config: Config, buckets = new Buckets(config.dataDir, config.buckets)): Promise<SealContext> {
  return {
    secrets: await SecretBox.open(buckets.primary.secretsDir(), config.secretKey),
    connections: Object.keys(config.connections),
    buckets: buckets.names(),
    embedProviders: Object.keys(config.embedding.providers).sort(),
    allowJobDsn: config.allowJobDsn,
    catalog: buckets,
    claimInbox: (p) => claimForJob(buckets.primary, p),
  };
}
