/**
 * (d) Scale-out: one embed job over the same chunks with 1, 2, 4 … `lakehouse worker --queues
 * embed --concurrency 1` processes, provider `openai` pointed at a stand-in server that answers
 * every request after the same fixed latency (latency-stand-in.ts), LAKEHOUSE_EMBED_SHARD_CHUNKS
 * small enough that the job fans out into many shards. The API runs in this process.
 *
 * Raw, for each worker count N: a plain fetch client sending the same texts in batches of the
 * provider's batch size, N requests in flight: the floor for N parallel streams against this
 * server, with no queue, shards, Parquet or HNSW build.
 *
 * Every worker count has its own prefix (and API), all up at once, each warmed by one job; rounds
 * rotate over the worker counts, raw then ours (order alternating).
 */
import { DEFAULT_PROVIDER_SETTINGS } from '../../shared/vectors/embedding/provider.ts';
import { runEmbedJob, type Api, type Cluster, type EmbedRun } from './cluster.ts';
import type { LatencyStandIn } from './latency-stand-in.ts';

const BATCH = DEFAULT_PROVIDER_SETTINGS.batchSize;
const MODEL = 'bench-embed';

export interface ScaleConfig {
  workers: number;
  api: Api;
}

export interface ScaleTimings {
  raw: Record<number, number[]>;
  ours: Record<number, EmbedRun[]>;
  /** Requests the stand-in answered per ours run, and their mean batch size. */
  requests: Record<number, { requests: number; meanBatch: number }[]>;
  others: Record<number, number[]>;
}

export async function startScaleConfig(cluster: Cluster, server: LatencyStandIn, workers: number, shardChunks: number, warmDataset: string): Promise<ScaleConfig> {
  const api = await cluster.api(`vec-scale-w${workers}`);
  const env = { LAKEHOUSE_OPENAI_URL: server.url, LAKEHOUSE_EMBED_SHARD_CHUNKS: String(shardChunks), LAKEHOUSE_EMBED_BATCH_SIZE: String(BATCH) };
  await Promise.all(Array.from({ length: workers }, (_, i) => cluster.worker(api, `embed worker ${i + 1}/${workers}`, 'embed', 1, env)));
  server.arm(10_000);
  await runEmbedJob(api, request(`warm_w${workers}`, warmDataset), 300_000);
  return { workers, api };
}

function request(index: string, dataset: string) {
  return { index, dataset, id_column: 'id', text_column: 'text', provider: 'openai' as const, model: MODEL };
}

/** The texts in batches, `inFlight` requests at a time; seconds until the last answer. */
async function rawRun(server: LatencyStandIn, texts: readonly string[], inFlight: number): Promise<number> {
  const batches: string[][] = [];
  for (let i = 0; i < texts.length; i += BATCH) batches.push(texts.slice(i, i + BATCH));
  let next = 0;
  const started = performance.now();
  const client = async () => {
    for (let b = next++; b < batches.length; b = next++) {
      const res = await fetch(`${server.url}/v1/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, input: batches[b] }),
      });
      const body = (await res.json()) as { data?: unknown[] };
      if (res.status !== 200 || body.data?.length !== batches[b]!.length) throw new Error(`the stand-in answered ${res.status} with ${body.data?.length} vectors`);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, client));
  return (performance.now() - started) / 1000;
}

export async function scaleRounds(
  configs: ScaleConfig[], server: LatencyStandIn, dataset: string, texts: readonly string[], rounds: number,
  meter: () => Promise<() => Promise<number>>, say: (line: string) => void,
): Promise<ScaleTimings> {
  const t: ScaleTimings = { raw: {}, ours: {}, requests: {}, others: {} };
  for (const c of configs) [t.raw[c.workers], t.ours[c.workers], t.requests[c.workers], t.others[c.workers]] = [[], [], [], []];
  // generous: the requests one run can make (probe, one per batch per shard), doubled
  const armFor = 2 * (Math.ceil(texts.length / BATCH) + texts.length) + 10;
  for (let r = 0; r < rounds; r++) {
    const order = [...configs.slice(r % configs.length), ...configs.slice(0, r % configs.length)];
    for (const c of order) {
      const stop = await meter();
      const runRaw = async () => {
        server.arm(armFor);
        t.raw[c.workers]!.push(await rawRun(server, texts, c.workers));
        server.consumed();
      };
      const runOurs = async () => {
        server.arm(armFor);
        const run = await runEmbedJob(c.api, request(`scale_w${c.workers}_r${r}`, dataset), 600_000);
        if (run.chunks !== texts.length) throw new Error(`the scale-out job embedded ${run.chunks} chunks, expected ${texts.length}`);
        t.ours[c.workers]!.push(run);
        t.requests[c.workers]!.push(server.consumed());
      };
      if (r % 2 === 0) (await runRaw(), await runOurs());
      else (await runOurs(), await runRaw());
      t.others[c.workers]!.push(await stop());
      const ours = t.ours[c.workers]!.at(-1)!;
      say(`  round ${r + 1}, ${c.workers} worker(s): raw ${t.raw[c.workers]!.at(-1)!.toFixed(2)} s, ours ${ours.e2eSeconds.toFixed(2)} s end to end (embedding ${ours.embedSeconds.toFixed(2)} s, shards per worker ${Object.values(ours.shardsByWorker).join('/')})`);
    }
  }
  return t;
}
