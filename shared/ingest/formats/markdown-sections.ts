/**
 * Splits Markdown at ATX headings (`#` to `######`, CommonMark rules) that are not inside a fenced
 * code block, so each section can be embedded and cited on its own. Setext (underlined) headings
 * do not split.
 */

export interface MarkdownSection {
  /** The heading's text without the `#` markers; '' for the preamble before the first heading. */
  heading: string;
  /** The section's Markdown, heading line included, line endings as in the source. */
  text: string;
}

/** Up to three spaces, 1–6 `#`, then a space, a tab or the end of the line. */
const ATX_HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$/;
/** Up to three spaces and at least three backticks or tildes. */
const FENCE = /^ {0,3}(`{3,}|~{3,})(.*)$/;
/** An optional closing sequence: `## Title ##`. */
const CLOSING_HASHES = /(?:^|[ \t]+)#+$/;

interface OpenFence {
  char: string;
  length: number;
}

/**
 * Concatenating the sections' text gives back the document, except a preamble of nothing but
 * whitespace, which is dropped.
 */
export function splitMarkdownSections(markdown: string): MarkdownSection[] {
  const sections: MarkdownSection[] = [];
  let current: MarkdownSection = { heading: '', text: '' };
  let fence: OpenFence | undefined;
  for (const line of markdown.split(/(?<=\n)/)) {
    const content = line.replace(/\r?\n$/, '');
    if (fence) {
      if (closesFence(content, fence)) fence = undefined;
    } else {
      fence = opensFence(content);
      const heading = fence ? undefined : ATX_HEADING.exec(content);
      if (heading) {
        if (sections.length > 0 || current.text.trim() !== '') sections.push(current);
        current = { heading: headingText(heading[2] ?? ''), text: '' };
      }
    }
    current.text += line;
  }
  if (sections.length > 0 || current.text.trim() !== '') sections.push(current);
  return sections;
}

function headingText(raw: string): string {
  return raw.replace(CLOSING_HASHES, '').trim();
}

function opensFence(line: string): OpenFence | undefined {
  const match = FENCE.exec(line);
  if (!match?.[1]) return undefined;
  const char = match[1].charAt(0);
  // A backtick fence's info string may not contain a backtick (that is inline code instead).
  if (char === '`' && (match[2] ?? '').includes('`')) return undefined;
  return { char, length: match[1].length };
}

function closesFence(line: string, fence: OpenFence): boolean {
  const match = /^ {0,3}(`{3,}|~{3,})[ \t]*$/.exec(line);
  return !!match?.[1] && match[1].charAt(0) === fence.char && match[1].length >= fence.length;
}
