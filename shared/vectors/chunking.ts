/**
 * Splits a document into overlapping chunks for embedding.
 *
 * Sizes are in characters as JavaScript counts them (UTF-16 code units). A chunk ends at the best
 * boundary in the second half of its window — a blank line, else a sentence end, else a line
 * break, else any word boundary — so it is never cut mid-word (in Chinese and Japanese, written
 * without spaces, every character is a word). Only a token longer than the size (a URL, a base64
 * blob) is cut hard, and never inside a surrogate pair or before a combining mark. The next chunk
 * starts at the first word that begins within `overlap` characters of the previous end, so the
 * overlap is at most `overlap` characters, and exactly that when a word starts there. Chunks have
 * no leading or trailing whitespace; whitespace inside them is kept as written.
 *
 * Identity: `content_hash` is the sha256 (hex) of the chunk text, and `chunk_id` is
 * `<doc_id>#<seq>:<first 12 hex of content_hash>`. Chunking is a pure function of (text, size,
 * overlap), so unchanged text yields the same ids, and a changed chunk gets a new id — refresh
 * keeps vectors whose chunk_id still exists and embeds only new ids. The seq keeps repeated
 * passages of one document apart. An edit shifts the boundaries of the chunks after it, so those
 * are re-embedded too; that is the price of fixed-size windows.
 */
import { createHash } from 'node:crypto';
import { BadRequestError } from '../errors.ts';

export interface Chunk {
  doc_id: string;
  /** `<doc_id>#<seq>:<12 hex of content_hash>`: stable for identical text, new when the text changes. */
  chunk_id: string;
  /** 0-based position in the document. */
  seq: number;
  text: string;
  /** sha256 hex of `text`. */
  content_hash: string;
}

export interface ChunkOptions {
  /** Most characters in one chunk. */
  size: number;
  /** Most characters a chunk repeats from the end of the previous one; less than `size`. */
  overlap: number;
}

/**
 * 1000 characters is about 150–200 English words: one or two paragraphs, enough context for
 * Universal Sentence Encoder lite to place a passage while still being about one thing (USE
 * averages meaning over its input, so long inputs blur; it also slows with length: ~38 chunks/s
 * at 300 characters, ~20 at 1000, per thread here). 150 characters is about one sentence, so a
 * fact straddling a boundary is whole in one of the two chunks.
 */
export const DEFAULT_CHUNK: Readonly<ChunkOptions> = Object.freeze({ size: 1000, overlap: 150 });

export function chunkDocument(docId: string, text: string, opts: ChunkOptions): Chunk[] {
  checkOptions(docId, opts);
  return [...windows(text, opts)].map(([start, end], seq) => {
    const body = text.slice(start, end);
    const content_hash = createHash('sha256').update(body).digest('hex');
    return { doc_id: docId, chunk_id: `${docId}#${seq}:${content_hash.slice(0, 12)}`, seq, text: body, content_hash };
  });
}

function checkOptions(docId: string, { size, overlap }: ChunkOptions): void {
  if (!docId) throw new BadRequestError('a document id is required to chunk a document');
  if (!Number.isInteger(size) || size < 1) throw new BadRequestError(`chunk size must be a positive integer, got ${size}`);
  if (!Number.isInteger(overlap) || overlap < 0) throw new BadRequestError(`chunk overlap must be a non-negative integer, got ${overlap}`);
  if (overlap >= size) throw new BadRequestError(`chunk overlap (${overlap}) must be smaller than chunk size (${size})`);
}

/** [start, end) of each chunk. */
function* windows(text: string, { size, overlap }: ChunkOptions): Generator<[number, number]> {
  let last = text.length;
  while (last > 0 && isSpace(text, last - 1)) last--;
  let start = skipSpace(text, 0);
  let prevEnd = 0;
  while (start < last) {
    if (last - start <= size) {
      yield [start, last];
      return;
    }
    const { end, carry } = chunkEnd(text, start, size, overlap);
    if (end <= prevEnd) {
      // Only the overlap fits before a long token: such a chunk would add nothing new.
      start = skipSpace(text, prevEnd);
      continue;
    }
    yield [start, end];
    prevEnd = end;
    start = carry ? nextStart(text, start, end, overlap) : skipSpace(text, end);
  }
}

const NONE = -1;
const SPACE = 0;
const LINE = 1;
const SENTENCE = 2;
const PARAGRAPH = 3;

/**
 * Where the chunk starting at `start` ends: the latest best-ranked boundary from halfway through
 * the window (and past the overlap, so every chunk moves forward). Failing that, the window's
 * second half is inside one long token: end at the last word before it, without overlap (carrying
 * one would only repeat the words before the token), or cut the token itself when it starts the
 * chunk.
 */
function chunkEnd(text: string, start: number, size: number, overlap: number): { end: number; carry: boolean } {
  const limit = start + size;
  const floor = start + Math.max(Math.ceil(size / 2), overlap + 1);
  let best = -1;
  let bestRank = NONE;
  for (let p = limit; p >= floor && bestRank < PARAGRAPH; p--) {
    const rank = boundaryRank(text, p);
    if (rank > bestRank) {
      best = p;
      bestRank = rank;
    }
  }
  if (best >= 0) return { end: best, carry: true };
  for (let p = floor - 1; p > start; p--) {
    if (boundaryRank(text, p) !== NONE) return { end: p, carry: false };
  }
  return { end: hardCut(text, start, limit), carry: true };
}

const SENTENCE_END = /[.!?…]/;
const CLOSER = /["'”’»)\]]/;
const CJK_STOP = /[。！？]/;
const BLANK_LINE = /[^\S\n]*\n\s*\n/y;
/** Scripts written without spaces, where a line may break between any two characters. */
const UNSPACED = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\u3000-\u303f\uff00-\uffef]/u;

/** How good a place it is to end a chunk right before index `p`; NONE inside a word. */
function boundaryRank(text: string, p: number): number {
  if (!isWordEnd(text, p)) return NONE;
  const before = text[p - 1]!;
  if (CJK_STOP.test(before)) return SENTENCE;
  if (!isSpace(text, p)) return SPACE;
  BLANK_LINE.lastIndex = p;
  if (BLANK_LINE.test(text)) return PARAGRAPH;
  if (SENTENCE_END.test(before) || (CLOSER.test(before) && SENTENCE_END.test(text[p - 2] ?? ''))) return SENTENCE;
  return text[p] === '\n' || text[p] === '\r' ? LINE : SPACE;
}

/**
 * The next chunk's start: the first word starting within `overlap` characters of `end`. When
 * the chunk was a hard cut through a long token, the overlap is taken inside the token.
 */
function nextStart(text: string, start: number, end: number, overlap: number): number {
  const from = Math.max(start + 1, end - overlap);
  for (let s = from; s < end; s++) if (isWordStart(text, s)) return s;
  if (isWordEnd(text, end)) return skipSpace(text, end);
  let s = from;
  while (isLowSurrogate(text, s) || isMark(text, s)) s++;
  return s;
}

function hardCut(text: string, start: number, limit: number): number {
  let cut = limit;
  while (cut > start + 1 && (isLowSurrogate(text, cut) || isMark(text, cut))) cut--;
  return cut;
}

function isWordStart(text: string, i: number): boolean {
  return !isSpace(text, i) && (i === 0 || isSpace(text, i - 1) || isUnspaced(text, i) || isUnspaced(text, i - 1));
}

function isWordEnd(text: string, p: number): boolean {
  return !isSpace(text, p - 1) && (p === text.length || isSpace(text, p) || isUnspaced(text, p) || isUnspaced(text, p - 1));
}

/** Whitespace except no-break spaces, which are there precisely so text does not break on them. */
function isSpace(text: string, i: number): boolean {
  const ch = text[i];
  return ch !== undefined && ch !== '\u00a0' && ch !== '\u202f' && ch !== '\u2007' && /\s/.test(ch);
}

function isUnspaced(text: string, i: number): boolean {
  const ch = text[i];
  return ch !== undefined && UNSPACED.test(ch);
}

function isMark(text: string, i: number): boolean {
  const ch = text[i];
  return ch !== undefined && /\p{M}/u.test(ch);
}

function skipSpace(text: string, i: number): number {
  while (i < text.length && isSpace(text, i)) i++;
  return i;
}

function isLowSurrogate(text: string, i: number): boolean {
  const c = text.charCodeAt(i);
  return c >= 0xdc00 && c <= 0xdfff;
}
