/**
 * The first bytes of a source file: what format detection and the readers look at before
 * committing to a full read.
 */
import fs from 'node:fs/promises';

/** Enough for a few dozen CSV records or the first lines of a JSON file. */
export const HEAD_BYTES = 64 * 1024;

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

export interface SourceHead {
  bytes: Buffer;
  /** The head is the whole file. */
  complete: boolean;
  size: number;
}

export async function readHead(file: string, limit = HEAD_BYTES): Promise<SourceHead> {
  const handle = await fs.open(file, 'r');
  try {
    const { size } = await handle.stat();
    const buffer = Buffer.alloc(Math.min(size, limit));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return { bytes: buffer.subarray(0, bytesRead), complete: bytesRead >= size, size };
  } finally {
    await handle.close();
  }
}

export function hasUtf8Bom(bytes: Buffer): boolean {
  return bytes.subarray(0, 3).equals(UTF8_BOM);
}

/** The head as text without a UTF-8 BOM (invalid sequences become U+FFFD). */
export function headText(bytes: Buffer): string {
  return (hasUtf8Bom(bytes) ? bytes.subarray(3) : bytes).toString('utf8');
}

/** Nothing but a BOM and whitespace. */
export function isBlank(head: SourceHead): boolean {
  return head.complete && headText(head.bytes).trim() === '';
}
