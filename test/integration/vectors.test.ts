/**
 * Vector indexes end to end, over a real socket against real Redis, real DuckDB and real workers
 * (ingest sandboxed, embed and refresh in this process): embed fans out into shard child jobs,
 * semantic search ranks a corpus with known answers, hybrid search never leaks a row outside its
 * filter (exact and HNSW plans), readers and masked PII, the index registry, refresh after a
 * replace (added / changed / deleted docs, a no-op second refresh, a generation switch under
 * continuous searches), on_append refreshes, two models side by side, provider failures, and a
 * worker force-closed mid-embed leaving neither duplicate nor missing vectors.
 *
 * The offline `local` provider (USE lite, 512-d) embeds the topic corpora. Parts that need many
 * chunks or control over timing use the `openai` provider pointed at the local stand-in
 * (test/helpers/llm-stand-in.ts, hash vectors, no meaning): the 600-document corpus that reaches
 * the filtered-HNSW plan, the provider failure scripts and the kill test (slowed answers).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Job, Queue } from 'bullmq';
import { startApi, type RunningApi } from '../../api/server.ts';
import { loadConfig, type Config } from '../../shared/config.ts';
import { workerContext } from '../../workers/context.ts';
import { startWorkers, type RunningWorkers } from '../../workers/runner.ts';
import { sqlString, withDuckDB } from '../helpers/duckdb.ts';
import { csvText, testEnv, waitFor, type CsvValue, type TestEnv } from '../helpers/env.ts';
import { assertProblem, call, completedJob, finishedJob, okJson } from '../helpers/http.ts';
import { assertNoSandboxChildrenLeft, silentLog } from '../helpers/jobs.ts';
import { standInVector, startLlmStandIn, type LlmStandIn } from '../helpers/llm-stand-in.ts';

const ADMIN = 'admin-key-vectors-3c9e1a7f';
const WRITER = 'writer-key-vectors-8b2d4f60';
const READER = 'reader-key-vectors-1e5a9c3d';
/** Chunks per shard: the ~50-document corpora fan out into several shard jobs. */
const SHARD_CHUNKS = 15;
const STAND_IN_DIMS = 64;
const STAND_IN_MODEL = 'stand-in-embed';
/**
 * Quick stall detection for the kill test's workers (a lock lapses 3 s after its last renewal).
 * Every worker of this file checks for stalled jobs each second: BullMQ skips a check while the
 * queue's stalled-check key, set with the interval of whichever worker checked last, is alive,
 * so one worker with the default 30 s would delay the takeover by up to 30 s.
 */
const FAST_STALL = { lockDuration: 3_000, stalledInterval: 1_000 };
const STALL_CHECK_EACH_SECOND = { stalledInterval: 1_000 };
const FILTER = "state = 'OH' AND years > 5";

// ---------------------------------------------------------------------------------------------
// corpora

interface Doc {
  id: string;
  topic: string;
  body: string;
  state: string;
  years: number;
}

/** Six paraphrases per topic; a query about a topic must rank that topic's documents first. */
const TOPICS: Record<string, string[]> = {
  bread: [
    'Knead the bread dough for ten minutes until it turns smooth and elastic, then let it rise.',
    'A sourdough loaf needs a lively starter, flour, water and salt, plus a long slow proof.',
    'Bake the loaf in a very hot oven so the crust turns golden brown and crackly.',
    'Yeast makes bread dough rise by turning sugar into carbon dioxide bubbles.',
    'Whole wheat flour gives homemade bread a denser crumb and a nutty taste.',
    'Let freshly baked bread cool on a wire rack before you slice the loaf.',
  ],
  football: [
    'The striker scored a late goal and the football club won the league match.',
    'Our soccer team trains twice a week on passing, shooting and defending corners.',
    'The goalkeeper saved a penalty kick in the final minute of the football game.',
    'Fans filled the stadium to watch the championship soccer final.',
    'The referee showed a red card after a dangerous tackle on the midfielder.',
    'The coach changed the team formation to play with three strikers up front.',
  ],
  passwords: [
    'To reset your password, click the forgot password link on the login page.',
    'Use a long unique password for every account and keep it in a password manager.',
    'Turn on two-factor authentication so a stolen password alone cannot unlock your account.',
    'If you cannot log in, request a password reset email and follow the link.',
    'Never share your login credentials with anyone, even someone claiming to be support.',
    'Your account is locked after five failed sign-in attempts with a wrong password.',
  ],
  weather: [
    'Heavy rain and thunderstorms are expected across the region tomorrow afternoon.',
    'The forecast calls for strong winds, falling temperatures and a chance of snow.',
    'A hurricane warning was issued as the storm approached the coast.',
    'Sunny skies and warm temperatures will continue through the weekend.',
    'Meteorologists track weather fronts with radar and satellite images.',
    'Flood warnings were issued after days of torrential rainfall.',
  ],
  dogs: [
    'Walk your dog every day and give the puppy plenty of time to play.',
    'Puppies need vaccinations and regular checkups at the veterinarian.',
    'Train your dog to sit and stay by rewarding it with small treats.',
    'A loyal dog wags its tail and barks happily when its owner comes home.',
    "Brush your dog's fur weekly and trim its nails to keep it healthy.",
    'Adopting a rescue dog from the animal shelter gives a pet a new home.',
  ],
  stocks: [
    'The stock market fell sharply as investors sold shares after the earnings report.',
    'Diversify your investment portfolio across stocks, bonds and index funds.',
    'Share prices rallied on Wall Street after the central bank cut interest rates.',
    'Long-term investors buy index funds and hold them through market downturns.',
    "The company's stock price doubled after strong quarterly profits.",
    "Dividends pay shareholders a part of the company's earnings each quarter.",
  ],
  guitar: [
    'Tune your guitar strings before you practice chords and scales.',
    'Learning to play the guitar starts with simple chords like G, C and D.',
    'The band played loud electric guitar solos at the rock concert.',
    'Replace old guitar strings when they sound dull or go out of tune.',
    'Practice finger picking on an acoustic guitar for fifteen minutes a day.',
    'The guitarist strummed a song while the singer performed on stage.',
  ],
  space: [
    'The telescope revealed the rings of Saturn and the moons of Jupiter.',
    'Astronauts aboard the space station orbit the Earth every ninety minutes.',
    'A rocket launched the satellite into orbit around the planet.',
    'Astronomers discovered a new exoplanet circling a distant star.',
    'On a clear night you can see the Milky Way galaxy and shooting stars.',
    "The Mars rover sent back photos of the red planet's rocky surface.",
  ],
};

const QUERIES: { query: string; topic: string }[] = [
  { query: 'How do I bake a loaf of homemade bread?', topic: 'bread' },
  { query: 'Who won the soccer game last night?', topic: 'football' },
  { query: "I forgot my password and can't sign in", topic: 'passwords' },
  { query: "Will it rain this weekend? What's the forecast?", topic: 'weather' },
  { query: 'How should I care for my new puppy?', topic: 'dogs' },
  { query: 'Is now a good time to invest in stocks?', topic: 'stocks' },
  { query: 'What chords should a beginner learn on guitar?', topic: 'guitar' },
  { query: 'Which planets can you see through a telescope?', topic: 'space' },
];

const STATES = ['OH', 'CA', 'NY', 'TX'];

function notesCorpus(): Doc[] {
  return Object.entries(TOPICS).flatMap(([topic, bodies], t) =>
    bodies.map((body, j) => {
      const i = t * bodies.length + j;
      return { id: `${topic}-${j + 1}`, topic, body, state: STATES[i % 4]!, years: (i * 7) % 13 };
    }),
  );
}

/** The second version of the notes: 3 added, 2 changed (to another topic), 2 deleted. */
const CHANGED: Record<string, { topic: string; body: string }> = {
  'bread-5': { topic: 'space', body: 'A comet with a glowing tail crossed the night sky near the constellation Orion.' },
  'dogs-4': { topic: 'stocks', body: 'Bond yields climbed as traders priced in another interest rate hike by the central bank.' },
};
const DELETED = ['football-5', 'guitar-3'];
const ADDED: Doc[] = [
  { id: 'weather-7', topic: 'weather', body: 'A tornado watch is in effect until midnight as a violent storm line moves east.', state: 'OH', years: 9 },
  { id: 'space-7', topic: 'space', body: 'The new space telescope photographed a nebula where young stars are being born.', state: 'CA', years: 2 },
  { id: 'passwords-7', topic: 'passwords', body: 'A passkey replaces your password with a cryptographic key stored on your phone.', state: 'NY', years: 11 },
];

function notesV2(v1: Doc[]): Doc[] {
  const kept = v1.filter((d) => !DELETED.includes(d.id)).map((d) => (CHANGED[d.id] ? { ...d, ...CHANGED[d.id] } : d));
  return [...kept, ...ADDED];
}

/** 600 ledger lines for the stand-in provider: most are in Ohio and older than five years. */
function ledgerCorpus(n = 600): Doc[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `l${i}`,
    topic: 'ledger',
    body: `Ledger line ${i}: invoice ${1000 + i} reconciled against account ${i % 37}.`,
    state: i % 10 < 9 ? 'OH' : STATES[1 + (i % 3)]!,
    years: (i % 12) + 1,
  }));
}

const matchesFilter = (d: Doc) => d.state === 'OH' && d.years > 5;

function docsCsv(docs: Doc[]): string {
  const rows: CsvValue[][] = [['id', 'topic', 'body', 'state', 'years'], ...docs.map((d) => [d.id, d.topic, d.body, d.state, d.years])];
  return csvText(rows);
}

// ---------------------------------------------------------------------------------------------
// set-up and small helpers

let env: TestEnv;
let api: RunningApi;
let workers: RunningWorkers;
let standIn: LlmStandIn;
/** A second server, configured as the named provider `other` (LAKEHOUSE_EMBED_PROVIDER_OTHER). */
let otherStandIn: LlmStandIn;
let embedQueue: Queue;
/** The notes as the dataset holds them now (v1, then v2 after the refresh test's replace). */
let notes: Doc[] = notesCorpus();

const ENV_EXTRA = ['LAKEHOUSE_EMBED_SHARD_CHUNKS', 'LAKEHOUSE_OPENAI_URL', 'LAKEHOUSE_EMBED_THREADS', 'LAKEHOUSE_EMBED_PROVIDER_OTHER'] as const;

function apiConfig(): Config {
  return loadConfig({
    ...process.env, // REDIS_URL, LAKEHOUSE_DATA_DIR, LAKEHOUSE_QUEUE_PREFIX (testEnv), the embedding settings (before)
    LAKEHOUSE_API_KEYS: `${ADMIN}:admin,${WRITER}:writer,${READER}:reader`,
    LAKEHOUSE_HOST: '127.0.0.1',
    PORT: '0',
  });
}

const get = (p: string, key = READER) => call(api.url, p, { key, timeoutMs: 30_000 });
const post = (p: string, body: unknown, key = WRITER) => call(api.url, p, { method: 'POST', body, key, timeoutMs: 30_000 });

const ok = okJson;

// jobs are polled as a writer: a failure's reason is not for readers
const finished = (location: string, timeoutMs?: number) => finishedJob((p) => get(p, WRITER), location, timeoutMs);
const completed = (location: string, timeoutMs?: number) => completedJob((p) => get(p, WRITER), location, timeoutMs);

async function enqueue(queue: string, body: unknown): Promise<{ id: string; location: string }> {
  const res = await post(`/jobs/${queue}`, body);
  const json = ok(res, `POST /jobs/${queue}`, 202);
  return { id: json.id, location: res.headers.get('location')! };
}

async function upload(dataset: string, docs: Doc[], mode: 'replace' | 'append' = 'replace'): Promise<any> {
  const res = await call(api.url, `/datasets/${dataset}/upload?mode=${mode}`, {
    method: 'POST', key: WRITER, body: docsCsv(docs), headers: { 'content-type': 'text/csv' },
  });
  ok(res, `upload ${dataset}`, 202);
  return (await completed(res.headers.get('location')!)).result;
}

interface EmbedBody {
  index: string;
  dataset: string;
  id_column?: string;
  text_column?: string;
  provider?: string;
  model?: string;
  url?: string;
  refresh_policy?: 'manual' | 'on_append';
}

async function embed(body: EmbedBody): Promise<{ id: string; location: string }> {
  return enqueue('embed', { id_column: 'id', text_column: 'body', ...body });
}

async function search(index: string, body: Record<string, unknown>, key = READER): Promise<any> {
  return ok(await post(`/indexes/${index}/search`, body, key), `search ${index} ${JSON.stringify(body).slice(0, 120)}`);
}

const standInBody = { provider: 'openai' as const, model: STAND_IN_MODEL };

let contactsReady: Promise<void> | undefined;

/** `contacts`, whose `email` column is flagged as PII (masked for readers), embedded by its emails. */
function uploadContacts(): Promise<void> {
  contactsReady ??= (async () => {
    const people = ['ada', 'grace', 'alan', 'edsger', 'barbara', 'donald'];
    const rows: CsvValue[][] = [['id', 'email', 'note'], ...people.map((p, i) => [`p${i}`, `${p}@example.com`, `asked about invoice ${i}`])];
    const res = await call(api.url, '/datasets/contacts/upload?mode=replace', { method: 'POST', key: WRITER, body: csvText(rows), headers: { 'content-type': 'text/csv' } });
    ok(res, 'upload contacts', 202);
    await completed(res.headers.get('location')!);
    const manifest = ok(await get('/datasets/contacts'), 'GET /datasets/contacts');
    assert.ok(manifest.pii.some((f: any) => f.column === 'email'), `email is flagged: ${JSON.stringify(manifest.pii)}`);
    await completed((await embed({ index: 'contacts_idx', dataset: 'contacts', text_column: 'email', ...standInBody })).location);
  })();
  return contactsReady;
}

/** An embed of `tiny` whose model answers the dimension probe, then refuses every batch (HTTP 400). */
async function embedRefusedByShard(index: string, model: string): Promise<any> {
  standIn.reset();
  const refusal = { status: 400, body: { error: { message: `The model \`${model}\` cannot embed this input` } } };
  standIn.script({}, ...Array.from({ length: 10 }, () => refusal));
  try {
    return await finished((await embed({ index, dataset: 'tiny', provider: 'openai', model })).location, 60_000);
  } finally {
    standIn.reset();
  }
}

function byId(docs: Doc[]): Map<string, Doc> {
  return new Map(docs.map((d) => [d.id, d]));
}

function labelsFile(index: string, generation: number): string {
  return path.join(env.dataDir, 'indexes', index, `gen-${generation}`, 'labels.parquet');
}

// ---------------------------------------------------------------------------------------------

describe('vector indexes', { timeout: 180_000 }, () => {
  const saved = new Map(ENV_EXTRA.map((k) => [k, process.env[k]]));

  before(async () => {
    standIn = await startLlmStandIn({ dims: STAND_IN_DIMS });
    // read by every config of this process: the workers' context, the API, the runner
    process.env['LAKEHOUSE_EMBED_SHARD_CHUNKS'] = String(SHARD_CHUNKS);
    process.env['LAKEHOUSE_OPENAI_URL'] = standIn.url;
    otherStandIn = await startLlmStandIn({ dims: STAND_IN_DIMS });
    process.env['LAKEHOUSE_EMBED_PROVIDER_OTHER'] = `openai:${otherStandIn.url}`;
    process.env['LAKEHOUSE_EMBED_THREADS'] = '2';
    env = await testEnv();
    env.defer(() => standIn.close());
    env.defer(() => otherStandIn.close());
    env.defer(async () => {
      // the processors' shared context (embed and refresh run in this process) holds a connection
      const ctx = await workerContext();
      ctx.redis.disconnect();
    });
    embedQueue = new Queue('embed', { connection: env.redis, prefix: env.prefix });
    env.defer(() => embedQueue.close());
    workers = await startWorkers({ config: env.config, queues: ['ingest', 'embed', 'refresh'], concurrency: 2, tuning: STALL_CHECK_EACH_SECOND, log: silentLog });
    env.defer(() => workers.close(5_000));
    api = await startApi(apiConfig(), silentLog);
    env.defer(() => api.close());
  });

  after(async () => {
    try {
      await env?.cleanup();
      await assertNoSandboxChildrenLeft(); // the sandboxed ingest processors
    } finally {
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('embed fans out into shard child jobs, and a query ranks its own topic first', async () => {
    const ingested = await upload('notes', notes);
    assert.equal(ingested.rows, notes.length);

    const { id, location } = await embed({ index: 'notes_idx', dataset: 'notes' });
    const done = await completed(location);
    assert.deepEqual({ ...done.result, seconds: 0 }, { index: 'notes_idx', generation: 1, docs: 48, chunks: 48, dims: 512, seconds: 0 });

    // the children: one shard job per 15 chunks, each completed, their vectors adding up
    const shards = Math.ceil(48 / SHARD_CHUNKS);
    const parent = (await Job.fromId(embedQueue, id))!;
    const deps = await parent.getDependencies();
    assert.equal(Object.keys(deps.processed ?? {}).length, shards, `processed children: ${JSON.stringify(deps)}`);
    assert.deepEqual(deps.unprocessed ?? [], []);
    const values = Object.values(await parent.getChildrenValues()) as { shard: number; rows: number; file: string }[];
    assert.deepEqual(values.map((v) => v.shard).sort(), Array.from({ length: shards }, (_, s) => s));
    assert.equal(values.reduce((sum, v) => sum + v.rows, 0), 48);
    for (let s = 0; s < shards; s++) {
      assert.equal(await embedQueue.getJobState(`embed-${id}-shard-${s}`), 'completed', `shard ${s}`);
    }

    const topicOf = byId(notes);
    for (const { query, topic } of QUERIES) {
      const res = await search('notes_idx', { query, k: 5 });
      assert.equal(res.plan, 'hnsw');
      assert.equal(res.generation, 1);
      assert.equal(res.hits.length, 5);
      const topics = res.hits.map((h: any) => topicOf.get(h.doc_id)?.topic);
      assert.equal(topics[0], topic, `"${query}" ranks ${topics.join(', ')}`);
      assert.ok(topics.filter((t: string) => t === topic).length >= 4, `"${query}": top 5 ${topics.join(', ')}`);
      for (const h of res.hits) assert.equal(h.text, topicOf.get(h.doc_id)!.body, 'a hit carries its chunk text');
      const scores = res.hits.map((h: any) => h.score);
      assert.deepEqual(scores, [...scores].sort((a, b) => b - a), 'best first');
    }
  });

  it('the registry shows source, model, chunking, HNSW config, generation and build stats', async () => {
    const list = ok(await get('/indexes'), 'GET /indexes');
    const listed = list.indexes.find((i: any) => i.name === 'notes_idx');
    assert.ok(listed, JSON.stringify(list));
    const one = ok(await get('/indexes/notes_idx'), 'GET /indexes/notes_idx');
    for (const m of [listed, one]) {
      assert.equal(m.bucket, 'primary');
      assert.deepEqual(m.source, { dataset: 'notes', id_column: 'id', text_column: 'body' });
      assert.deepEqual(m.embedding, { provider: 'local', kind: 'local', model: 'use-lite-512', dims: 512, normalized: true });
      assert.deepEqual(m.chunking, { size: 1000, overlap: 150 });
      assert.deepEqual(m.hnsw, { m: 16, ef_construction: 200, ef_search: 100 });
      assert.equal(m.refresh_policy, 'manual');
      assert.equal(m.generation, 1);
      assert.equal(m.stale, false);
      assert.equal(m.stale_since, null);
      assert.deepEqual(m.stats, { docs: 48, chunks: 48 });
      const gen = m.generations.find((g: any) => g.id === 1);
      assert.equal(gen.count, 48);
      assert.equal(gen.deleted, 0);
      assert.equal(gen.build.m, 16);
      assert.equal(gen.build.ef_construction, 200);
      assert.ok(gen.build.seconds >= 0);
      assert.equal(gen.vectors_files.length, Math.ceil(48 / SHARD_CHUNKS));
    }
    assertProblem(await get('/indexes/no_such_index'), 404, 'unknown index');
    assertProblem(await post('/indexes/no_such_index/search', { query: 'x' }), 404, 'search of an unknown index');
    assertProblem(await post('/indexes/notes_idx/search', { query: 'x', vector: [1] }), 400, 'query and vector');
    assertProblem(await post('/indexes/notes_idx/search', { vector: [1, 2, 3] }), 400, 'a vector of the wrong dimension');
  });

  it('hybrid search with a selective filter answers exactly, never outside the filter; bad filters are 400', async () => {
    const source = byId(notes);
    const expected = notes.filter(matchesFilter).map((d) => d.id).sort();
    assert.ok(expected.length > 0 && expected.length < 10, `the fixture selects a handful: ${expected}`);
    for (const key of [READER, WRITER]) {
      for (const { query } of QUERIES.slice(0, 3)) {
        const res = await search('notes_idx', { query, k: 10, filter: FILTER }, key);
        assert.equal(res.plan, 'exact');
        assert.equal(res.matched_docs, expected.length);
        // exact over the matched chunks: all of them come back when k exceeds their number
        assert.deepEqual(res.hits.map((h: any) => h.doc_id).sort(), expected);
        for (const h of res.hits) assert.ok(matchesFilter(source.get(h.doc_id)!), `${h.doc_id} is outside the filter`);
      }
    }
    const none = await search('notes_idx', { query: 'bread', k: 5, filter: "state = 'ZZ'" });
    assert.deepEqual(none.hits, []);
    assert.equal(none.matched_docs, 0);

    const bad = [
      { filter: "id IN (SELECT column0 FROM read_csv('/etc/passwd'))", key: WRITER, what: 'a filter reading /etc/passwd (writer)' },
      { filter: "id IN (SELECT column0 FROM read_csv('/etc/passwd'))", key: READER, what: 'a filter reading /etc/passwd (reader)' },
      { filter: 'no_such_column > 3', key: READER, what: 'an unknown column' },
      { filter: "1=1); DROP VIEW notes; SELECT (1", key: WRITER, what: 'a second statement' },
    ];
    for (const { filter, key, what } of bad) {
      assertProblem(await post('/indexes/notes_idx/search', { query: 'bread', filter }, key), 400, what);
    }
    // the dataset is still there and still searchable after all that
    assert.equal((await search('notes_idx', { query: 'bread', k: 3, filter: FILTER })).plan, 'exact');
  });

  it('hybrid search with a broad filter takes the filtered-HNSW plan and still keeps to the filter (stand-in provider, 600 docs)', async () => {
    const ledger = ledgerCorpus();
    const source = byId(ledger);
    const inside = ledger.filter(matchesFilter);
    assert.ok(inside.length > 256, `the broad filter must match more than the exact plan's floor: ${inside.length}`);
    await upload('ledger', ledger);
    const { location } = await embed({ index: 'ledger_idx', dataset: 'ledger', ...standInBody });
    const done = await completed(location, 90_000);
    assert.equal(done.result.chunks, 600);
    assert.equal(done.result.dims, STAND_IN_DIMS);

    const target = inside[17]!;
    const outsider = ledger.find((d) => !matchesFilter(d))!;
    for (const doc of [target, outsider]) {
      const res = await search('ledger_idx', { vector: standInVector(doc.body, STAND_IN_DIMS), k: 10, filter: FILTER });
      assert.equal(res.plan, 'hnsw-filtered');
      assert.equal(res.matched_docs, inside.length);
      assert.equal(res.hits.length, 10, 'widening finds k matching hits');
      for (const h of res.hits) assert.ok(matchesFilter(source.get(h.doc_id)!), `${h.doc_id} is outside the filter`);
      if (doc === target) {
        assert.equal(res.hits[0].doc_id, target.id, 'its own vector finds the document');
        assert.ok(res.hits[0].score > 0.999, `score ${res.hits[0].score}`);
      } else {
        assert.ok(!res.hits.some((h: any) => h.doc_id === outsider.id), 'a document outside the filter is never returned, even for its own vector');
      }
    }
    // unfiltered, the outsider's own vector finds it
    const plain = await search('ledger_idx', { vector: standInVector(outsider.body, STAND_IN_DIMS), k: 3 });
    assert.equal(plain.plan, 'hnsw');
    assert.equal(plain.hits[0].doc_id, outsider.id);

    // the same index with a selective filter: exact
    const narrow = "state = 'CA' AND years > 5";
    const few = ledger.filter((d) => d.state === 'CA' && d.years > 5);
    const res = await search('ledger_idx', { vector: standInVector(outsider.body, STAND_IN_DIMS), k: 10, filter: narrow });
    assert.equal(res.plan, 'exact');
    assert.equal(res.matched_docs, few.length);
    assert.equal(res.hits.length, Math.min(10, few.length));
    for (const h of res.hits) assert.equal(source.get(h.doc_id)!.state, 'CA');
  });

  it('readers search too; a filter on a masked PII column sees only the mask', async () => {
    await uploadContacts();
    const res = await search('contacts_idx', { vector: standInVector('This person asked about invoices.', STAND_IN_DIMS), k: 3 }, READER);
    assert.equal(res.hits.length, 3);
    const probe = await search('contacts_idx', { vector: standInVector('x', STAND_IN_DIMS), k: 3, filter: "email = 'ada@example.com'" }, READER);
    assert.equal(probe.matched_docs, 0, 'a reader cannot select rows by a masked value');
    const writer = await search('contacts_idx', { vector: standInVector('x', STAND_IN_DIMS), k: 3, filter: "email = 'ada@example.com'" }, WRITER);
    assert.equal(writer.matched_docs, 1);
  });

  it('a reader never gets a masked PII column back as hit text', async () => {
    await uploadContacts();
    const res = await search('contacts_idx', { query: 'ada@example.com', k: 5 }, READER);
    for (const h of res.hits) assert.doesNotMatch(h.text, /@example\.com/, `a reader got ${JSON.stringify(h)}`);
  });

  it('two models side by side over one dataset; embedding another model into an index is refused', async () => {
    const { location } = await embed({ index: 'notes_std', dataset: 'notes', ...standInBody });
    const done = await completed(location);
    assert.equal(done.result.dims, STAND_IN_DIMS);

    const list = ok(await get('/indexes'), 'GET /indexes').indexes;
    const local = list.find((i: any) => i.name === 'notes_idx');
    const remote = list.find((i: any) => i.name === 'notes_std');
    assert.deepEqual(local.embedding, { provider: 'local', kind: 'local', model: 'use-lite-512', dims: 512, normalized: true });
    // the provider's NAME is recorded, never its URL: shards, refreshes and query embeddings look the URL up in the server's config
    assert.deepEqual(remote.embedding, { provider: 'openai', kind: 'openai', model: STAND_IN_MODEL, dims: STAND_IN_DIMS, normalized: true });
    assert.deepEqual(remote.source, local.source);

    // the stand-in's hash vectors match only identical text: the query text finds its document
    const doc = notes[20]!;
    const res = await search('notes_std', { query: doc.body, k: 3 });
    assert.equal(res.hits[0].doc_id, doc.id);
    assert.ok(res.hits[0].score > 0.999);

    const conflict = await finished((await embed({ index: 'notes_idx', dataset: 'notes', ...standInBody })).location);
    assert.equal(conflict.state, 'failed');
    assert.equal(conflict.attempts, 1, 'a conflict is not retried');
    assert.match(conflict.failed_reason, /different models/);
    assert.match(conflict.failed_reason, /use-lite-512/);
    assert.match(conflict.failed_reason, new RegExp(STAND_IN_MODEL));
    const after = ok(await get('/indexes/notes_idx'), 'GET /indexes/notes_idx');
    assert.equal(after.generation, 1, 'the refused job changed nothing');
    assert.equal(after.embedding.model, 'use-lite-512');
  });

  it('provider errors: 500s are retried until the embed completes; a 400 fails the job naming provider and model', async () => {
    const tiny = notes.slice(0, 8);
    await upload('tiny', tiny);

    standIn.reset();
    standIn.script({ status: 500 }, { status: 500 }, { status: 500 });
    const flaky = await completed((await embed({ index: 'tiny_flaky', dataset: 'tiny', provider: 'openai', model: 'flaky-model' })).location);
    assert.equal(flaky.result.chunks, 8);
    const calls = standIn.requests.filter((r) => r.body?.model === 'flaky-model');
    assert.ok(calls.length >= 4, `three failed attempts, then answers: ${calls.length} requests`);

    // the model is refused when the index is created (the dimension probe)
    standIn.reset();
    const refusal = { status: 400, body: { error: { message: 'The model `no-such-model` does not exist' } } };
    standIn.script(...Array.from({ length: 10 }, () => refusal));
    const missing = await finished((await embed({ index: 'tiny_missing', dataset: 'tiny', provider: 'openai', model: 'no-such-model' })).location, 60_000);
    assert.equal(missing.state, 'failed');
    assert.match(missing.failed_reason, /openai/);
    assert.match(missing.failed_reason, /no-such-model/);
    assert.match(missing.failed_reason, /400/);

    // the model answers the probe, then refuses the shard's batch: the shard fails, and so does its parent
    const later = await embedRefusedByShard('tiny_later', 'refuses-later');
    assert.equal(later.state, 'failed');
    const shard = (await embedQueue.getJob(`embed-${later.id}-shard-0`))!;
    assert.equal(await shard.getState(), 'failed');
    assert.match(shard.failedReason, /openai embedding model "refuses-later" at http:\/\/127\.0\.0\.1:\d+: HTTP 400/);
    // a failed first build leaves no index behind (nothing was committed; the name is free again)
    assertProblem(await get('/indexes/tiny_later'), 404, 'the unbuilt index is gone');
  });

  it("a shard's provider failure is named in its parent's failed reason", async () => {
    const later = await embedRefusedByShard('tiny_later2', 'refuses-later-2');
    assert.equal(later.state, 'failed');
    assert.match(later.failed_reason, /openai/, `the parent's reason: ${later.failed_reason}`);
    assert.match(later.failed_reason, /refuses-later-2/, `the parent's reason: ${later.failed_reason}`);
  });

  it("an index built with a named provider embeds every shard at that provider's configured URL", async () => {
    const done = await finished((await embed({ index: 'tiny_url', dataset: 'tiny', provider: 'other', model: 'own-url' })).location);
    assert.equal(done.state, 'completed', done.failed_reason);
    const texts = otherStandIn.requests.flatMap((r) => (Array.isArray(r.body?.input) ? r.body.input : []));
    for (const d of notes.slice(0, 8)) assert.ok(texts.includes(d.body), `${d.id} was embedded by the index's own server`);
    const index = ok(await get('/indexes/tiny_url'), 'GET /indexes/tiny_url');
    assert.deepEqual(index.embedding, { provider: 'other', kind: 'openai', model: 'own-url', dims: STAND_IN_DIMS, normalized: true });
  });

  it('refresh after a replace: added, changed and deleted docs; searches switch generation without a restart; a second refresh is a no-op', async () => {
    const v2 = notesV2(notes);
    await upload('notes', v2);
    notes = v2;
    const stale = ok(await get('/indexes?stale=true'), 'GET /indexes?stale=true').indexes.map((i: any) => i.name);
    assert.ok(stale.includes('notes_idx'), `stale: ${stale}`);
    assert.ok(stale.includes('notes_std'), `stale: ${stale}`);
    assert.ok(!stale.includes('ledger_idx'), `stale: ${stale}`);
    assert.equal(ok(await get('/indexes/notes_idx'), 'GET').stale, true);

    // searches run without pause while the refresh embeds and commits
    let searching = true;
    const seen: { status: number; generation?: number; text: string }[] = [];
    const loop = (async () => {
      for (let i = 0; searching; i++) {
        const r = await post('/indexes/notes_idx/search', { query: QUERIES[i % QUERIES.length]!.query, k: 5 }, READER);
        seen.push({ status: r.status, generation: r.json?.generation, text: r.text.slice(0, 300) });
      }
    })();
    let result: any;
    try {
      const { location } = await enqueue('refresh', { index: 'notes_idx' });
      result = (await completed(location)).result;
      // one more round after the commit
      const n = seen.length;
      await waitFor(() => seen.length > n + 1, { timeoutMs: 20_000, what: 'searches after the commit' });
    } finally {
      searching = false;
      await loop;
    }
    assert.deepEqual(
      { added: result.added, changed: result.changed, deleted: result.deleted, generation: result.generation, index: result.index },
      { added: 3, changed: 2, deleted: 2, generation: 2, index: 'notes_idx' },
    );
    assert.ok(result.embedded_chunks >= 5, `embedded ${result.embedded_chunks}`);
    const failures = seen.filter((s) => s.status !== 200);
    assert.deepEqual(failures, [], 'every search during the refresh succeeded');
    const generations = seen.map((s) => s.generation!);
    assert.equal(generations[0], 1, 'the searches began before the commit');
    assert.ok(generations.every((g) => g === 1 || g === 2) && generations.every((g, i) => i === 0 || g >= generations[i - 1]!), `generations ${generations}`);
    assert.equal(generations.at(-1), 2, 'the running API serves the new generation');

    const source = byId(notes);
    const all = notes.length;
    for (const id of DELETED) {
      const old = notesCorpus().find((d) => d.id === id)!;
      const res = await search('notes_idx', { query: old.body, k: all });
      assert.equal(res.generation, 2);
      assert.ok(!res.hits.some((h: any) => DELETED.includes(h.doc_id)), `deleted ${id} is returned: ${res.hits.map((h: any) => h.doc_id)}`);
    }
    for (const [id, { body }] of Object.entries(CHANGED)) {
      const now = await search('notes_idx', { query: body, k: 3 });
      assert.equal(now.hits[0].doc_id, id, `changed ${id} is found by its new text`);
      assert.ok(now.hits[0].score > 0.99, `score ${now.hits[0].score}`);
      assert.equal(now.hits[0].text, body);
      const oldBody = notesCorpus().find((d) => d.id === id)!.body;
      const then = await search('notes_idx', { query: oldBody, k: all });
      assert.ok(!then.hits.some((h: any) => h.text === oldBody), `the old text of ${id} is gone`);
      assert.notEqual(then.hits[0].doc_id, id, `changed ${id} is not found by its old text`);
    }
    for (const doc of ADDED) {
      const res = await search('notes_idx', { query: doc.body, k: 3 });
      assert.equal(res.hits[0].doc_id, doc.id, `added ${doc.id} is found`);
    }
    // the topic queries still hold, and every hit is a live document with its current text
    for (const { query, topic } of QUERIES) {
      const res = await search('notes_idx', { query, k: 5 });
      assert.equal(source.get(res.hits[0].doc_id)?.topic, topic, `"${query}" after the refresh`);
      for (const h of res.hits) assert.equal(h.text, source.get(h.doc_id)?.body);
    }
    const m = ok(await get('/indexes/notes_idx'), 'GET');
    assert.equal(m.stale, false);
    assert.equal(m.generation, 2);
    assert.deepEqual(m.stats, { docs: all, chunks: all });
    assert.ok(!ok(await get('/indexes?stale=true'), 'GET').indexes.some((i: any) => i.name === 'notes_idx'));

    const again = (await completed((await enqueue('refresh', { index: 'notes_idx' })).location)).result;
    assert.deepEqual({ ...again, seconds: 0 }, { index: 'notes_idx', added: 0, changed: 0, deleted: 0, embedded_chunks: 0, generation: 2, rebuilt: false, seconds: 0 });
    assert.ok(again.seconds < 1, `a no-op refresh took ${again.seconds} s`);
  });

  it('on_append: an append ingest triggers a refresh by itself and the new doc becomes searchable', async () => {
    const feed = Object.values(TOPICS).map((bodies, t) => ({ id: `f${t}`, topic: '', body: bodies[0]!, state: 'OH', years: t }));
    await upload('feed', feed);
    await completed((await embed({ index: 'feed_idx', dataset: 'feed', refresh_policy: 'on_append' })).location);
    assert.equal(ok(await get('/indexes/feed_idx'), 'GET').refresh_policy, 'on_append');

    const extra: Doc = { id: 'f_new', topic: '', body: 'Volcanic ash grounded every flight as the eruption sent lava down the mountain.', state: 'TX', years: 1 };
    const appended = await upload('feed', [extra], 'append');
    const refreshId = `on-append-feed_idx-${appended.version}`;
    const job = await waitFor(
      async () => {
        const list = ok(await get('/jobs/refresh?state=completed&limit=100', WRITER), 'GET /jobs/refresh');
        return list.jobs.find((j: any) => j.data?.index === 'feed_idx' && j.result !== undefined);
      },
      { timeoutMs: 60_000, intervalMs: 200, what: 'the on_append refresh to complete' },
    );
    assert.equal(job.id, refreshId);
    assert.equal(job.result.added, 1);
    assert.equal(job.result.generation, 2);
    const res = await search('feed_idx', { query: 'a volcano erupted and flights were cancelled', k: 3 });
    assert.equal(res.generation, 2);
    assert.equal(res.hits[0].doc_id, 'f_new');
    assert.equal(ok(await get('/indexes/feed_idx'), 'GET').stale, false);
  });

  it('a worker force-closed mid-embed leaves neither duplicate nor missing vectors (stand-in provider, slowed)', async () => {
    const docs = ledgerCorpus(90).map((d) => ({ ...d, id: `c${d.id}`, body: `Crash test ${d.body}` }));
    await upload('crash', docs);
    await workers.close(10_000);

    const doomed = await startWorkers({ config: env.config, queues: ['embed'], concurrency: 2, tuning: FAST_STALL, log: silentLog });
    env.defer(() => doomed.close(100));
    standIn.reset();
    standIn.script(...Array.from({ length: 40 }, () => ({ delayMs: 700 })));
    const { id, location } = await embed({ index: 'crash_idx', dataset: 'crash', provider: 'openai', model: 'slow-model' });
    const shards = Math.ceil(90 / SHARD_CHUNKS);
    const shardIds = Array.from({ length: shards }, (_, s) => `embed-${id}-shard-${s}`);
    await waitFor(
      async () => (await embedQueue.getJobState(shardIds[0]!)) === 'active' && standIn.requests.some((r) => Array.isArray(r.body?.input) && r.body.input.length > 1),
      { timeoutMs: 30_000, what: 'a shard to be embedding' },
    );
    await doomed.close(10); // past a 10 ms deadline: forced, the running shards' locks lapse
    const states = await Promise.all(shardIds.map((s) => embedQueue.getJobState(s)));
    assert.ok(states.filter((s) => s === 'completed').length < shards, `the close came mid-embed: ${states}`);

    workers = await startWorkers({ config: env.config, queues: ['ingest', 'embed', 'refresh'], concurrency: 2, tuning: FAST_STALL, log: silentLog });
    env.defer(() => workers.close(5_000));
    const done = await completed(location, 90_000);
    assert.equal(done.result.chunks, 90);
    assert.equal(done.result.generation, 1);
    const reRun = await Promise.all(shardIds.map(async (s) => (await embedQueue.getJob(s))?.processedBy));
    assert.ok(reRun.includes(workers.record.id), `the new workers took over shards: ${reRun}`);
    for (const s of shardIds) assert.equal(await embedQueue.getJobState(s), 'completed', s);

    const m = ok(await get('/indexes/crash_idx'), 'GET /indexes/crash_idx');
    const gen = m.generations.find((g: any) => g.id === m.generation);
    const vectorFiles = gen.vectors_files.map((f: string) => path.join(env.dataDir, 'indexes', 'crash_idx', f));
    const counts = await withDuckDB(async (db) => {
      const [labels] = await db.all(`SELECT count(*) AS n, count(DISTINCT chunk_id) AS chunks, count(DISTINCT doc_id) AS docs FROM read_parquet(${sqlString(labelsFile('crash_idx', gen.id))})`);
      const [vectors] = await db.all(`SELECT count(*) AS n, count(DISTINCT chunk_id) AS chunks FROM read_parquet([${vectorFiles.map(sqlString).join(', ')}])`);
      const ids = await db.all(`SELECT DISTINCT doc_id FROM read_parquet(${sqlString(labelsFile('crash_idx', gen.id))}) ORDER BY doc_id`);
      return { labels: labels!, vectors: vectors!, ids: ids.map((r) => String(r['doc_id'])) };
    });
    assert.deepEqual(
      { labels: Number(counts.labels['n']), chunks: Number(counts.labels['chunks']), docs: Number(counts.labels['docs']) },
      { labels: 90, chunks: 90, docs: 90 },
      'one vector per chunk in the generation',
    );
    assert.deepEqual({ n: Number(counts.vectors['n']), chunks: Number(counts.vectors['chunks']) }, { n: 90, chunks: 90 }, 'no duplicate rows in the vectors files');
    assert.deepEqual(counts.ids, docs.map((d) => d.id).sort());
    assert.equal(gen.count, 90);

    const res = await search('crash_idx', { vector: standInVector(docs[42]!.body, STAND_IN_DIMS), k: 1 });
    assert.equal(res.hits[0].doc_id, docs[42]!.id);
  });
});
