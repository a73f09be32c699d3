/**
 * The two ways a command fails on purpose. Anything else that escapes a command is printed by
 * message too, but these say up front which exit code they mean.
 */

/** The command line is wrong: unknown command or flag, a missing or malformed value. Exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';

  constructor(
    message: string,
    /** The command whose `--help` to point at, if any. */
    readonly command?: string,
  ) {
    super(message);
  }
}

/** The work could not be done, and the message says why and what to do. Exit 1. */
export class CliError extends Error {
  override name = 'CliError';
}
