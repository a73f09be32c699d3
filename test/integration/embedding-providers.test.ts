/**
 * Embedding providers against real things: the local provider runs Universal Sentence Encoder
 * lite in real worker threads (offline — this file passes under `unshare -n`); ollama and openai
 * talk to a real HTTP stand-in on 127.0.0.1 scripted per test (DESIGN §6). Also: a crashing
 * thread is reported and replaced, the index model guard refuses a different model, and the
 * thread pool works when tsx was registered through its API (the bin/lakehouse.js path).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { after, before, beforeEach, describe, it } from 'node:test';
import { BadRequestError, ConflictError } from '../../shared/errors.ts';
import type { LocalProvider } from '../../shared/vectors/embedding/local-provider.ts';
import {
  assertSameModel,
  createProvider,
  DEFAULT_PROVIDER_SETTINGS,
  type EmbeddingProvider,
  type ProviderSettings,
} from '../../shared/vectors/embedding/provider.ts';
import { ConfigError, EMBED_PROVIDER_KINDS, loadConfig, type EmbedProviderEndpoint } from '../../shared/config.ts';
import { readNamedEndpoints } from '../../shared/outbound/named-endpoints.ts';
import { EmbeddingProviderError } from '../../shared/vectors/embedding/provider-error.ts';
import { EmbedThreadPool, type ThreadStats } from '../../shared/vectors/embedding/thread-pool.ts';
import { toUnitVector } from '../../shared/vectors/embedding/unit-vector.ts';
import { loopbackProblem, standInVector, startLlmStandIn, type LlmStandIn } from '../helpers/llm-stand-in.ts';

const run = promisify(execFile);
const dot = (a: Float32Array, b: Float32Array) => a.reduce((sum, x, i) => sum + x * b[i]!, 0);
const norm = (a: Float32Array) => Math.sqrt(dot(a, a));

/** ~300-character English passages, all different. */
function passages(n: number): string[] {
  const topics = ['password resets', 'vector indexes', 'weekly sales', 'cat behaviour', 'river flooding', 'tax returns', 'guitar strings'];
  return Array.from({ length: n }, (_, i) => {
    const topic = topics[i % topics.length];
    const text =
      `Note ${i} is about ${topic}. It explains what usually goes wrong with ${topic}, who to ask when it does, ` +
      `and how long a fix takes in practice. Readers said item ${i} was clear, though the part about ${topic} ` +
      'in winter could use an example or two more.';
    return text.slice(0, 300);
  });
}

function endpoint(name: string, kind: 'ollama' | 'openai', url: string, key?: string): EmbedProviderEndpoint {
  return { name, kind, url, ...(key ? { key } : {}), variable: 'test' };
}

function settings(overrides: Partial<ProviderSettings> = {}): ProviderSettings {
  return { ...DEFAULT_PROVIDER_SETTINGS, timeoutMs: 5_000, maxRetries: 2, retryBaseMs: 10, batchSize: 16, ...overrides };
}

async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function texts(stats: ThreadStats[]): Map<number, number> {
  return new Map(stats.map((s) => [s.threadId, s.texts]));
}

describe('local provider (USE lite, worker threads, offline)', () => {
  let local: LocalProvider;
  before(() => {
    local = createProvider({ provider: 'local' }, settings({ localThreads: 2 })) as LocalProvider;
  });
  after(() => local.close());

  it('records its identity without starting a thread', async () => {
    assert.deepEqual(await local.identity(), { provider: 'local', kind: 'local', model: 'use-lite-512', dims: 512, normalized: true });
    assert.deepEqual(await local.embed([]), []);
  });

  it('returns 512-d unit vectors in input order, closer for similar meaning', async () => {
    const [reset, forgot, cat] = await local.embed(['How do I reset my password?', 'I forgot my login credentials', 'The cat sat on the mat']);
    for (const v of [reset!, forgot!, cat!]) {
      assert.equal(v.length, 512);
      assert.ok(Math.abs(norm(v) - 1) < 1e-5);
    }
    assert.ok(dot(reset!, forgot!) > dot(reset!, cat!) + 0.1, `${dot(reset!, forgot!)} vs ${dot(reset!, cat!)}`);
    assert.ok(dot(reset!, forgot!) > dot(forgot!, cat!) + 0.1);

    const [catAlone] = await local.embed(['The cat sat on the mat']);
    assert.ok(dot(cat!, catAlone!) > 0.99999, 'the third vector belongs to the third text');
  });

  it('is deterministic across calls', async () => {
    const input = passages(20);
    const [a, b] = [await local.embed(input), await local.embed(input)];
    assert.equal(a.length, 20);
    a.forEach((v, i) => assert.deepEqual(v, b[i]));
  });

  it('spreads a big call over both threads while the event loop stays responsive', async () => {
    const before = texts(local.stats());
    let last = performance.now();
    let worstGap = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      worstGap = Math.max(worstGap, now - last);
      last = now;
    }, 10);
    const started = performance.now();
    try {
      const vectors = await local.embed(passages(200));
      assert.equal(vectors.length, 200);
    } finally {
      clearInterval(ticker);
    }
    const took = performance.now() - started;
    const after = local.stats();
    assert.equal(after.length, 2);
    for (const s of after) assert.ok(s.texts - (before.get(s.threadId) ?? 0) >= 50, `thread ${s.threadId} did too little: ${JSON.stringify(after)}`);
    // Embedding on the event loop would stall it for the whole call (seconds); on threads the loop
    // only waits for the scheduler. The bound is relative so a loaded machine does not fail it.
    assert.ok(took > 1_000, `200 passages took ${took.toFixed(0)} ms: too quick to tell`);
    assert.ok(worstGap < took / 4, `the event loop stalled for ${worstGap.toFixed(0)} ms of ${took.toFixed(0)} ms`);
  });

  it('stops waiting when the caller aborts', async () => {
    const controller = new AbortController();
    const pending = local.embed(passages(100), controller.signal);
    controller.abort(new Error('job cancelled'));
    await assert.rejects(pending, /job cancelled/);
    assert.equal((await local.embed(['still works'])).length, 1);
  });

  it('refuses work after close()', async () => {
    const short = createProvider({ provider: 'local' }, settings({ localThreads: 1 }));
    assert.equal((await short.embed(['warm up']))[0]!.length, 512);
    await short.close();
    await assert.rejects(short.embed(['too late']), /local embedder \(use-lite-512\) is closed/);
  });
});

describe('embedding thread pool', () => {
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lh-embed-'));
    // A stand-in thread speaking the pool's protocol: 4-d vectors, and an uncaught error on "crash".
    await fs.writeFile(
      path.join(dir, 'crashing-thread.mjs'),
      `import { parentPort } from 'node:worker_threads';
parentPort.on('message', ({ texts }) => {
  if (texts.includes('crash')) setImmediate(() => { throw new Error('boom'); });
  else { const vectors = new Float32Array(texts.length * 4).fill(0.5); parentPort.postMessage({ type: 'done', dims: 4, vectors }, [vectors.buffer]); }
});
parentPort.postMessage({ type: 'ready' });`,
    );
    await fs.writeFile(path.join(dir, 'broken-thread.mjs'), `throw new Error('weights missing');`);
  });
  after(() => fs.rm(dir, { recursive: true, force: true }));

  const pool = (file: string, threads = 1) =>
    new EmbedThreadPool({ entry: pathToFileURL(path.join(dir, file)), threads, batchSize: 8, label: 'test embedder' });

  it('rejects the batch of a thread that dies, naming it, and replaces the thread', async () => {
    const p = pool('crashing-thread.mjs');
    try {
      await p.embed(['warm']);
      const [first] = p.stats();
      await assert.rejects(p.embed(['a', 'crash']), new RegExp(`^Error: test embedder: thread ${first!.threadId} died \\(boom\\) while embedding a batch of 2 texts`));
      const vectors = await p.embed(['a', 'b', 'c']);
      assert.deepEqual(vectors.map((v) => [...v]), [[0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]]);
      const [replacement] = p.stats();
      assert.notEqual(replacement!.threadId, first!.threadId);
      assert.equal(replacement!.texts, 3);
    } finally {
      await p.close();
    }
  });

  it('fails the call, instead of respawning forever, when a thread cannot start', async () => {
    const p = pool('broken-thread.mjs', 2);
    try {
      await assert.rejects(p.embed(['a', 'b', 'c']), /test embedder: thread \d+ could not start: weights missing/);
      await assert.rejects(p.embed(['again']), /could not start: weights missing/);
    } finally {
      await p.close();
    }
  });

  it('runs TypeScript threads when tsx was registered through its API (bin/lakehouse.js) or preloaded with TS preloads (sandboxed processors)', async () => {
    const provider = JSON.stringify(import.meta.resolve('../../shared/vectors/embedding/provider.ts'));
    const embedOne = `const { createProvider, DEFAULT_PROVIDER_SETTINGS } = await import(${provider});
const p = createProvider({ provider: 'local' }, { ...DEFAULT_PROVIDER_SETTINGS, localThreads: 1 });
const [v] = await p.embed(['hello from a child process']);
await p.close();
console.log(JSON.stringify({ dims: v.length, execArgv: process.execArgv.length }));`;
    const shim = path.join(dir, 'shim.mjs');
    await fs.writeFile(shim, `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))};\nregister();\n${embedOne}`);
    const viaApi = await run(process.execPath, [shim], { timeout: 60_000 });
    assert.deepEqual(JSON.parse(viaApi.stdout), { dims: 512, execArgv: 0 });

    const child = path.join(dir, 'child.mjs');
    const preload = path.join(dir, 'preload.ts');
    await fs.writeFile(child, embedOne);
    await fs.writeFile(preload, `const marker: string = 'a TypeScript preload';\nexport default marker;\n`);
    const preloaded = await run(process.execPath, ['--import', import.meta.resolve('tsx'), '--import', pathToFileURL(preload).href, child], { timeout: 60_000 });
    assert.deepEqual(JSON.parse(preloaded.stdout), { dims: 512, execArgv: 4 });
  });
});

describe('remote providers against a local stand-in server', { skip: await loopbackProblem() }, () => {
  let standIn: LlmStandIn;
  before(async () => {
    standIn = await startLlmStandIn({ dims: 8 });
  });
  after(() => standIn.close());
  beforeEach(() => standIn.reset());

  const ollama = (overrides: Partial<ProviderSettings> = {}, model = 'nomic-embed-text') =>
    createProvider({ provider: 'ollama', model }, settings({ providers: { ollama: endpoint('ollama', 'ollama', standIn.url) }, batchSize: 3, ...overrides }));
  const openai = (overrides: Partial<ProviderSettings> = {}, opts: { url?: string; key?: string } = {}) =>
    createProvider(
      { provider: 'openai', model: 'text-embedding-3-small' },
      settings({ providers: { openai: endpoint('openai', 'openai', opts.url ?? standIn.url, opts.key) }, batchSize: 3, ...overrides }),
    );

  async function failure(provider: EmbeddingProvider, input = ['x']): Promise<EmbeddingProviderError> {
    const err = await provider.embed(input).then(
      () => assert.fail('expected the embed to fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof EmbeddingProviderError, String(err));
    return err;
  }

  it('ollama: sends batches as arrays and returns the normalised vectors in order', async () => {
    const input = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta'];
    const vectors = await ollama().embed(input);
    assert.deepEqual(
      standIn.requests.map((r) => [r.method, r.path, r.body.model, r.body.input]),
      [
        ['POST', '/api/embed', 'nomic-embed-text', ['alpha', 'beta', 'gamma']],
        ['POST', '/api/embed', 'nomic-embed-text', ['delta', 'epsilon', 'zeta']],
        ['POST', '/api/embed', 'nomic-embed-text', ['eta']],
      ],
    );
    vectors.forEach((v, i) => {
      assert.ok(Math.abs(norm(v) - 1) < 1e-6);
      assert.deepEqual(v, toUnitVector(standInVector(input[i]!, 8)));
    });
    assert.deepEqual(await ollama().embed([]), []);
  });

  it('identity() probes once for the dimension when nothing was embedded yet', async () => {
    const provider = ollama();
    assert.deepEqual(await provider.identity(), { provider: 'ollama', kind: 'ollama', model: 'nomic-embed-text', dims: 8, normalized: true });
    await provider.identity();
    assert.equal(standIn.requests.length, 1);
  });

  it('openai: sends the key, places items by index, and accepts a base URL ending in /v1', async () => {
    const input = ['one', 'two', 'three'];
    const vectors = await openai({}, { url: `${standIn.url}/v1/`, key: 'sk-test-123' }).embed(input);
    const [req] = standIn.requests;
    assert.equal(req!.path, '/v1/embeddings');
    assert.equal(req!.headers.authorization, 'Bearer sk-test-123');
    assert.deepEqual(req!.body, { model: 'text-embedding-3-small', input });
    vectors.forEach((v, i) => assert.deepEqual(v, toUnitVector(standInVector(input[i]!, 8))));

    await openai().embed(['no key']);
    assert.equal(standIn.requests[1]!.headers.authorization, undefined);
  });

  it('honours Retry-After on 429', async () => {
    standIn.script({ status: 429, headers: { 'retry-after': '1' }, body: { error: 'slow down' } });
    const started = performance.now();
    const [v] = await ollama({ retryBaseMs: 1 }).embed(['after a pause']);
    assert.equal(v!.length, 8);
    assert.equal(standIn.requests.length, 2);
    assert.ok(performance.now() - started >= 950, 'the client waited less than the server asked');
  });

  it('retries 5xx, dropped connections and 429 with backoff, then succeeds', async () => {
    standIn.script({ status: 500 }, { drop: true }, { status: 429 });
    const [v] = await openai({ maxRetries: 3 }).embed(['eventually']);
    assert.deepEqual(v, toUnitVector(standInVector('eventually', 8)));
    assert.equal(standIn.requests.length, 4);
  });

  it('gives up after maxRetries with an error naming provider, model, host, status and body', async () => {
    standIn.script({ status: 503, body: 'overloaded' }, { status: 503, body: 'overloaded' }, { status: 503, body: 'overloaded' });
    const err = await failure(ollama({ maxRetries: 2 }));
    assert.equal(standIn.requests.length, 3);
    assert.equal(err.message, `ollama embedding model "nomic-embed-text" at ${standIn.url}: HTTP 503 Service Unavailable: overloaded (3 attempts)`);
    assert.equal(err.upstreamStatus, 503);
    assert.equal(err.status, 502, "API callers get a 502: the upstream failed");
  });

  it('does not retry a 400', async () => {
    standIn.script({ status: 400, body: { error: 'model "nope" not found' } });
    const err = await failure(ollama({}, 'nope'));
    assert.equal(standIn.requests.length, 1);
    assert.match(err.message, /^ollama embedding model "nope" at http:\/\/127\.0\.0\.1:\d+: HTTP 400 Bad Request: \{"error":"model \\"nope\\" not found"\} \(1 attempt\)$/);
  });

  it('times out a slow answer, retrying it as transient', async () => {
    standIn.script({ delayMs: 4_000 }, { delayMs: 4_000 });
    const started = performance.now();
    const err = await failure(openai({ timeoutMs: 200, maxRetries: 1 }));
    assert.match(err.message, /^openai embedding model "text-embedding-3-small" at http:\/\/127\.0\.0\.1:\d+: no answer within 200 ms \(2 attempts\)$/);
    assert.equal(standIn.requests.length, 2);
    assert.ok(performance.now() - started < 5_000, 'the timeout did not cut the wait short (without it: 8 s)');
  });

  it('stops at once when the caller aborts, without retrying', async () => {
    standIn.script({ delayMs: 3_000 });
    const controller = new AbortController();
    const pending = ollama().embed(['slow'], controller.signal);
    await until(() => standIn.requests.length === 1, 'the request to reach the stand-in');
    controller.abort(new Error('job cancelled'));
    await assert.rejects(pending, /^Error: job cancelled$/);
    assert.equal(standIn.requests.length, 1);
  });

  it('rejects a wrong dimension inside an answer and a change of dimension between answers', async () => {
    standIn.script({ dims: [8, 8, 7] });
    let err = await failure(ollama(), ['a', 'b', 'c']);
    assert.match(err.message, /vector 2 of the answer has 7 dimensions where 8 were expected/);

    const provider = openai();
    await provider.embed(['first']);
    standIn.script({ dims: 16 });
    err = await failure(provider);
    assert.match(err.message, /^openai embedding model "text-embedding-3-small" at .*: vector 0 of the answer has 16 dimensions where 8 were expected$/);
  });

  it('rejects an answer with too few vectors or no vectors at all', async () => {
    standIn.script({ status: 200, body: { embeddings: [[1, 2]] } });
    assert.match((await failure(ollama(), ['a', 'b'])).message, /sent 2 texts but got 1 vectors back/);
    standIn.script({ status: 200, body: { object: 'list' } });
    assert.match((await failure(openai())).message, /the answer has no "data" array/);
  });

  it('keeps credentials out of errors: URL passwords become Basic auth, an echoed API key is masked', async () => {
    const withPassword = standIn.url.replace('http://', 'http://embed:s3cret@');
    standIn.script({ status: 401, body: 'who are you' });
    const err = await failure(createProvider({ provider: 'proxied' }, settings({ providers: { proxied: endpoint('proxied', 'ollama', withPassword) } })));
    assert.equal(standIn.requests[0]!.headers.authorization, `Basic ${Buffer.from('embed:s3cret').toString('base64')}`);
    assert.ok(!err.message.includes('s3cret'), err.message);
    assert.ok(err.message.includes(`at ${standIn.url}:`), err.message);

    standIn.script({ status: 401, body: { error: 'invalid key sk-secret-999' } });
    const echoed = await failure(openai({}, { key: 'sk-secret-999' }));
    assert.ok(!echoed.message.includes('sk-secret-999') && echoed.message.includes('invalid key ***'), echoed.message);
  });

  it('names the cause when the server cannot be reached', async () => {
    const closed = await startLlmStandIn();
    await closed.close();
    const err = await failure(createProvider({ provider: 'ollama' }, settings({ providers: { ollama: endpoint('ollama', 'ollama', closed.url) }, maxRetries: 1 })));
    assert.match(err.message, /^ollama embedding model "nomic-embed-text" at http:\/\/127\.0\.0\.1:\d+: request failed: fetch failed \(ECONNREFUSED\) \(2 attempts\)$/);
  });
});

describe('provider choice and the per-index model guard', () => {
  const recorded = { provider: 'local', kind: 'local', model: 'use-lite-512', dims: 512, normalized: true } as const;
  const providers = { ...DEFAULT_PROVIDER_SETTINGS.providers, gpu: endpoint('gpu', 'ollama', 'http://gpu-host:11434') };

  it('accepts the recorded kind and model, with or without naming it, from any provider name of that kind', () => {
    assert.doesNotThrow(() => assertSameModel(recorded, { provider: 'local' }, providers));
    assert.doesNotThrow(() => assertSameModel(recorded, { provider: 'local', model: 'use-lite-512' }, providers));
    // a manifest written before named providers has no kind: its provider name is the kind
    assert.doesNotThrow(() => assertSameModel({ provider: 'ollama', model: 'nomic-embed-text', dims: 768 }, { provider: 'gpu' }, providers));
  });

  it('refuses another model or kind with a ConflictError naming both', () => {
    assert.throws(
      () => assertSameModel(recorded, { provider: 'ollama', model: 'nomic-embed-text' }, providers),
      (err: unknown) =>
        err instanceof ConflictError &&
        err.status === 409 &&
        err.message.includes('local (local) model "use-lite-512"') &&
        err.message.includes('ollama (ollama) model "nomic-embed-text"'),
    );
    assert.throws(
      () => assertSameModel({ provider: 'openai', kind: 'openai', model: 'text-embedding-3-small', dims: 1536 }, { provider: 'openai', model: 'text-embedding-3-large' }, providers),
      /openai \(openai\) model "text-embedding-3-small".*openai \(openai\) model "text-embedding-3-large"/,
    );
  });

  it('refuses an unknown local model, an unconfigured provider name (byte-wise, no case folding) or a bad setting', () => {
    assert.throws(() => createProvider({ provider: 'local', model: 'bge-small' }, settings()), BadRequestError);
    for (const name of ['cohere', 'OpenAI', 'ollama\u200b', '\u212Aey', '__proto__', 'constructor', 'toString', '']) {
      assert.throws(
        () => createProvider({ provider: name }, settings()),
        (e: unknown) => e instanceof BadRequestError && /is not configured on this server .*LAKEHOUSE_EMBED_PROVIDER_/.test(e.message),
        name,
      );
    }
    assert.throws(() => createProvider({ provider: 'local' }, settings({ localThreads: 0 })), /localThreads must be a positive integer/);
  });

  it('reads named providers from the environment: kind, URL, key; refuses bad ones naming the variable, never the value', () => {
    const ok = readNamedEndpoints(
      { LAKEHOUSE_EMBED_PROVIDER_GPU_BOX: 'ollama:http://gpu1:11434', LAKEHOUSE_EMBED_PROVIDER_CLOUD: 'openai:https://api.example.com/v1', LAKEHOUSE_EMBED_PROVIDER_CLOUD_KEY: 'sk-cloud-key', OTHER: 'x' },
      'LAKEHOUSE_EMBED_PROVIDER_',
      EMBED_PROVIDER_KINDS,
    );
    assert.deepEqual(ok.problems, []);
    assert.deepEqual(ok.endpoints, {
      gpu_box: { name: 'gpu_box', kind: 'ollama', url: 'http://gpu1:11434', variable: 'LAKEHOUSE_EMBED_PROVIDER_GPU_BOX' },
      cloud: { name: 'cloud', kind: 'openai', url: 'https://api.example.com/v1', key: 'sk-cloud-key', variable: 'LAKEHOUSE_EMBED_PROVIDER_CLOUD' },
    });
    const bad = {
      LAKEHOUSE_EMBED_PROVIDER_A: 'cohere:https://x',
      LAKEHOUSE_EMBED_PROVIDER_B: 'openai:ftp://u:pw-b@host',
      LAKEHOUSE_EMBED_PROVIDER_C: 'https://host-c',
      LAKEHOUSE_EMBED_PROVIDER_D: 'openai:https://host-d/?token=pw-d',
      LAKEHOUSE_EMBED_PROVIDER_lower: 'ollama:http://x',
      LAKEHOUSE_EMBED_PROVIDER_E_KEY: 'orphan-key',
    };
    const { problems } = readNamedEndpoints(bad, 'LAKEHOUSE_EMBED_PROVIDER_', EMBED_PROVIDER_KINDS);
    assert.equal(problems.length, 6, problems.join('\n'));
    for (const v of Object.keys(bad)) assert.ok(problems.some((p) => p.startsWith(`${v}:`)), v);
    assert.ok(!problems.join('\n').includes('pw-'), problems.join('\n'));
    assert.throws(() => loadConfig({ LAKEHOUSE_EMBED_PROVIDER_LOCAL: 'ollama:http://x' }), (e: unknown) => e instanceof ConfigError && /built-in offline provider/.test(e.message));
    const config = loadConfig({ LAKEHOUSE_EMBED_PROVIDER_OPENAI: 'ollama:http://replaced:11434', OPENAI_API_KEY: 'sk-builtin' });
    assert.deepEqual(config.embedding.providers['openai'], { name: 'openai', kind: 'ollama', url: 'http://replaced:11434', variable: 'LAKEHOUSE_EMBED_PROVIDER_OPENAI' });
    assert.deepEqual(Object.keys(config.embedding.providers).sort(), ['local', 'ollama', 'openai']);
  });
});
