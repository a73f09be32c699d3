/**
 * The documents the embedding sections embed: English passages of about `chars` characters, all
 * different, from a seed; and the CSV that carries them into a dataset (one document per row, so
 * with the default chunk size of 1000 each document is exactly one chunk with the same text).
 */
import fs from 'node:fs/promises';
import { prng } from './mixture.ts';

const TOPICS = ['password resets', 'vector indexes', 'weekly sales', 'cat behaviour', 'river flooding', 'tax returns', 'guitar strings', 'bus timetables', 'tomato blight', 'invoice disputes'];
const FILLER = [
  'The second paragraph lists the usual causes and the order in which to rule them out.',
  'A short checklist at the end helps a newcomer decide whether to escalate.',
  'Several readers asked for a diagram, which has been added since the first version.',
  'Costs vary by region, so the figures quoted are rough medians from last year.',
  'The team that owns this topic answers questions on weekday mornings.',
];

export function passages(n: number, chars: number, seed: number): string[] {
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  return Array.from({ length: n }, (_, i) => {
    const topic = pick(TOPICS);
    let text =
      `Note ${i} is about ${topic}. It explains what usually goes wrong with ${topic}, who to ask when it does, ` +
      `and how long a fix takes in practice (${Math.floor(rand() * 90) + 1} minutes on average).`;
    while (text.length < chars) text += ` ${pick(FILLER)}`;
    // cut at a word boundary and leave no trailing space: chunking trims, and the texts must match
    return text.slice(0, chars).replace(/\s+\S*$/, '').trim();
  });
}

const csvField = (s: string) => `"${s.replace(/"/g, '""')}"`;

/** `id,text` with ids 1..n. */
export async function writeTextsCsv(file: string, texts: readonly string[]): Promise<void> {
  await fs.writeFile(file, ['id,text', ...texts.map((t, i) => `${i + 1},${csvField(t)}`)].join('\n') + '\n');
}
