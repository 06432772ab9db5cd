// Prints a development join token signed with AUTH_JWT_SECRET alone on stdout.
//   node signaling-server/dist/cli/token.js --room R --sub S [--name N] [--grants signal,broadcast] [--ttl 3600]
import { USAGE, UsageError, mintJoinToken } from './mint-token.js';

mintJoinToken(process.argv.slice(2), process.env).then(
  (token) => {
    process.stdout.write(`${token}\n`);
  },
  (e: unknown) => {
    const message = e instanceof Error ? e.message : String(e);
    process.stderr.write(`token: ${message}\n${e instanceof UsageError ? `${USAGE}\n` : ''}`);
    process.exitCode = 1;
  },
);
