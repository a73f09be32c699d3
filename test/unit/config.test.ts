import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../shared/config.ts';
import { redactSecrets } from '../../shared/redact.ts';

describe('loadConfig', () => {
  it('gives the documented defaults for an empty environment', () => {
    const c = loadConfig({});
    assert.equal(c.redisUrl, 'redis://127.0.0.1:6379');
    assert.equal(c.dataDir, path.resolve('./data'));
    assert.equal(c.port, 3100);
    assert.equal(c.queuePrefix, 'lakehouse');
    assert.equal(c.uploadMaxBytes, 512 * 1024 * 1024);
    assert.deepEqual(c.apiKeys, []);
    assert.deepEqual(c.buckets, []);
    assert.deepEqual(c.connections, {});
    assert.equal(c.inboxPollMs, 10_000);
    assert.equal(c.trashDays, 7);
    assert.equal(c.secretKey, undefined);
  });

  it('parses keys, buckets and named connections', () => {
    const c = loadConfig({
      LAKEHOUSE_API_KEYS: 'aaaaaaaaaaaaaaaa:admin, bbbbbbbbbbbbbbbb:reader',
      LAKEHOUSE_BUCKETS: 'cold:/mnt/cold,hot:./hot',
      LAKEHOUSE_CONNECTION_SHOP: 'postgres://u:p@db:5432/shop',
    });
    assert.deepEqual(c.apiKeys, [
      { key: 'aaaaaaaaaaaaaaaa', role: 'admin' },
      { key: 'bbbbbbbbbbbbbbbb', role: 'reader' },
    ]);
    assert.deepEqual(c.buckets, [
      { name: 'cold', path: '/mnt/cold' },
      { name: 'hot', path: path.resolve('./hot') },
    ]);
    assert.deepEqual(c.connections, { shop: 'postgres://u:p@db:5432/shop' });
  });

  it('names every bad variable and what it expected', () => {
    assert.throws(
      () => loadConfig({ PORT: 'abc', LAKEHOUSE_API_KEYS: 'short:admin', REDIS_URL: 'http://x', LAKEHOUSE_BUCKETS: 'primary:/x' }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        for (const name of ['PORT', 'LAKEHOUSE_API_KEYS', 'REDIS_URL', 'LAKEHOUSE_BUCKETS']) assert.match(err.message, new RegExp(`^  ${name}: `, 'm'));
        return true;
      },
    );
    assert.throws(() => loadConfig({ LAKEHOUSE_API_KEYS: 'aaaaaaaaaaaaaaaa:root' }), /role one of admin\|writer\|reader/);
    assert.throws(() => loadConfig({ LAKEHOUSE_CONNECTION_X: 'http://nope' }), /LAKEHOUSE_CONNECTION_X/);
    assert.throws(() => loadConfig({ LAKEHOUSE_SECRET_KEY: 'too-short' }), /LAKEHOUSE_SECRET_KEY/);
  });
});

describe('redactSecrets', () => {
  it('hides URL passwords and password parameters, keeps the rest', () => {
    assert.equal(redactSecrets('postgres://bob:s3cr3t@db:5432/x'), 'postgres://bob:***@db:5432/x');
    assert.equal(redactSecrets('mysql://root@h/db?password=hunter2&ssl=1'), 'mysql://root@h/db?password=***&ssl=1');
    assert.equal(redactSecrets('failed: connect redis://:pw@127.0.0.1:6379 and postgres://a:b@c/d'), 'failed: connect redis://:***@127.0.0.1:6379 and postgres://a:***@c/d');
    assert.equal(redactSecrets('no secrets here'), 'no secrets here');
  });
});
