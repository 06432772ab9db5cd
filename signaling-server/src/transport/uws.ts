// Loads uWebSockets.js and refuses the package's silent pure-JS fallback: that fallback works, but
// at a fraction of the speed this server is built for, so running on it must be a decision.
import { createRequire } from 'node:module';
import type * as UWS from 'uWebSockets.js';

export type Uws = typeof UWS;

export function loadUws(allowFallback: boolean): { uws: Uws; isNative: boolean } {
  const require = createRequire(import.meta.url);
  const uws = require('uWebSockets.js') as Uws;
  const isNative = Function.prototype.toString.call(uws.App).includes('[native code]');
  if (!isNative && !allowFallback) {
    throw new Error(
      `the native uWebSockets.js binary did not load for ${process.platform}-${process.arch} ` +
        `(Node ABI ${process.versions.modules}); refusing to run on the slow JavaScript fallback. ` +
        'Use Node 20 on glibc 2.27+, or set ALLOW_UWS_FALLBACK=on to run anyway.',
    );
  }
  return { uws, isNative };
}
