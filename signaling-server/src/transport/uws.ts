// Loads the uWebSockets.js build made for the running Node, and refuses the package's silent
// pure-JS fallback: that fallback works, but at a fraction of the speed this server is built for,
// so running on it must be a decision. The native binaries are built per Node ABI: the
// `uWebSockets.js` dependency (trufflesuite's build of v20.30) has Node 20's, the optional
// `uws-pack` (a repack of upstream's v20 binaries) Node 22's; docs/deployment.md "Node versions"
// says why these two.
import { createRequire } from 'node:module';
import type * as UWS from 'uWebSockets.js';

export type Uws = typeof UWS;

/** `process.versions.modules` of Node 22, the one ABI that `uws-pack` is loaded for. */
const NODE_22_ABI = '127';
/**
 * A name, not a literal import: npm leaves uws-pack out on Node 20 (its engines say >=22), so the
 * compiler must not look for it there.
 */
const UWS_PACK: string = 'uws-pack';

async function importUwsPack(): Promise<Uws> {
  try {
    // Both builds export the same uWS.js v20 API; ours is typed by the Node 20 one.
    return (await import(UWS_PACK)) as Uws;
  } catch (err) {
    throw new Error(
      `Node ${process.versions.node} needs the optional dependency uws-pack for its uWebSockets.js binary, ` +
        `and it did not load (install without --omit=optional): ${(err as Error).message}`,
    );
  }
}

export async function loadUws(allowFallback: boolean): Promise<{ uws: Uws; isNative: boolean }> {
  const uws =
    process.versions.modules === NODE_22_ABI ? await importUwsPack() : (createRequire(import.meta.url)('uWebSockets.js') as Uws);
  const isNative = Function.prototype.toString.call(uws.App).includes('[native code]');
  if (!isNative && !allowFallback) {
    throw new Error(
      `the native uWebSockets.js binary did not load for ${process.platform}-${process.arch} ` +
        `(Node ${process.versions.node}, ABI ${process.versions.modules}); refusing to run on the slow JavaScript fallback. ` +
        'Use Node 20 or 22 on glibc 2.27+, or set ALLOW_UWS_FALLBACK=on to run anyway.',
    );
  }
  return { uws, isNative };
}
