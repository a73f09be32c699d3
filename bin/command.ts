/** What every `bin/commands/<name>.ts` exports. */
export interface CommandModule {
  /** Printed by `lakehouse <name> --help`. */
  usage: string;
  /** Resolves with the exit code; throws UsageError, ConfigError, CliError or ApiError to fail. */
  run(args: string[]): Promise<number>;
}
