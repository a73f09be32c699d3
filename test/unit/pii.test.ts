/**
 * PII detection over a generated Parquet file: columns holding emails, phone numbers, national ids,
 * card numbers, street addresses and person names are flagged with the expected kind and
 * confidence; look-alike columns (cities, products, notes with a stray email, numbers failing
 * Luhn, ids) are not.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { detectPii, judge, luhn, nameWords } from '../../shared/pii/detect.ts';
import { sqlString, withDuckDB } from '../helpers/duckdb.ts';
import { writeCsv } from '../helpers/env.ts';

const ROWS = 200;
const FIRST = ['Alice', 'James', 'Maria', 'Mohammed', 'Wei', 'Sarah', 'David', 'Priya'];
const LAST = ['Smith', "O'Brien", 'Garcia', 'Khan', 'Chen', 'McDonald', 'Jones-Hart', 'Patel'];
const STREETS = ['Baker Street', 'High St', 'Elm Ave', 'Station Road', 'Sunset Blvd', 'Mill Lane', 'Oak Dr.', 'Long Way'];
const CITIES = ['London', 'New York', 'San Francisco', 'Paris', 'Los Angeles', 'Berlin'];
const PRODUCTS = ['Widget', 'Gadget Pro', 'USB Cable', 'Desk Lamp', 'Coffee Mug'];

/** `prefix` followed by digits and a check digit that makes the whole pass (or fail) Luhn. */
function cardNumber(prefix: string, i: number, valid: boolean): string {
  const body = (prefix + String(i).padStart(14 - prefix.length, '0')).slice(0, 15);
  for (let check = 0; check < 10; check++) {
    if (luhn(body + check) === valid) return body + check;
  }
  throw new Error('unreachable');
}

function row(i: number): (string | number | boolean | null)[] {
  const first = FIRST[i % FIRST.length]!;
  const last = LAST[(i * 3) % LAST.length]!;
  const phones = [`+44 20 7946 ${String(i).padStart(4, '0')}`, `020 7946 ${String(i).padStart(4, '0')}`, `(202) 555-${String(i).padStart(4, '0')}`];
  const ids = [`${String(100 + i).padStart(3, '0')}-${String(10 + (i % 89)).padStart(2, '0')}-${String(1000 + i).padStart(4, '0')}`, `AB ${String(10 + (i % 89))} 34 56 C`];
  return [
    i,
    `${first.toLowerCase()}.${i}@example.com`,
    phones[i % 3]!,
    ids[i % 2]!,
    cardNumber(i % 2 ? '4' : '51', i, true),
    cardNumber('7', i, false),
    `${i + 1} ${STREETS[i % STREETS.length]!}${i % 2 ? ', London' : ''}`,
    `${first} ${last}`,
    `${first} ${last}`,
    `user${i}@mail.example.org`,
    CITIES[i % CITIES.length]!,
    PRODUCTS[i % PRODUCTS.length]!,
    i === 7 ? 'customer asked to be mailed at someone@example.com' : ['Delivered on time', 'Call back later', 'Left at the door'][i % 3]!,
    i % 2 ? `x${i}@example.com` : 'n/a',
    i < 10 ? `first${i}@example.com` : `later value ${i}`,
    i % 3 === 0 ? null : i % 3 === 1 ? '' : `sparse${i}@example.com`,
    447700900000 + i,
    i % 2 === 0,
    i % 2 ? 'Visa' : 'Mastercard',
    `10.0.${i % 256}.1`,
  ];
}

const HEADER = [
  'id', 'email', 'phone', 'ssn', 'card_number', 'order_ref', 'address', 'full_name', 'customer', 'contact',
  'city', 'product', 'notes', 'half_emails', 'early_emails', 'sparse_email', 'mobile', 'is_mobile', 'card_type', 'ip_address',
];

let root: string;
let parquet: string;
let schema: { name: string; type: string }[];

before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'pii-'));
  const csv = path.join(root, 'people.csv');
  parquet = path.join(root, 'people.parquet');
  await writeCsv(csv, [HEADER, ...Array.from({ length: ROWS }, (_, i) => row(i))]);
  schema = await withDuckDB(async (db) => {
    await db.all(
      `COPY (SELECT * REPLACE (id::BIGINT AS id, mobile::BIGINT AS mobile, is_mobile::BOOLEAN AS is_mobile, NULLIF(sparse_email, '') AS sparse_email)
              FROM read_csv(${sqlString(csv)}, all_varchar = true))
         TO ${sqlString(parquet)} (FORMAT parquet)`,
    );
    const described = await db.all(`DESCRIBE SELECT * FROM read_parquet(${sqlString(parquet)})`);
    return described.map((r) => ({ name: String(r['column_name']), type: String(r['column_type']) }));
  });
});

after(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('detectPii', () => {
  it('flags exactly the personal columns, each with its best kind and confidence', async () => {
    const flags = await detectPii(parquet, schema);
    assert.deepEqual(flags, [
      { column: 'email', kind: 'email', confidence: 1 },
      { column: 'phone', kind: 'phone', confidence: 1 },
      { column: 'ssn', kind: 'national_id', confidence: 1 },
      { column: 'card_number', kind: 'card_number', confidence: 1 },
      { column: 'address', kind: 'street_address', confidence: 1 },
      { column: 'full_name', kind: 'person_name', confidence: 1 },
      // no name hint: the values alone, all matching
      { column: 'customer', kind: 'person_name', confidence: 1 },
      { column: 'contact', kind: 'email', confidence: 1 },
      // blanks and NULLs are not sampled
      { column: 'sparse_email', kind: 'email', confidence: 1 },
      // a number cannot show its formatting: the name alone
      { column: 'mobile', kind: 'phone', confidence: 0.6 },
    ]);
  });

  it('leaves look-alikes alone: cities, products, a note with a stray email, Luhn failures, booleans, IPs', async () => {
    const flagged = new Set((await detectPii(parquet, schema)).map((f) => f.column));
    for (const column of ['id', 'order_ref', 'city', 'product', 'notes', 'half_emails', 'early_emails', 'is_mobile', 'card_type', 'ip_address']) {
      assert.ok(!flagged.has(column), `${column} should not be flagged`);
    }
  });

  it('samples the first non-blank values in file order, so a smaller sample sees only those', async () => {
    const early = schema.filter((c) => c.name === 'early_emails');
    assert.deepEqual(await detectPii(parquet, early, { sampleRows: 10 }), [{ column: 'early_emails', kind: 'email', confidence: 1 }]);
    assert.deepEqual(await detectPii(parquet, early), []);
  });

  it('gives the same answer every time', async () => {
    assert.deepEqual(await detectPii(parquet, schema), await detectPii(parquet, schema));
  });
});

describe('scoring', () => {
  it('gives a name hint alone 0.6, raised by the share of matching values', () => {
    assert.deepEqual(judge('customer_email', undefined), { column: 'customer_email', kind: 'email', confidence: 0.6 });
    assert.deepEqual(judge('Email', ['a@b.co', 'nope', 'c@d.org', 'x']), { column: 'Email', kind: 'email', confidence: 0.8 });
    assert.deepEqual(judge('cc_no', []), { column: 'cc_no', kind: 'card_number', confidence: 0.6 });
  });

  it('needs 80% of values to flag a column with no hint', () => {
    const emails = (n: number) => Array.from({ length: 10 }, (_, i) => (i < n ? `u${i}@example.com` : 'text'));
    assert.equal(judge('misc', emails(7)), undefined);
    assert.deepEqual(judge('misc', emails(8)), { column: 'misc', kind: 'email', confidence: 0.8 });
  });

  it('credits two capitalised words half, and a known first name the rest', () => {
    assert.deepEqual(judge('name', ['Zebulon Quist', 'Xanthe Vorn']), { column: 'name', kind: 'person_name', confidence: 0.8 });
    assert.equal(judge('place', ['New York', 'Los Angeles', 'San Diego']), undefined);
    assert.deepEqual(judge('place', ['Emma Stone', 'Oliver Twist', 'Lucy Gray']), { column: 'place', kind: 'person_name', confidence: 1 });
  });

  it('reads hints from words, not substrings', () => {
    assert.deepEqual(nameWords('customerEmailAddress2'), ['customer', 'email', 'address', '2']);
    assert.equal(judge('hotel', undefined), undefined);
    assert.equal(judge('product_name', undefined), undefined);
    assert.equal(judge('card_type', undefined), undefined);
    assert.equal(judge('ip_address', undefined), undefined);
    assert.deepEqual(judge('email_address', undefined), { column: 'email_address', kind: 'email', confidence: 0.6 });
    assert.deepEqual(judge('LAST_NAME', undefined), { column: 'LAST_NAME', kind: 'person_name', confidence: 0.6 });
    assert.deepEqual(judge('e_mail', undefined), { column: 'e_mail', kind: 'email', confidence: 0.6 });
    assert.deepEqual(judge('national_insurance', undefined), { column: 'national_insurance', kind: 'national_id', confidence: 0.6 });
  });

  it('checks card numbers with Luhn and tells phones from SSNs and bare ids', () => {
    assert.ok(luhn('4111111111111111'));
    assert.ok(!luhn('4111111111111112'));
    assert.deepEqual(judge('x', ['4111 1111 1111 1111', '5500-0000-0000-0004']), { column: 'x', kind: 'card_number', confidence: 1 });
    assert.deepEqual(judge('x', ['123-45-6789']), { column: 'x', kind: 'national_id', confidence: 1 });
    assert.equal(judge('x', ['2025550143', '4477009001']), undefined);
  });
});
