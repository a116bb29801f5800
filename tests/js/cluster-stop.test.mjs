// A graceful stop: a node receiving SIGTERM closes its sockets, and their departures reach
// their rooms on the other nodes (once each, as on any disconnect); the node's members leave
// the room hashes, and no reaper announces them a second time.
//
// Runs against three nodes with --node-ttl 3 (crates/switchboard/tests/cluster.rs,
// `graceful_stop`); node 2 is the one stopped.

import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';

import {
  ask,
  closeAll,
  connect,
  join,
  NODE_IDS,
  NODE_TTL_MS,
  roomId,
  SERVER_URLS,
  step,
  waitForCount,
} from './lib/harness.mjs';
import { expectDepartures, fields, mediaKey, membersKey, nodeMembersKey } from './lib/cluster.mjs';

afterEach(closeAll);

assert.equal(SERVER_URLS.length, 3, 'this file runs against three nodes');

/** Departures of a stopped node's members are due at once; the TTL bound is the outer limit. */
const CLEANUP_BOUND_MS = NODE_TTL_MS + 5000;

/** A room with survivors `a` (node 0) and `b` (node 1) and two members of node 2 between them. */
async function roomWithTwoOnNode2(label) {
  const room = roomId(label);
  const [a, c1, b, c2] = await Promise.all([0, 2, 1, 2].map((node) => connect({ node })));
  await join(a, room, 'a');
  await join(c1, room, 'c1');
  await join(b, room, 'b');
  await join(c2, room, 'c2');
  await ask(c1, 'media-state', { roomId: room, mic: true, cam: false });
  await waitForCount(b, 'user-connected', 3);
  await waitForCount(a, 'media-state', 1);
  await waitForCount(b, 'media-state', 1);
  return { room, a, b, dead: [c1.id, c2.id] };
}

test('a node stopped with SIGTERM: its members are announced gone, once each, and leave no ghost', async () => {
  const { room, a, b, dead } = await roomWithTwoOnNode2('term');
  const marks = new Map([[a, a.log.length], [b, b.log.length]]);

  const stoppedAt = Date.now();
  assert.equal(await step('term-node/2'), true, 'node 2 did not exit within 10 s of SIGTERM');
  // Long enough for a reaper to announce them a second time if the node left them behind.
  const elapsed = await expectDepartures([[a, dead], [b, dead]], marks, stoppedAt, CLEANUP_BOUND_MS, NODE_TTL_MS + 3000);
  console.log(`# members of a stopped node announced ${elapsed} ms after SIGTERM`);
  assert.deepEqual(await fields(membersKey(room)), [a.id, b.id].sort());
  assert.deepEqual(await fields(mediaKey(room)), []);
  assert.equal(await step('redis', 'SCARD', nodeMembersKey(NODE_IDS[2])), 0);
});
