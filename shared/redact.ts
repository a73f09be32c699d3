const CREDENTIALS_IN_URL = /([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*):[^@/\s]*@/gi;
const PASSWORD_PARAM = /([?&;](?:password|passwd|pwd)=)[^&;\s]*/gi;

/** Replaces the password of every `scheme://user:pass@host` (and `?password=`) in a text with `***`. */
export function redactSecrets(text: string): string {
  return text.replace(CREDENTIALS_IN_URL, '$1:***@').replace(PASSWORD_PARAM, '$1***');
}
