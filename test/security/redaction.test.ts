/**
 * Redaction by parsing (shared/redact.ts, SECURITY.md): a corpus of DSNs and URLs in every form
 * the drivers take — passwords holding `@ : / ? # %` and spaces, secret query parameters, libpq
 * key=value with quotes, the MySQL `tcp()` form, IPv6 hosts, no or empty passwords — and the same
 * inside free-text error messages. The secret never survives; host and database stay where the
 * input parses. Then the places redaction guards: dataset lineage read back from an older
 * manifest, a sealed job's `dsn_redacted`, and driver errors of a DB source.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dbSource } from '../../queues/ingest.ts';
import { lineageSchema } from '../../shared/catalog/manifest.ts';
import { sourceError, sourceLabel } from '../../shared/ingest/sources/source-errors.ts';
import { dsnPasswords, redactDsn, redactSecrets } from '../../shared/redact.ts';

interface Case {
  input: string;
  /** Substrings that must not survive. */
  secrets: string[];
  /** Substrings that must survive (host, database…), when the form parses. */
  keep: string[];
  dsnOnly?: boolean;
}

const DSNS: Case[] = [
  { input: 'postgres://u:p@ss@db/x', secrets: ['p@ss', '@ss', 'ss@'], keep: ['db/x', 'postgres://u:'] },
  { input: 'postgres://app:pa ss w0rd@db.internal:5432/sales', secrets: ['pa ss', 'w0rd'], keep: ['db.internal:5432/sales'] },
  { input: 'postgresql://app:s3:cr:et@db:5432/x', secrets: ['s3:cr:et', 'cr:et'], keep: ['db:5432/x'] },
  { input: 'postgres://u:12/ss@db/x', secrets: ['12/ss', '/ss'], keep: ['db/x'] },
  { input: 'postgres://u:p%40ss%2Fw%20d@db/x', secrets: ['p%40ss', '%2Fw', 'w%20d'], keep: ['db/x'] },
  { input: 'postgres://u:q?u#e@db:5432/x', secrets: ['q?u#e', 'u#e'], keep: ['db:5432/x'] },
  { input: 'postgres://u:a@b@c@db.example.com/x?sslmode=require', secrets: ['a@b@c', 'b@c'], keep: ['db.example.com/x', 'sslmode=require'] },
  { input: 'postgres://db/x?user=u&password=qp-secret-1', secrets: ['qp-secret-1'], keep: ['db/x', 'user=u'] },
  { input: 'postgres://u@db/x?sslpassword=sslpw-2&sslmode=verify-full', secrets: ['sslpw-2'], keep: ['db/x', 'sslmode=verify-full'] },
  { input: 'postgres://u@db/x?Password=Cased-3', secrets: ['Cased-3'], keep: ['db/x'] },
  { input: 'postgres://u@db/x?pass=p4&pwd=p5&token=t6&key=k7&secret=s8&api_key=a9&access_token=at10', secrets: ['p4', 'p5', 't6', 'k7', 's8', 'a9', 'at10'], keep: ['db/x'] },
  { input: 'postgres://u:urlpw-11@db/x?password=qpw-12', secrets: ['urlpw-11', 'qpw-12'], keep: ['db/x'] },
  { input: 'postgres://u:pw-13@[::1]:5432/x', secrets: ['pw-13'], keep: ['[::1]:5432/x'] },
  { input: 'postgres://u:pw-14@[2001:db8::7]/x', secrets: ['pw-14'], keep: ['[2001:db8::7]/x'] },
  { input: 'postgres://u:pw@15@[fe80::1%25eth0]:5432/x', secrets: ['pw@15', '@15'], keep: [':5432/x'] },
  { input: 'postgres://u@db:5432/x', secrets: [], keep: ['postgres://u@db:5432/x'] },
  { input: 'postgres://u:@db/x', secrets: [], keep: ['db/x'] },
  { input: 'postgres://db.internal/x', secrets: [], keep: ['postgres://db.internal/x'] },
  { input: 'mysql://root:my-pw-16@10.0.0.5:3306/shop', secrets: ['my-pw-16'], keep: ['10.0.0.5:3306/shop'] },
  { input: 'mariadb://u:ma@ria:17@db/shop', secrets: ['ma@ria:17', 'ria:17'], keep: ['db/shop'] },
  { input: 'mysql://u:go-pw-18@tcp(db:3306)/shop?parseTime=true', secrets: ['go-pw-18'], keep: ['tcp(db:3306)/shop'] },
  { input: 'u:go-pw-19@tcp(db.internal:3306)/shop', secrets: ['go-pw-19'], keep: ['tcp(db.internal:3306)/shop'] },
  { input: 'u:go p@w-20@tcp(db:3306)/shop', secrets: ['go p@w-20', 'p@w-20'], keep: ['tcp(db:3306)/shop'] },
  { input: 'root:unix-pw-21@unix(/var/run/mysqld.sock)/shop', secrets: ['unix-pw-21'], keep: ['/shop'] },
  { input: "host=db user=u password='p w-22' dbname=x", secrets: ['p w-22', 'w-22'], keep: ['host=db', 'dbname=x'] },
  { input: "host=db password='it\\'s-23' dbname=x", secrets: ["it\\'s-23", 's-23'], keep: ['host=db', 'dbname=x'] },
  { input: 'host=db password = spaced-24 dbname=x sslpassword=ssl-25', secrets: ['spaced-24', 'ssl-25'], keep: ['host=db', 'dbname=x'] },
  { input: "host=db password='unterminated-26 dbname=x", secrets: ['unterminated-26'], keep: [] },
  { input: 'redis://:redis-pw-27@127.0.0.1:6379/0', secrets: ['redis-pw-27'], keep: ['127.0.0.1:6379/0'] },
  { input: 'https://user:http-pw-28@api.example.com/v1?api_key=ak-29', secrets: ['http-pw-28', 'ak-29'], keep: ['api.example.com/v1'] },
  { input: 'postgres://u:broken-30@', secrets: ['broken-30'], keep: [] },
  { input: 'postgres://u:not host-31', secrets: ['not host-31', 'host-31'], keep: [] },
  // known to be a DSN field: replaced whole; the same words in free text carry nothing to find
  { input: 'not a dsn at all but pw-32', secrets: ['pw-32'], keep: [], dsnOnly: true },
];

/** Free text as drivers, providers and people write it, each with DSNs or secrets inside. */
const TEXTS: Case[] = [
  { input: 'connect to postgres://app:p@ss w0rd@db.internal:5432/sales failed: timeout', secrets: ['p@ss', 'w0rd'], keep: ['db.internal:5432/sales', 'timeout'] },
  { input: 'error: could not connect (dsn postgres://u:12/ss@db/x): refused', secrets: ['12/ss'], keep: ['refused'] },
  { input: 'libpq: host=db user=u password=\'p w-33\' dbname=x: FATAL', secrets: ['p w-33', 'w-33'], keep: ['FATAL', 'host=db'] },
  { input: 'Access denied: mysql://root:hunter2-34@10.0.0.5:3306/x and also u:go-35@tcp(db:3306)/y', secrets: ['hunter2-34', 'go-35'], keep: ['Access denied', '10.0.0.5:3306/x'] },
  { input: '{"error":"bad key","authorization":"Bearer sk-abcdefghijklmnop36"}', secrets: ['sk-abcdefghijklmnop36', 'abcdefghijklmnop36'], keep: ['bad key'] },
  { input: 'header was Authorization: Basic dXNlcjpwYXNzMzc=', secrets: ['dXNlcjpwYXNzMzc='], keep: ['header was'] },
  { input: 'retry with token=tok-38 and password: pw-39 please', secrets: ['tok-38', 'pw-39'], keep: ['please'] },
  { input: '{"password": "json-pw-40", "user": "x", "api_key": "json-ak-41"}', secrets: ['json-pw-40', 'json-ak-41'], keep: ['"user": "x"'] },
  { input: 'see https://api.example.com/v1/embeddings?key=url-key-42 (HTTP 401)', secrets: ['url-key-42'], keep: ['api.example.com/v1/embeddings', 'HTTP 401'] },
  { input: 'cut off: postgres://u:p w-43', secrets: ['p w-43', 'w-43'], keep: ['cut off'] },
  { input: 'two: postgres://a:one-44@h1/d1 postgres://b:two-45@h2/d2', secrets: ['one-44', 'two-45'], keep: ['h1/d1', 'h2/d2'] },
  { input: 'at http://127.0.0.1:4300: HTTP 400 Bad Request: overloaded', secrets: [], keep: ['http://127.0.0.1:4300: HTTP 400 Bad Request: overloaded'] },
  { input: 'no secrets here at db.internal:5432', secrets: [], keep: ['no secrets here at db.internal:5432'] },
];

function check(c: Case, out: string, where: string): void {
  for (const s of c.secrets) assert.ok(!out.includes(s), `${where}: ${JSON.stringify(c.input)} → ${JSON.stringify(out)} still holds ${JSON.stringify(s)}`);
  for (const k of c.keep) assert.ok(out.includes(k), `${where}: ${JSON.stringify(c.input)} → ${JSON.stringify(out)} lost ${JSON.stringify(k)}`);
}

describe('redaction by parsing', () => {
  it(`a DSN or URL (${DSNS.length} forms) loses every secret and keeps host and database where it parses`, () => {
    assert.ok(DSNS.length >= 30);
    for (const c of DSNS) {
      const out = redactDsn(c.input);
      check(c, out, 'redactDsn');
      assert.equal(redactDsn(out), out, `redacting twice changes nothing: ${out}`);
    }
  });

  it('postgres://u:p@ss@db/x loses the WHOLE password, and unparseable DSN-looking input goes wholesale', () => {
    assert.equal(redactDsn('postgres://u:p@ss@db/x'), 'postgres://u:***@db/x');
    assert.equal(redactDsn('postgres://u:not host'), 'postgres://***');
    assert.equal(redactDsn("host=db password='open"), '***');
    assert.equal(redactDsn('anything else'), '***');
  });

  it(`the same DSNs inside free text, and ${TEXTS.length} error messages, lose every secret`, () => {
    for (const c of DSNS.filter((d) => !d.dsnOnly)) check({ ...c, keep: [] }, redactSecrets(`failed: ${c.input} (attempt 1)`), 'redactSecrets(in text)');
    for (const c of TEXTS) check(c, redactSecrets(c.input), 'redactSecrets');
  });

  it('dsnPasswords finds every reading of an ambiguous password, for scrubbing driver messages', () => {
    assert.deepEqual(dsnPasswords('postgres://u:p@ss@db/x'), ['p@ss']);
    assert.ok(dsnPasswords('postgres://u:p%40ss@db/x').includes('p@ss'));
    assert.ok(dsnPasswords('postgres://u:12/ss@db/x').includes('12/ss'));
    assert.ok(dsnPasswords("host=db password='p w' dbname=x").includes('p w'));
    assert.ok(dsnPasswords('postgres://db/x?sslpassword=ssl-1').includes('ssl-1'));
  });

  it('a DB source error never quotes the password, however the driver writes it', () => {
    for (const dsn of ['postgres://loader:p@ss w@127.0.0.1:5432/x', 'postgres://loader:12/ss@127.0.0.1:5432/x', 'postgres://loader:p%40ss@127.0.0.1:5432/x', 'postgres://loader:w%2Frd@127.0.0.1:5432/x']) {
      const label = sourceLabel('postgres', dsn);
      for (const pw of dsnPasswords(dsn)) {
        const err = sourceError(label, new Error(`password authentication failed: got "${pw}" for ${dsn}`));
        for (const s of ['p@ss', '12/ss', 'w/rd']) assert.ok(!err.message.includes(s), err.message);
        assert.match(err.message, /^postgres source at 127\.0\.0\.1:5432:/);
      }
    }
  });

  it('lineage and job payloads written by older versions are redacted again when read', () => {
    // the regex redactor of old left the tail of `p@ss` behind
    const old = { kind: 'postgres', dsn: 'postgres://u:***@ss@db/x', host: 'h', started_at: 't', finished_at: 't' };
    assert.equal(lineageSchema.parse(old).dsn, 'postgres://u:***@db/x');
    assert.equal(lineageSchema.parse({ ...old, dsn: 'connection:shop' }).dsn, 'connection:shop');
    const job = dbSource.parse({ kind: 'postgres', table: 't', secret: '00000000-0000-4000-8000-000000000000', dsn_redacted: 'postgres://u:pa ss@db/x?password=q1' });
    assert.equal(job.dsn_redacted, 'postgres://u:***@db/x?password=***');
  });
});
