/**
 * A job's progress on stderr. On a terminal one line is redrawn in place. In a log file or a
 * pipe, redraws would be noise, so a line is printed per change: each new state (waiting,
 * active, completed…) once, in the order it happened, and each further 10 % done with the job's
 * rates and ETA.
 */
const WIDTH = 30;

export class ProgressBar {
  private readonly tty: boolean;
  private lastDecile = -1;
  private drawn = false;
  private lastStatus = '';
  private detail: Record<string, unknown> = {};

  constructor(
    private readonly label: string,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = out.isTTY === true;
  }

  /** `detail` is the job's own progress fields (counts, rates, eta_s), shown after the bar. */
  update(percent: number, detail: Record<string, unknown> = this.detail): void {
    this.detail = detail;
    const p = Math.min(Math.max(percent, 0), 100);
    const extra = Object.entries(detail)
      .filter(([, v]) => typeof v === 'number' || typeof v === 'string')
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    if (this.tty) {
      const filled = Math.round((p / 100) * WIDTH);
      this.out.write(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}] ${p.toFixed(1).padStart(5)}% ${extra}\x1b[K`);
      this.drawn = true;
      return;
    }
    // progress means the job runs: a log says so before the first percent, whatever came first
    if (p < 100 && ['', 'waiting', 'delayed', 'prioritized'].includes(this.lastStatus)) this.status('active');
    const decile = Math.floor(p / 10);
    if (decile > this.lastDecile) {
      this.lastDecile = decile;
      this.out.write(`${this.label} ${decile * 10}%${extra ? ` ${extra}` : ''}\n`);
    }
  }

  /** A state instead of a bar (waiting, active, completed); printed once per change. */
  status(text: string): void {
    if (text === this.lastStatus) return;
    this.lastStatus = text;
    if (this.tty) {
      this.out.write(`\r${this.label} ${text}\x1b[K`);
      this.drawn = true;
    } else {
      this.out.write(`${this.label} ${text}\n`);
    }
  }

  /** Ends the redrawn line so what follows starts on its own; off a terminal, says the final state. */
  finish(finalState?: string): void {
    if (!this.tty && finalState) this.status(finalState);
    if (this.drawn) this.out.write('\n');
    this.drawn = false;
  }
}
