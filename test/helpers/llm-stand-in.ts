/**
 * A real HTTP server on 127.0.0.1 that stands in for a paid or GPU model server (DESIGN §6),
 * speaking the embedding protocols we use:
 * - Ollama: `POST /api/embed {model, input}` → `{model, embeddings}`
 * - OpenAI-compatible: `POST /v1/embeddings {model, input}` → `{object, data: [{index, embedding}], model}`,
 *   with `data` deliberately in reverse order (clients must place items by `index`).
 *
 * Vectors are a fixed function of the text ({@link standInVector}), not unit length, so a test
 * can tell what the client should have returned. Each test scripts misbehaviour with
 * {@link LlmStandIn.script}: the next requests get the scripted replies in order (an HTTP error,
 * a `Retry-After`, a slow answer, a wrong dimension, a dropped connection), later ones the normal
 * answer. Every request is recorded.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  /** Parsed JSON body, or the raw text when it is not JSON. */
  body: any;
}

/** One scripted answer. Without `status` (or `drop`) it is the normal answer, altered as asked. */
export interface ScriptedReply {
  /** Answer with this status and `body` instead of vectors. */
  status?: number;
  headers?: Record<string, string>;
  /** JSON-encoded unless a string. */
  body?: unknown;
  /** Wait this long before answering. */
  delayMs?: number;
  /** Dimension of the vectors served (one number for all, or one per input). */
  dims?: number | number[];
  /** Destroy the connection without answering. */
  drop?: boolean;
}

export interface LlmStandIn {
  /** `http://127.0.0.1:<port>` */
  url: string;
  requests: RecordedRequest[];
  /** Replaces the queue of scripted replies for the next requests. */
  script(...replies: ScriptedReply[]): void;
  /** Clears requests and script. */
  reset(): void;
  close(): Promise<void>;
}

/** The vector the stand-in serves for `text`: deterministic, components in [-2, 2], not unit length. */
export function standInVector(text: string, dims: number): number[] {
  const out: number[] = [];
  for (let block = 0; out.length < dims; block++) {
    const digest = createHash('sha256').update(`${block}:${text}`).digest();
    for (let i = 0; i + 1 < digest.length && out.length < dims; i += 2) out.push((digest.readUInt16BE(i) / 0xffff) * 4 - 2);
  }
  return out;
}

/**
 * Why the stand-in cannot be reached, or undefined when it can. A bare `unshare -n` leaves even
 * the loopback interface down; offline tests that need no server still run there.
 */
export function loopbackProblem(): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = net.createServer();
    const done = (problem?: string) => server.close(() => resolve(problem));
    server.once('error', (err: NodeJS.ErrnoException) => resolve(`cannot listen on 127.0.0.1 (${err.code})`));
    server.listen(0, '127.0.0.1', () => {
      const socket = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        done();
      });
      socket.once('error', (err: NodeJS.ErrnoException) => done(`127.0.0.1 is unreachable (${err.code}): is the loopback interface down?`));
    });
  });
}

export async function startLlmStandIn({ dims = 8 }: { dims?: number } = {}): Promise<LlmStandIn> {
  const requests: RecordedRequest[] = [];
  let queue: ScriptedReply[] = [];
  const timers = new Set<NodeJS.Timeout>();

  const server = http.createServer(async (req, res) => {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const recorded: RecordedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: parse(raw) };
    requests.push(recorded);
    const reply = queue.shift() ?? {};
    if (reply.drop) return void req.socket.destroy();
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!res.destroyed) answer(res, recorded, reply, dims);
    }, reply.delayMs ?? 0);
    timers.add(timer);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    script: (...replies) => void (queue = replies),
    reset() {
      requests.length = 0;
      queue = [];
    },
    async close() {
      timers.forEach(clearTimeout);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function parse(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

function answer(res: http.ServerResponse, req: RecordedRequest, reply: ScriptedReply, defaultDims: number): void {
  if (reply.status !== undefined) return send(res, reply.status, reply.body ?? { error: `scripted ${reply.status}` }, reply.headers);
  const input: string[] = typeof req.body?.input === 'string' ? [req.body.input] : req.body?.input;
  if (req.method !== 'POST' || !Array.isArray(input)) return send(res, 400, { error: 'expected a POST with {model, input}' });
  const dimsOf = (i: number) => (Array.isArray(reply.dims) ? reply.dims[i] ?? defaultDims : reply.dims ?? defaultDims);
  const vectors = input.map((text, i) => standInVector(text, dimsOf(i)));
  const model = req.body.model;
  if (req.path === '/api/embed') return send(res, 200, { model, embeddings: vectors }, reply.headers);
  if (req.path === '/v1/embeddings') {
    const data = vectors.map((embedding, index) => ({ object: 'embedding', index, embedding })).reverse();
    return send(res, 200, { object: 'list', data, model, usage: { prompt_tokens: 0, total_tokens: 0 } }, reply.headers);
  }
  send(res, 404, { error: `no route ${req.path}` });
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(text);
}
