/**
 * A raw TCP client for HTTP tests that fetch cannot express: a request head or body sent in
 * pieces on the caller's schedule (slow clients, stalled uploads) and the bytes the server sends
 * back, whatever they are, plus whether the server closed the connection.
 */
import net from 'node:net';

export interface RawConnection {
  socket: net.Socket;
  /** Everything received so far. */
  received(): string;
  /** Resolves when the server (or an error) closed the socket; rejects after `timeoutMs`. */
  closed(timeoutMs: number): Promise<{ received: string }>;
  write(text: string | Buffer): void;
  destroy(): void;
}

export async function rawConnect(port: number, host = '127.0.0.1'): Promise<RawConnection> {
  const socket = net.connect({ port, host });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.on('error', () => {}); // a reset by the server counts as closed
  const gone = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return {
    socket,
    received: () => text,
    closed: (timeoutMs) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the server kept the connection open for ${timeoutMs} ms; received ${JSON.stringify(text.slice(0, 300))}`)), timeoutMs);
        void gone.then(() => {
          clearTimeout(timer);
          resolve({ received: text });
        });
      }),
    write: (chunk) => {
      if (!socket.destroyed) socket.write(chunk);
    },
    destroy: () => socket.destroy(),
  };
}

/** Writes `pieces` one by one every `everyMs` until they run out or `stop()` is called. */
export function trickle(conn: RawConnection, pieces: readonly string[], everyMs: number): { stop(): void; done: () => boolean } {
  let i = 0;
  const timer = setInterval(() => {
    if (i >= pieces.length || conn.socket.destroyed) return clearInterval(timer);
    conn.write(pieces[i++]!);
  }, everyMs);
  return { stop: () => clearInterval(timer), done: () => i >= pieces.length };
}
