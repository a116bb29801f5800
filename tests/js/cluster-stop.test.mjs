// A graceful stop: a node receiving SIGTERM drains (here with no wait and a one-second
// spread) and closes its sockets, and their departures reach their rooms on the other nodes
// (once each, as on any disconnect); the node's members leave the room hashes, and no reaper
// announces them a second time.
//
// Runs against three nodes with --node-ttl 3 (crates/switchboard/tests/cluster.rs,
// `graceful_stop`); node 2 is the one stopped.

import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';

import {
  closeAll,
  NODE_IDS,
  NODE_TTL_MS,
  SERVER_URLS,
  step,
} from './lib/harness.mjs';
import {
  expectDepartures,
  fields,
  mediaKey,
  membersKey,
  nodeMembersKey,
  roomWithTwoOnNode2,
} from './lib/cluster.mjs';

afterEach(closeAll);

assert.equal(SERVER_URLS.length, 3, 'this file runs against three nodes');

/** Departures of a stopped node's members are due at once; the TTL bound is the outer limit. */
const CLEANUP_BOUND_MS = NODE_TTL_MS + 5000;

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
