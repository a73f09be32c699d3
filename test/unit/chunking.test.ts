/**
 * Chunking: deterministic ids and hashes, chunks never over size, never cut mid-word (except a
 * token longer than the size), preferred boundaries, the overlap carried forward exactly when a
 * word starts there, nothing lost between chunks, Unicode kept whole, and bad options refused.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { BadRequestError } from '../../shared/errors.ts';
import { chunkDocument, DEFAULT_CHUNK, type Chunk } from '../../shared/vectors/chunking.ts';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** Seeded words and sentences, some paragraphs: varied but reproducible prose. */
function prose(chars: number, seed = 7): string {
  const words = ['data', 'vector', 'index', 'query', 'worker', 'the', 'a', 'cluster', 'embedding', 'search', 'of', 'latency', 'parquet', 'is'];
  let s = seed;
  const rnd = () => (s = (s * 48271) % 2147483647) / 2147483647;
  let text = '';
  while (text.length < chars) {
    text += words[Math.floor(rnd() * words.length)];
    const r = rnd();
    text += r < 0.02 ? '.\n\n' : r < 0.1 ? '. ' : r < 0.12 ? ',\n' : ' ';
  }
  return text;
}

/** Start offsets of each chunk in the text, found left to right. */
function offsets(text: string, chunks: Chunk[]): number[] {
  let from = 0;
  return chunks.map((c) => {
    const at = text.indexOf(c.text, from);
    assert.ok(at >= 0, `chunk ${c.seq} is not a verbatim slice of the text`);
    from = at + 1;
    return at;
  });
}

const isSpace = (ch: string | undefined) => ch !== undefined && /\s/.test(ch);
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

describe('chunkDocument', () => {
  it('gives no chunks for empty or whitespace-only text', () => {
    assert.deepEqual(chunkDocument('d', '', DEFAULT_CHUNK), []);
    assert.deepEqual(chunkDocument('d', ' \n\t\r\n  ', DEFAULT_CHUNK), []);
  });

  it('keeps a short text as one trimmed chunk with its hash and a hash-bearing id', () => {
    const [only, ...rest] = chunkDocument('doc-1', '  Hello,  world!\n', DEFAULT_CHUNK);
    assert.equal(rest.length, 0);
    assert.deepEqual(only, {
      doc_id: 'doc-1',
      chunk_id: `doc-1#0:${sha256('Hello,  world!').slice(0, 12)}`,
      seq: 0,
      text: 'Hello,  world!',
      content_hash: sha256('Hello,  world!'),
    });
  });

  it('is deterministic, and a change only renames the chunks whose text changed', () => {
    const text = prose(5000);
    const a = chunkDocument('doc', text, { size: 500, overlap: 80 });
    assert.deepEqual(chunkDocument('doc', text, { size: 500, overlap: 80 }), a);
    assert.ok(a.length >= 10);
    assert.deepEqual(a.map((c) => c.seq), a.map((_, i) => i));
    for (const c of a) assert.equal(c.content_hash, sha256(c.text));
    assert.equal(new Set(a.map((c) => c.chunk_id)).size, a.length);

    const edited = text.slice(0, -30) + text.slice(-30).replace(/[a-z]+/, 'CHANGED');
    const b = chunkDocument('doc', edited, { size: 500, overlap: 80 });
    assert.equal(b.length, a.length);
    assert.deepEqual(b.slice(0, -1).map((c) => c.chunk_id), a.slice(0, -1).map((c) => c.chunk_id));
    assert.notEqual(b.at(-1)!.chunk_id, a.at(-1)!.chunk_id);
    assert.notEqual(b.at(-1)!.content_hash, a.at(-1)!.content_hash);
  });

  it('never exceeds the size, never cuts a word, and loses nothing between chunks', () => {
    for (const [size, overlap] of [[120, 0], [200, 40], [500, 150], [1000, 150]] as const) {
      const text = prose(8000, size);
      const chunks = chunkDocument('d', text, { size, overlap });
      const at = offsets(text, chunks);
      chunks.forEach((c, i) => {
        assert.ok(c.text.length <= size, `chunk ${i} has ${c.text.length} > ${size} characters`);
        assert.ok(!isSpace(c.text[0]) && !isSpace(c.text.at(-1)), `chunk ${i} has outer whitespace`);
        const start = at[i]!;
        const end = start + c.text.length;
        assert.ok(start === 0 || isSpace(text[start - 1]), `chunk ${i} starts mid-word`);
        assert.ok(end === text.length || isSpace(text[end]), `chunk ${i} ends mid-word`);
        if (i > 0) {
          const prevEnd = at[i - 1]! + chunks[i - 1]!.text.length;
          assert.ok(prevEnd - start <= overlap, `chunk ${i} repeats ${prevEnd - start} > ${overlap} characters`);
          assert.ok(/^\s*$/.test(text.slice(prevEnd, start)), `text between chunks ${i - 1} and ${i} was dropped`);
        }
      });
      assert.ok(/^\s*$/.test(text.slice(at.at(-1)! + chunks.at(-1)!.text.length)));
    }
  });

  it('carries the overlap forward exactly when a word starts there', () => {
    // "w0000 w0001 …": every word is 5 characters plus a space, so a word starts every 6.
    const text = Array.from({ length: 200 }, (_, i) => `w${String(i).padStart(4, '0')}`).join(' ');
    const chunks = chunkDocument('d', text, { size: 60, overlap: 17 });
    const at = offsets(text, chunks);
    assert.ok(chunks.length > 20);
    for (let i = 1; i < chunks.length; i++) {
      const prev = chunks[i - 1]!.text;
      assert.equal(chunks[i - 1]!.text.length, 59); // ten words, ending at the last space in the window
      assert.equal(at[i], at[i - 1]! + prev.length - 17);
      assert.ok(chunks[i]!.text.startsWith(prev.slice(-17)));
    }
  });

  it('prefers a blank line, then a sentence end, to the last space in the window', () => {
    const para = (n: number) => `${'lorem ipsum dolor sit amet. '.repeat(n).trim()}`;
    const paragraphs = [para(22), para(22), para(22)]; // ~615 characters each
    const byParagraph = chunkDocument('d', paragraphs.join('\n\n'), { size: 1000, overlap: 0 });
    assert.deepEqual(byParagraph.map((c) => c.text), paragraphs);

    const sentences = 'One two three four five six seven. '.repeat(40);
    for (const c of chunkDocument('d', sentences, { size: 300, overlap: 50 })) assert.ok(c.text.endsWith('.'), c.text);
  });

  it('cuts a token longer than the size hard, overlapping inside it, and keeps the words around it whole', () => {
    const token = Array.from({ length: 40 }, (_, i) => sha256(String(i))).join('').slice(0, 2500); // unspaced, never repeating
    const alone = chunkDocument('d', token, { size: 1000, overlap: 100 });
    assert.deepEqual(alone.map((c) => c.text.length), [1000, 1000, 700]);
    assert.deepEqual(offsets(token, alone), [0, 900, 1800]);

    const text = `before the blob ${token} after the blob`;
    const chunks = chunkDocument('d', text, { size: 1000, overlap: 100 });
    assert.equal(chunks[0]!.text, 'before the blob');
    assert.ok(chunks[1]!.text.startsWith(token.slice(0, 1000)));
    assert.ok(chunks.at(-1)!.text.endsWith('after the blob'));
    assert.ok(chunks.length <= 5, `${chunks.length} chunks`);

    // Words that fit before the token are not repeated in an overlap-only chunk.
    const words = Array.from({ length: 150 }, (_, i) => `w${i}`).join(' ');
    const led = chunkDocument('d', `${words} ${token}`, { size: 1000, overlap: 150 });
    assert.equal(led[0]!.text, words);
    assert.ok(led[1]!.text.startsWith(token.slice(0, 1000)));
  });

  it('keeps surrogate pairs and combining marks whole, breaks CJK between characters, never at a no-break space', () => {
    const emoji = '😀🎉'.repeat(400);
    for (const c of chunkDocument('d', emoji, { size: 101, overlap: 11 })) {
      assert.ok(!LONE_SURROGATE.test(c.text), `chunk ${c.seq} splits a surrogate pair`);
      assert.ok(c.text.length <= 101);
    }
    const accents = 'e\u0301'.repeat(600);
    for (const c of chunkDocument('d', accents, { size: 99, overlap: 10 })) assert.ok(!/^\p{M}/u.test(c.text), `chunk ${c.seq} starts with a mark`);

    const chinese = '向量索引把文本切成小块再计算嵌入。每个块都有稳定的标识和内容哈希。'.repeat(30);
    const cjk = chunkDocument('zh', chinese, { size: 100, overlap: 20 });
    assert.ok(cjk.length > 5);
    for (const c of cjk.slice(0, -1)) assert.ok(c.text.endsWith('。'), c.text);
    const at = offsets(chinese, cjk);
    for (let i = 1; i < cjk.length; i++) assert.ok(at[i - 1]! + cjk[i - 1]!.text.length > at[i]!, 'CJK chunks overlap');

    const weights = Array.from({ length: 100 }, (_, i) => `${i}\u00a0kg`).join(' ');
    for (const c of chunkDocument('d', weights, { size: 50, overlap: 10 })) {
      assert.ok(!c.text.startsWith('kg') && !c.text.endsWith('\u00a0'), `split at a no-break space: ${c.text}`);
    }
  });

  it('refuses overlap >= size, non-integer or negative options, and an empty document id', () => {
    assert.throws(() => chunkDocument('d', 'x', { size: 100, overlap: 100 }), BadRequestError);
    assert.throws(() => chunkDocument('d', 'x', { size: 100, overlap: 150 }), /overlap \(150\) must be smaller than chunk size \(100\)/);
    assert.throws(() => chunkDocument('d', 'x', { size: 0, overlap: 0 }), BadRequestError);
    assert.throws(() => chunkDocument('d', 'x', { size: 10.5, overlap: 0 }), BadRequestError);
    assert.throws(() => chunkDocument('d', 'x', { size: 10, overlap: -1 }), BadRequestError);
    assert.throws(() => chunkDocument('', 'x', DEFAULT_CHUNK), BadRequestError);
  });

  it('defaults to 1000 characters with 150 of overlap', () => {
    assert.deepEqual({ ...DEFAULT_CHUNK }, { size: 1000, overlap: 150 });
  });
});
