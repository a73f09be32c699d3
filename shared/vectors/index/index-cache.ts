/**
 * Hot generations of an API instance, keyed by (index, generation): a bounded LRU so a few
 * indexes stay in memory, and the way a new generation replaces the old one without a restart.
 *
 * - A load is single-flighted: every concurrent `get` of a generation waits on the same load,
 *   and nothing is handed out before the load resolved, so no search sees a half-loaded index.
 * - When a generation finishes loading, older generations of the same index leave the cache.
 *   A search still running on one keeps its reference; the memory goes when the last does.
 * - A failed load is forgotten, so the next `get` tries again.
 */
import type { LoadedGeneration } from './hnsw-searcher.ts';

export interface CachedGeneration {
  /** Memory the entry holds, for the byte bound. */
  readonly bytes: number;
}

export interface IndexCacheOptions {
  /** Loaded generations kept at most. @defaultValue 8 */
  maxGenerations?: number;
  /**
   * Bytes kept at most across loaded generations. The newest entry is kept even when it alone
   * is larger: refusing it would fail every search of that index. @defaultValue 4 GiB
   */
  maxBytes?: number;
}

interface Entry<T> {
  name: string;
  gen: number;
  load: Promise<T>;
  value?: T;
}

export class IndexCache<T extends CachedGeneration = LoadedGeneration> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly maxGenerations: number;
  private readonly maxBytes: number;

  constructor(opts: IndexCacheOptions = {}) {
    this.maxGenerations = opts.maxGenerations ?? 8;
    this.maxBytes = opts.maxBytes ?? 4 * 1024 ** 3;
  }

  /** The generation, loaded by `loader` unless it is cached or already loading. */
  get(name: string, gen: number, loader: () => Promise<T>): Promise<T> {
    const key = keyOf(name, gen);
    const cached = this.entries.get(key);
    if (cached) {
      this.entries.delete(key);
      this.entries.set(key, cached);
      return cached.load;
    }
    // The callbacks run after `entry` exists; the async wrapper turns a loader that throws
    // synchronously into a rejection like any other failed load.
    const load = (async () => loader())().then(
      (value) => this.settle(entry, value),
      (err: unknown) => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
        throw err;
      },
    );
    const entry: Entry<T> = { name, gen, load };
    this.entries.set(key, entry);
    return entry.load;
  }

  /** The generation if it is loaded; never one still loading. */
  peek(name: string, gen: number): T | undefined {
    return this.entries.get(keyOf(name, gen))?.value;
  }

  /** Drops one generation, or every generation of `name` (an index deleted or rebuilt elsewhere). */
  evict(name: string, gen?: number): void {
    for (const [key, e] of this.entries) if (e.name === name && (gen === undefined || e.gen === gen)) this.entries.delete(key);
  }

  /** Loaded entries, least recently used first. */
  loaded(): { name: string; gen: number; bytes: number }[] {
    return [...this.entries.values()].flatMap((e) => (e.value ? [{ name: e.name, gen: e.gen, bytes: e.value.bytes }] : []));
  }

  get bytes(): number {
    return this.loaded().reduce((n, e) => n + e.bytes, 0);
  }

  private settle(entry: Entry<T>, value: T): T {
    // Evicted while loading (a newer generation won, or evict() was called), or a request that
    // read an older manifest: serve it, don't keep it.
    const key = keyOf(entry.name, entry.gen);
    if (this.entries.get(key) !== entry) return value;
    if (this.loaded().some((e) => e.name === entry.name && e.gen > entry.gen)) {
      this.entries.delete(key);
      return value;
    }
    entry.value = value;
    for (const [key, e] of this.entries) if (e.name === entry.name && e.gen < entry.gen) this.entries.delete(key);
    this.enforceBounds(entry);
    return value;
  }

  private enforceBounds(keep: Entry<T>): void {
    for (const [key, e] of this.entries) {
      const loaded = this.loaded();
      if (loaded.length <= this.maxGenerations && this.bytes <= this.maxBytes) return;
      if (e !== keep && e.value) this.entries.delete(key);
    }
  }
}

function keyOf(name: string, gen: number): string {
  return `${name}\u0000${gen}`;
}
