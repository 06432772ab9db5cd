// CI runs the suite on Node 20 and on Node 22: on each the node must find a native uWebSockets.js
// build, not the slow fallback it refuses.
import { expect, it } from 'vitest';
import { loadUws } from '../../src/transport/uws.js';

it(`finds a native uWebSockets.js build for the running Node (${process.version})`, async () => {
  const { uws, isNative } = await loadUws(false);
  expect(isNative).toBe(true);
  const app = uws.App();
  await new Promise<void>((resolve, reject) =>
    app.listen('127.0.0.1', 0, (socket) => {
      if (!socket) return reject(new Error('uWS did not listen'));
      expect(uws.us_socket_local_port(socket)).toBeGreaterThan(0);
      uws.us_listen_socket_close(socket);
      resolve();
    }),
  );
});
