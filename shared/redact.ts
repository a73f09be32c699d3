/**
 * Redaction by parsing: secrets are removed from DSNs, URLs and error text before anything is
 * stored, logged, returned or shown in Bull Board.
 *
 * Glossary:
 * - DSN: a connection string in one of the forms the drivers take — a URL
 *   (`postgres://user:pass@host:5432/db?sslpassword=…`), libpq key=value
 *   (`host=db user=u password='p w' dbname=x`) or the MySQL/Go form (`user:pass@tcp(host:3306)/db`).
 * - userinfo: everything between `scheme://` and the LAST `@` before the host. Passwords hold
 *   `@ : / ? # %` and spaces unencoded in the wild; the WHATWG parser splits `u:12/ss@db` as host
 *   `u`, port 12, so the authority is split here and only the part after the last `@` is parsed.
 *
 * {@link redactDsn} is for a value known to be a DSN: a form it cannot parse is replaced wholesale.
 * {@link redactSecrets} is for free text (error messages, SQL, logs): every URL, key=value pair,
 * JSON `"password": "…"` member and bearer token in it is redacted; where a URL's end is ambiguous
 * (a space in a password) the guess hides more, never less.
 */

export const REDACTED = '***';

/** Parameter and key=value names whose values are secrets (matched as a part of the name: `sslpassword`, `api_key`, `client_secret`). */
const SECRET_NAME = String.raw`[A-Za-z0-9_.-]*?(?:password|passwd|passphrase|pwd|pass|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|key|auth|credential|signature|sig)[A-Za-z0-9_.-]*`;
const SECRET_NAME_RE = new RegExp(`^${SECRET_NAME}$`, 'i');

const SCHEME_START = /\b([A-Za-z][A-Za-z0-9+.-]{1,30}):\/\//g;
/** Host (name, IPv4, bracketed IPv6 or the MySQL `tcp(host:port)` form), optional port, then the end or a path/query. */
const HOST_AFTER_AT = /^(?:\[[0-9A-Fa-f:.%a-z]+\]|[A-Za-z0-9._~%!$&'*+,;=-]*|(?:tcp|udp|unix)\([^()\s]*\))(?::\d*)?(?=[/?#]|$)/;

/** A DSN or URL with its password and secret parameters replaced by `***`; unparseable input wholesale. */
export function redactDsn(dsn: string): string {
  const text = dsn.trim();
  if (text === '') return text;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text);
  if (scheme) return redactUrlForm(scheme[1]!, text.slice(scheme[0].length)) ?? `${scheme[1]}://${REDACTED}`;
  const go = redactGoMysql(text);
  if (go !== undefined) return go;
  const kv = redactKeyValueDsn(text);
  if (kv !== undefined) return kv;
  return REDACTED;
}

/** Free text with every secret it holds replaced by `***`. */
export function redactSecrets(text: string): string {
  return redactFreeKeyValues(redactBearer(redactGoMysqlInText(redactUrlsInText(text))));
}

/**
 * Every string that may be the password of a DSN, as written and URL-decoded (empty when it has
 * none), for scrubbing literal copies from driver messages. Where the userinfo's end is ambiguous
 * each reading is returned.
 */
export function dsnPasswords(dsn: string): string[] {
  const text = dsn.trim();
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text);
  const rest = scheme ? text.slice(scheme[0].length) : text;
  const found: string[] = [];
  for (let at = rest.indexOf('@'); at >= 0; at = rest.indexOf('@', at + 1)) {
    const after = rest.slice(at + 1);
    if (!(scheme ? HOST_AFTER_AT.test(after) : /^(?:tcp|udp|unix)?\(/.test(after))) continue;
    const userinfo = rest.slice(0, at);
    const colon = userinfo.indexOf(':');
    if (colon >= 0 && colon < userinfo.length - 1) found.push(userinfo.slice(colon + 1));
  }
  if (!scheme) for (const p of parseKeyValues(text) ?? []) if (SECRET_NAME_RE.test(p.key) && p.value) found.push(p.value);
  const q = rest.indexOf('?');
  if (scheme && q >= 0) {
    for (const part of rest.slice(q + 1).split(/[&;]/)) {
      const eq = part.indexOf('=');
      if (eq > 0 && SECRET_NAME_RE.test(safeDecode(part.slice(0, eq))) && eq < part.length - 1) found.push(part.slice(eq + 1));
    }
  }
  return [...new Set(found.flatMap((s) => [s, safeDecode(s)]))];
}

// ---- URL form -------------------------------------------------------------------------------

/** `rest` is what follows `scheme://`; undefined when what follows the userinfo is not a host. */
function redactUrlForm(scheme: string, rest: string): string | undefined {
  const at = lastAuthorityAt(rest, false);
  if (at < 0) {
    if (!HOST_AFTER_AT.test(rest)) return undefined;
    return `${scheme}://${redactQuery(rest)}`;
  }
  const after = rest.slice(at + 1);
  if (!HOST_AFTER_AT.test(after)) return undefined;
  return `${scheme}://${redactUserinfo(rest.slice(0, at))}@${redactQuery(after)}`;
}

/**
 * The `@` ending the userinfo: the last one followed by something shaped like a host. A `@` in a
 * query (`?application_name=a@b`) may be taken instead; then the host is hidden too, never a secret.
 */
function lastAuthorityAt(rest: string, goForm: boolean): number {
  for (let at = rest.lastIndexOf('@'); at >= 0; at = at === 0 ? -1 : rest.lastIndexOf('@', at - 1)) {
    const after = rest.slice(at + 1);
    if (goForm ? /^(?:tcp|udp|unix)?\(/.test(after) : HOST_AFTER_AT.test(after)) return at;
  }
  return -1;
}

/** `user:***`, or `***` when the user part itself is ambiguous (holds a separator or a space). */
function redactUserinfo(userinfo: string): string {
  const colon = userinfo.indexOf(':');
  const user = colon < 0 ? userinfo : userinfo.slice(0, colon);
  const safeUser = /^[A-Za-z0-9._~%!$&'()*+,;=-]*$/.test(user) ? user : REDACTED;
  return colon < 0 ? safeUser : `${safeUser}:${REDACTED}`;
}

/** Secret-named query parameters of `host/path?query#fragment` get `***`; a value runs to the next `&` or `;`. */
function redactQuery(afterUserinfo: string): string {
  const q = afterUserinfo.indexOf('?');
  if (q < 0) return afterUserinfo;
  const params = afterUserinfo
    .slice(q + 1)
    .split(/([&;])/)
    .map((part) => {
      const eq = part.indexOf('=');
      if (eq < 0) return part;
      const name = safeDecode(part.slice(0, eq));
      return SECRET_NAME_RE.test(name) ? `${part.slice(0, eq)}=${REDACTED}` : part;
    });
  return `${afterUserinfo.slice(0, q)}?${params.join('')}`;
}

// ---- MySQL / Go form: user:pass@tcp(host:3306)/db ------------------------------------------

function redactGoMysql(text: string): string | undefined {
  if (!/@(?:tcp|udp|unix)?\(/.test(text) || /\s/.test(text.slice(text.lastIndexOf(')')))) return undefined;
  const at = lastAuthorityAt(text, true);
  if (at < 0) return undefined;
  return `${redactUserinfo(text.slice(0, at))}@${redactQuery(text.slice(at + 1))}`;
}

// ---- libpq key=value -----------------------------------------------------------------------

interface Pair {
  key: string;
  value: string;
}

/** libpq's grammar: `key = value` pairs, values bare or single-quoted with `\'` and `\\` escapes; undefined when not that. */
function parseKeyValues(text: string): Pair[] | undefined {
  const pairs: Pair[] = [];
  let i = 0;
  const ws = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  ws();
  while (i < text.length) {
    const key = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i))?.[0];
    if (!key) return undefined;
    i += key.length;
    ws();
    if (text[i] !== '=') return undefined;
    i++;
    ws();
    let value = '';
    if (text[i] === "'") {
      i++;
      for (;;) {
        if (i >= text.length) return undefined; // unterminated quote
        const c = text[i]!;
        if (c === '\\' && i + 1 < text.length) (value += text[i + 1]), (i += 2);
        else if (c === "'") {
          i++;
          break;
        } else (value += c), i++;
      }
    } else {
      while (i < text.length && !/\s/.test(text[i]!)) {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        value += text[i];
        i++;
      }
    }
    pairs.push({ key, value });
    ws();
  }
  return pairs.length > 0 ? pairs : undefined;
}

function redactKeyValueDsn(text: string): string | undefined {
  const pairs = parseKeyValues(text);
  if (!pairs) {
    // looks like key=value but does not parse (an unterminated quote…): nothing of it is kept
    return /^\s*[A-Za-z_]\w*\s*=/.test(text) ? REDACTED : undefined;
  }
  return pairs.map(({ key, value }) => `${key}=${SECRET_NAME_RE.test(key) ? REDACTED : quoteIfNeeded(value)}`).join(' ');
}

function quoteIfNeeded(value: string): string {
  return value !== '' && /^[^\s'\\]+$/.test(value) ? value : `'${value.replace(/[\\']/g, (c) => `\\${c}`)}'`;
}

// ---- free text -----------------------------------------------------------------------------

/**
 * Every `scheme://` in the text: its userinfo ends at the last `@` on the same line before the
 * next URL (a password may hold spaces), and what follows must be a host; otherwise, if the URL
 * has a `:` in its authority, it is hidden up to the next whitespace.
 */
function redactUrlsInText(text: string): string {
  let out = '';
  let from = 0;
  for (const m of text.matchAll(SCHEME_START)) {
    const start = m.index;
    if (start < from) continue;
    const bodyStart = start + m[0].length;
    const lineEnd = indexOrEnd(text, '\n', bodyStart);
    const nextUrl = text.slice(bodyStart, lineEnd).search(/[A-Za-z][A-Za-z0-9+.-]{1,30}:\/\//);
    const scope = text.slice(bodyStart, nextUrl < 0 ? lineEnd : bodyStart + nextUrl);
    const first = /^[^\s"'<>`]*/.exec(scope)![0];
    // a first word that is plainly `host.name[:port]…` without `@` is the whole URL; otherwise a password may hold spaces
    const firstAt = lastAuthorityAtInText(first);
    const at = firstAt >= 0 && CLEAR_AUTHORITY.test(first.slice(firstAt + 1).split(/[/?#]/)[0]!)
      ? firstAt // `user:pass@host.name/db` in one word: the DSN ends with the word
      : !first.includes('@') && CLEAR_AUTHORITY.test(first.split(/[/?#]/)[0]!) ? -1 : lastAuthorityAtInText(scope);
    let replaced: string;
    let end: number;
    if (at >= 0) {
      const afterAt = scope.slice(at + 1);
      const host = /^(?:\[[^\]\s]*\]|(?:tcp|udp|unix)\([^()\s]*\)|[^\s/?#"'<>`]*)/.exec(afterAt)![0];
      const tail = /^[^\s"'<>`]*/.exec(afterAt.slice(host.length))![0];
      replaced = `${m[1]}://${redactUserinfo(scope.slice(0, at))}@${redactQuery(host + tail)}`;
      end = bodyStart + at + 1 + host.length + tail.length;
    } else {
      const token = /^[^\s"'<>`]*/.exec(scope)![0];
      const authority = token.split(/[/?#]/)[0]!;
      // `host:port` is fine; anything else with a colon before the path could be `user:pass` cut by a space
      const safe = !authority.includes(':') || /^(?:\[[^\]]*\]|[A-Za-z0-9.-]*)(?::\d+)?[:.,;)]*$/.test(authority);
      // an unsafe authority without a host after it: a cut password may run on past the space, so the rest of the line goes
      replaced = safe ? `${m[1]}://${redactQuery(token)}` : `${m[1]}://${REDACTED}`;
      end = safe ? bodyStart + token.length : lineEnd;
    }
    out += text.slice(from, start) + replaced;
    from = end;
  }
  return out + text.slice(from);
}

/** A host with a dot (or `localhost`, or bracketed IPv6), an optional numeric port, trailing punctuation. */
const CLEAR_AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9-]*\.[A-Za-z0-9.-]*|localhost)(?::\d+)?[:.,;)]*$/;

/** The last `@` in a URL's scope that is followed by a host (not by a space or the end). */
function lastAuthorityAtInText(scope: string): number {
  for (let at = scope.lastIndexOf('@'); at >= 0; at = at === 0 ? -1 : scope.lastIndexOf('@', at - 1)) {
    if (/^(?:\[|(?:tcp|udp|unix)\(|[A-Za-z0-9._~%-])/.test(scope.slice(at + 1))) return at;
  }
  return -1;
}

/**
 * `user:pass@tcp(host)/db` in text: the password runs from the first `word:` before the `@`
 * (after any URL; a `:` followed by a space or `/` does not count) to the `@` — spaces included, since where a
 * password with a space starts cannot be known better.
 */
function redactGoMysqlInText(text: string): string {
  return text
    .split('\n')
    .map((line) => {
      let out = '';
      let from = 0;
      for (const m of line.matchAll(/@(?:tcp|udp|unix)\(/g)) {
        const segment = line.slice(from, m.index);
        // URLs were redacted already: the Go form starts after the last word holding `://`
        const lastUrl = [...segment.matchAll(/\S*:\/\/\S*/g)].at(-1);
        const start = lastUrl ? lastUrl.index + lastUrl[0].length : 0;
        const user = /[^\s:@"'`/()]+:(?![\s/]|$)/.exec(segment.slice(start));
        out += user ? `${segment.slice(0, start + user.index + user[0].length)}${REDACTED}` : segment;
        from = m.index;
      }
      return out + line.slice(from);
    })
    .join('\n');
}

function redactBearer(text: string): string {
  return text
    .replace(/\b(Bearer|Basic|Token|Digest)(\s+)[A-Za-z0-9._~+/=:-]{4,}/gi, `$1$2${REDACTED}`)
    .replace(/\bsk-[A-Za-z0-9_-]{8,}/g, REDACTED);
}

/** `password=…`, `password = '…'`, `"password": "…"`, `Password=…;`: quoted values to their closing quote (or the end). */
const FREE_PAIR = new RegExp(
  String.raw`(["']?)\b(${SECRET_NAME})\1(\s*[=:]\s*)(?:'(?:\\.|[^'\\])*(?:'|$)|"(?:\\.|[^"\\])*(?:"|$)|(?!\*\*\*)[^\s&;,'"})\]]+)`,
  'gi',
);

function redactFreeKeyValues(text: string): string {
  return text.replace(FREE_PAIR, (whole, q: string, name: string, sep: string) => {
    // `postgres://` (scheme) and `host:5432` are not pairs: only `=` pairs, or `:` after a quoted name or a secret word
    if (sep.includes(':') && !q && !/^(?:password|passwd|pwd|secret|token|api[_-]?key|authorization)$/i.test(name)) return whole;
    return `${q}${name}${q}${sep}${REDACTED}`;
  });
}

function indexOrEnd(text: string, ch: string, from: number): number {
  const i = text.indexOf(ch, from);
  return i < 0 ? text.length : i;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
