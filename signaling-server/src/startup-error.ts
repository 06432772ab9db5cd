// A start-up step that failed, named by the variable that configures what failed, so the node
// stops with one line an operator can act on ("DATABASE_URL: cannot use the database at …")
// instead of a stack trace. main.ts prints it; the steps stay unaware of environment names.

export class StartupError extends Error {
  constructor(
    readonly variable: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${variable}: ${message}`, options);
  }
}

/** Runs one start-up step; its failure becomes a StartupError naming `variable`. */
export async function startupStep<T>(variable: string, what: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    throw new StartupError(variable, `${what}: ${reasonOf(err)}`, { cause: err });
  }
}

/** One line saying why, from errors whose message may be empty (an AggregateError of every address tried). */
export function reasonOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const first = err instanceof AggregateError ? (err.errors[0] as Error | undefined) : undefined;
  const message = err.message || first?.message || '';
  const code = (err as { code?: unknown }).code;
  const withCode = typeof code === 'string' && code !== '' && !message.includes(code) ? `${message} (${code})` : message;
  return (withCode.trim() || err.name).split('\n')[0]!;
}

/** Where a URL points, without its user name and password: `host:port/path`. */
export function addressOf(url: string): string {
  try {
    const u = new URL(url);
    return `${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return '(an unreadable URL)';
  }
}
