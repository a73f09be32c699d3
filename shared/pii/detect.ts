/**
 * Finds columns that hold personal data, from two kinds of evidence:
 * - name hint: the column's name, split into lower-case words (`customerEmail` → customer, email),
 *   says what it holds. A hint alone gives HINT_CONFIDENCE.
 * - value fraction: the share of sampled values that look like the kind (a whole value, never a
 *   value that merely contains one: a note mentioning an email is not an email column).
 * A column with a hint scores HINT_CONFIDENCE + (1 - HINT_CONFIDENCE) × fraction; without one it
 * scores its fraction, and only when that is at least VALUES_ALONE. Each column gets its best kind
 * (ties go to the earlier kind in KINDS) and is flagged at FLAG_AT or above.
 *
 * Text columns are sampled: the first `sampleRows` non-blank values in file order, which keeps the
 * result deterministic. Integer and decimal columns are judged by name only: a number has lost the
 * formatting (leading zero or `+`, separators) that tells a phone number from a count. Other types
 * (booleans, dates, floats, nested) are never flagged.
 */
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { FIRST_NAMES } from './first-names.ts';

export type PiiKind = 'email' | 'phone' | 'national_id' | 'card_number' | 'street_address' | 'person_name';

export interface PiiFlag {
  column: string;
  kind: PiiKind;
  /** 0..1, two decimals. */
  confidence: number;
}

export interface DetectPiiOptions {
  /**
   * Non-blank values sampled per text column.
   * @defaultValue 1000
   */
  sampleRows?: number;
}

const HINT_CONFIDENCE = 0.6;
const VALUES_ALONE = 0.8;
const FLAG_AT = 0.5;
/** Longer values are prose or blobs, not a single email or name; checking them is wasted work. */
const MAX_VALUE_LENGTH = 200;

/** The order breaks ties: a more specific pattern first. */
const KINDS: readonly PiiKind[] = ['national_id', 'card_number', 'email', 'phone', 'street_address', 'person_name'];

let instance: Promise<DuckDBInstance> | undefined;

/** One private instance per process: never the sandboxed query engine, never a shared file. */
async function connect(): Promise<DuckDBConnection> {
  instance ??= DuckDBInstance.create(':memory:', {
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
  });
  return (await instance).connect();
}

export async function detectPii(
  parquetFile: string,
  schema: { name: string; type: string }[],
  opts: DetectPiiOptions = {},
): Promise<PiiFlag[]> {
  const sampleRows = opts.sampleRows ?? 1000;
  if (!(Number.isInteger(sampleRows) && sampleRows > 0)) throw new Error(`sampleRows must be a positive integer, got ${sampleRows}`);
  const conn = await connect();
  try {
    const flags: PiiFlag[] = [];
    for (const column of schema) {
      if (!isText(column.type) && !isNumber(column.type)) continue;
      const values = isText(column.type) ? await sample(conn, parquetFile, column.name, sampleRows) : undefined;
      const flag = judge(column.name, values);
      if (flag) flags.push(flag);
    }
    return flags;
  } finally {
    conn.closeSync();
  }
}

function isText(type: string): boolean {
  return /^(VARCHAR|TEXT|STRING)\b/i.test(type);
}

/** Whole numbers and decimals can hold a card or phone number; booleans, dates, floats… cannot. */
function isNumber(type: string): boolean {
  return /^(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?|DECIMAL|NUMERIC)\b/i.test(type);
}

async function sample(conn: DuckDBConnection, file: string, column: string, rows: number): Promise<string[]> {
  const col = quoteIdent(column);
  const reader = await conn.runAndReadAll(
    `SELECT ${col}::VARCHAR AS v FROM read_parquet(${quoteString(file)}) WHERE trim(${col}::VARCHAR) <> '' LIMIT ${rows}`,
  );
  return reader.getRows().map((row) => String(row[0]).trim());
}

/** The column's best kind, if it reaches FLAG_AT; `values` is undefined when none were sampled. */
export function judge(column: string, values: string[] | undefined): PiiFlag | undefined {
  const words = nameWords(column);
  let best: PiiFlag | undefined;
  for (const kind of KINDS) {
    const hinted = NAME_HINTS[kind](words);
    const fraction = values && values.length > 0 ? matchFraction(kind, values) : 0;
    const score = hinted ? HINT_CONFIDENCE + (1 - HINT_CONFIDENCE) * fraction : fraction >= VALUES_ALONE ? fraction : 0;
    const confidence = Math.round(score * 100) / 100;
    if (confidence >= FLAG_AT && (!best || confidence > best.confidence)) best = { column, kind, confidence };
  }
  return best;
}

function matchFraction(kind: PiiKind, values: string[]): number {
  let credit = 0;
  for (const value of values) credit += value.length > MAX_VALUE_LENGTH ? 0 : VALUE_CREDIT[kind](value);
  return credit / values.length;
}

// ---------------------------------------------------------------------------------------------
// Name hints

/** `customerEmail`, `CUSTOMER_EMAIL`, `customer-email2` → customer, email(, 2). */
export function nameWords(column: string): string[] {
  return (column.match(/[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+/g) ?? []).map((word) => word.toLowerCase());
}

const has = (words: string[], ...wanted: string[]) => words.some((w) => wanted.includes(w));
/** `a` immediately followed by one of `b`: `e mail`, `credit card`, `first name`. */
const pair = (words: string[], a: string[], b: string[]) => words.some((w, i) => a.includes(w) && b.includes(words[i + 1] ?? ''));
/** `word` last, or followed by a word saying "number": `card`, `card_no`; not `card_type`, `mobile_os`. */
const numberWord = (words: string[], word: string) =>
  words.some((w, i) => w === word && (i === words.length - 1 || NUMBER_WORDS.includes(words[i + 1] ?? '')));
const NUMBER_WORDS = ['number', 'num', 'no', 'nr', 'phone'];

/** Words that turn "address" into something else: ip_address, email_address, wallet_address. */
const NOT_STREET = ['ip', 'mac', 'email', 'mail', 'url', 'web', 'wallet', 'eth', 'btc', 'hw', 'ipv4', 'ipv6'];
const NAME_OWNERS = ['first', 'last', 'full', 'given', 'family', 'middle', 'maiden', 'sur', 'customer', 'contact', 'person', 'employee', 'patient', 'holder', 'owner'];

const NAME_HINTS: Record<PiiKind, (words: string[]) => boolean> = {
  email: (w) => has(w, 'email', 'emailaddress') || pair(w, ['e'], ['mail']),
  phone: (w) => has(w, 'phone', 'phonenumber', 'telephone', 'tel', 'msisdn', 'fax') || numberWord(w, 'mobile') || numberWord(w, 'cell'),
  national_id: (w) =>
    has(w, 'ssn', 'nin', 'nino', 'passport', 'nationalid') || pair(w, ['national'], ['id', 'insurance']) || pair(w, ['social'], ['security']),
  card_number: (w) =>
    has(w, 'pan', 'ccnum', 'cardnumber', 'creditcard') || pair(w, ['credit'], ['card']) || numberWord(w, 'cc') || numberWord(w, 'card'),
  street_address: (w) => has(w, 'address', 'addr', 'street', 'streetaddress', 'address1', 'address2') && !has(w, ...NOT_STREET),
  person_name: (w) =>
    (w.length === 1 && w[0] === 'name') ||
    has(w, 'surname', 'forename', 'firstname', 'lastname', 'fullname', 'givenname', 'familyname') ||
    pair(w, NAME_OWNERS, ['name']),
};

// ---------------------------------------------------------------------------------------------
// Value patterns: each gives a value a credit from 0 to 1.

const EMAIL = /^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$/;
const SSN = /^\d{3}-\d{2}-\d{4}$/;
/** UK National Insurance number: two prefix letters (D, F, I, Q, U, V never; O never second), six digits, A–D. */
const UK_NI = /^[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]$/i;
const PHONE_CHARS = /^\+?[\d\s().-]+$/;
const CARD_CHARS = /^\d(?:[ -]?\d){12,18}$/;
const STREET_SUFFIXES = new Set([
  'st', 'street', 'ave', 'avenue', 'rd', 'road', 'blvd', 'boulevard', 'ln', 'lane', 'dr', 'drive', 'way', 'ct', 'court',
  'pl', 'place', 'ter', 'terrace', 'cres', 'crescent', 'close', 'sq', 'square', 'hwy', 'highway', 'pkwy', 'parkway', 'row', 'walk',
]);
const HOUSE_NUMBER = /^\d{1,6}[A-Za-z]?$/;
const NAME_TOKEN = /^\p{Lu}\p{Ll}*(?:['-]?\p{Lu}\p{Ll}+)*$|^\p{Lu}\.$/u;

const VALUE_CREDIT: Record<PiiKind, (value: string) => number> = {
  email: (v) => (EMAIL.test(v) ? 1 : 0),
  national_id: (v) => (SSN.test(v) || UK_NI.test(v) ? 1 : 0),
  card_number: (v) => (CARD_CHARS.test(v) && luhn(v.replace(/\D/g, '')) ? 1 : 0),
  phone: (v) => (isPhone(v) ? 1 : 0),
  street_address: (v) => (isStreetAddress(v) ? 1 : 0),
  person_name: personNameCredit,
};

/**
 * E.164 (`+` and 9–15 digits) or a national format: 9–15 digits written with separators or a
 * trunk `0`. Bare digit runs are left out (ids, amounts), and so is the SSN shape.
 */
function isPhone(value: string): boolean {
  if (!PHONE_CHARS.test(value) || SSN.test(value)) return false;
  const digits = value.replace(/\D/g, '').length;
  if (digits < 9 || digits > 15) return false;
  return value.startsWith('+') || value.startsWith('0') || value.startsWith('(') || /\d[\s.-]+\d/.test(value);
}

export function luhn(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return digits.length > 0 && sum % 10 === 0;
}

/** A house number, one or more words, then a capitalised street suffix: `221B Baker Street, London`. */
function isStreetAddress(value: string): boolean {
  const words = value.split(',')[0]?.trim().split(/\s+/) ?? [];
  if (words.length < 3 || !HOUSE_NUMBER.test(words[0] ?? '')) return false;
  return words.slice(2).some((word) => {
    const bare = word.replace(/\.$/, '');
    return /^[A-Z]/.test(bare) && STREET_SUFFIXES.has(bare.toLowerCase());
  });
}

/** Half for the shape (2–3 capitalised words), the other half when the first is a known first name. */
function personNameCredit(value: string): number {
  const words = value.split(/\s+/);
  if (words.length < 2 || words.length > 3 || !words.every((word) => NAME_TOKEN.test(word))) return 0;
  return FIRST_NAMES.has((words[0] ?? '').toLowerCase()) ? 1 : 0.5;
}

function quoteString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
