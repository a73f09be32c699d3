/**
 * The raw counterpart of our upload step: a bare node:http server on 127.0.0.1 that pipes the
 * request body into a file, fed by the same fetch client call our upload uses (streamed file
 * body, Content-Length). What ours adds on top — Koa, auth, route validation, the byte-counting
 * limit, enqueueing the job — is the difference between the two rows.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Streams `file` to `url` with fetch as a POST body of known length; resolves with the response. */
export function postFile(url: string, file: string, size: number, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(size) },
    body: Readable.toWeb(createReadStream(file, { highWaterMark: 1 << 20 })) as ReadableStream<Uint8Array>,
    duplex: 'half',
  } as RequestInit);
}

export interface RawUploadServer {
  /** Uploads `file`, returns the seconds from the first byte sent until the answer was read. */
  upload(file: string): Promise<number>;
  close(): Promise<void>;
}

export async function startRawUploadServer(target: string): Promise<RawUploadServer> {
  const server = http.createServer((req, res) => {
    pipeline(req, createWriteStream(target)).then(
      () => res.writeHead(201).end(),
      (err: Error) => res.writeHead(500).end(err.message),
    );
  });
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return {
    async upload(file) {
      const size = (await fs.stat(file)).size;
      const started = performance.now();
      const res = await postFile(url, file, size);
      const text = await res.text();
      const seconds = (performance.now() - started) / 1000;
      if (res.status !== 201) throw new Error(`raw upload answered ${res.status}: ${text.slice(0, 200)}`);
      const written = (await fs.stat(target)).size;
      if (written !== size) throw new Error(`raw upload wrote ${written} bytes of ${size}`);
      await fs.rm(target, { force: true });
      return seconds;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
