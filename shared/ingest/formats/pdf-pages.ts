/**
 * The text of each page of a PDF.
 *
 * Library: unpdf, pinned at 1.6.2. It is Mozilla's PDF.js (5.6.205 inside) bundled as one
 * dependency-free ESM build meant for servers: pure JavaScript, no install script, no native
 * module, nothing fetched at run time (the worker code is in the bundle and runs in-process).
 * pdfjs-dist itself would do the same job but pulls @napi-rs/canvas (~33 MB of native binaries)
 * as an optional dependency, and its releases since 5.7 need Node 22; unpdf 1.7 and later also
 * need Node 22, hence the pin. pdf-parse v2 wraps an older PDF.js and depends on @napi-rs/canvas too.
 */
import fs from 'node:fs/promises';
import { getDocumentProxy } from 'unpdf';
import { BadRequestError } from '../../errors.ts';

export interface PdfPage {
  /** 1-based. */
  page: number;
  text: string;
}

export interface PdfPages {
  count: number;
  pages(): AsyncGenerator<PdfPage>;
  close(): Promise<void>;
}

/** Opens `file`; an encrypted or damaged PDF is the client's problem, so a BadRequestError. */
export async function openPdf(file: string, name: string): Promise<PdfPages> {
  const data = new Uint8Array(await fs.readFile(file));
  const doc = await getDocumentProxy(data, {
    verbosity: 0,
    // The text layer needs neither: no eval-compiled font code, no font loading.
    isEvalSupported: false,
    disableFontFace: true,
    useSystemFonts: false,
  }).catch((err: unknown) => {
    throw pdfError(err, name);
  });
  return {
    count: doc.numPages,
    async *pages() {
      for (let page = 1; page <= doc.numPages; page++) {
        let text: string;
        try {
          text = await pageText(doc, page);
        } catch (err) {
          throw pdfError(err, name);
        }
        yield { page, text };
      }
    },
    close: () => doc.destroy(),
  };
}

type PdfDocument = Awaited<ReturnType<typeof getDocumentProxy>>;

async function pageText(doc: PdfDocument, pageNumber: number): Promise<string> {
  const page = await doc.getPage(pageNumber);
  try {
    const content = await page.getTextContent();
    let text = '';
    for (const item of content.items) {
      if ('str' in item) text += item.str + (item.hasEOL ? '\n' : '');
    }
    return text;
  } finally {
    page.cleanup();
  }
}

function pdfError(err: unknown, name: string): BadRequestError {
  const kind = err instanceof Error ? err.name : '';
  if (kind === 'PasswordException') return new BadRequestError(`${name} is an encrypted PDF that needs a password`);
  const reason = (err instanceof Error ? err.message : String(err)).split('\n')[0];
  return new BadRequestError(`${name} is not a readable PDF: ${reason}`);
}
