// Whether this node can have its port to itself. uWS listens with SO_REUSEPORT by default, so a
// second node on a taken port would start and silently share its traffic; the server listens
// exclusively (server.ts), and this check says why a port cannot be had, before anything else
// starts: a second run of the same command must not touch the database the first one uses.
import { createServer } from 'node:net';

/** Resolves when `host:port` is free to listen on; rejects with the reason (EADDRINUSE, EACCES, …). */
export function checkPortFree(host: string, port: number): Promise<void> {
  if (port === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => reject(new Error(portProblem(err), { cause: err })));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

function portProblem(err: NodeJS.ErrnoException): string {
  if (err.code === 'EADDRINUSE') return 'the port is taken (another node or program listens there): choose another PORT';
  if (err.code === 'EACCES') return 'not allowed to listen on this port (ports below 1024 need privileges)';
  if (err.code === 'EADDRNOTAVAIL') return 'HOST is not an address of this machine';
  return err.message;
}
