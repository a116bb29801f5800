// Crash clean-up: when a node dies without a word (SIGKILL), a surviving node notices that its
// heartbeat expired, removes its members from every room and announces each departure once.
//
// Runs against three nodes with --node-ttl 3 (crates/switchboard/tests/cluster.rs,
// `crash_cleanup`); node 2 is the one killed.

import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';

import {
  ask,
  closeAll,
  connect,
  join,
  NODE_IDS,
  NODE_TTL_MS,
  received,
  roomId,
  SERVER_URLS,
  step,
  waitForCount,
} from './lib/harness.mjs';
import { expectDepartures, fields, mediaKey, membersKey, roomWithTwoOnNode2 } from './lib/cluster.mjs';

afterEach(closeAll);

assert.equal(SERVER_URLS.length, 3, 'this file runs against three nodes');

/** The contract: ghosts are announced within the node TTL plus a few seconds. */
const CLEANUP_BOUND_MS = NODE_TTL_MS + 5000;
/** How long after the last expected departure a duplicate (a second reaper) is looked for. */
const DUPLICATE_WINDOW_MS = 2500;

test('the members of a SIGKILLed node are announced gone, once each, to their rooms on the surviving nodes, and leave no ghost in Redis', async () => {
  const [room1, room2, room3, room4] = [roomId('r1'), roomId('r2'), roomId('r3'), roomId('r4')];
  const on = (node) => connect({ node });
  const [a1, b1, a2, b2] = await Promise.all([on(0), on(1), on(0), on(1)]);
  const [c1, c2, c3, c4, c5, c6] = await Promise.all([2, 2, 2, 2, 2, 2].map(on));

  // room1: survivors on nodes 0 and 1 with two members of node 2; room2 and room3: one
  // survivor each; c1 is in room1 and room3; room4 holds only members of node 2.
  await join(a1, room1, 'a1');
  await join(c1, room1, 'c1');
  await join(b1, room1, 'b1');
  await join(c2, room1, 'c2');
  await join(a2, room2, 'a2');
  await join(c3, room2, 'c3');
  await join(b2, room3, 'b2');
  await join(c1, room3, 'c1');
  await join(c4, room3, 'c4');
  await join(c5, room4, 'c5');
  await join(c6, room4, 'c6');
  await ask(c1, 'media-state', { roomId: room1, mic: true, cam: true });
  await ask(a1, 'media-state', { roomId: room1, mic: false, cam: true });
  await ask(c3, 'media-state', { roomId: room2, mic: true, cam: false });
  await waitForCount(b1, 'user-connected', 3);
  await waitForCount(a2, 'media-state', 1);
  await waitForCount(b2, 'user-connected', 2);
  await waitForCount(b1, 'media-state', 2);

  const dead = { c1: c1.id, c2: c2.id, c3: c3.id, c4: c4.id };
  const expected = [
    [a1, [dead.c1, dead.c2]],
    [b1, [dead.c1, dead.c2]],
    [a2, [dead.c3]],
    [b2, [dead.c1, dead.c4]],
  ];
  const marks = new Map(expected.map(([socket]) => [socket, socket.log.length]));

  const killedAt = Date.now();
  assert.equal(await step('kill-node/2'), true);
  const elapsed = await expectDepartures(expected, marks, killedAt, CLEANUP_BOUND_MS, DUPLICATE_WINDOW_MS);
  console.log(`# dead members announced ${elapsed} ms after the SIGKILL (node ttl ${NODE_TTL_MS} ms)`);

  // No ghost in Redis: only survivors remain in the member and media hashes.
  assert.deepEqual(await fields(membersKey(room1)), [a1.id, b1.id].sort());
  assert.deepEqual(await fields(membersKey(room2)), [a2.id]);
  assert.deepEqual(await fields(membersKey(room3)), [b2.id]);
  assert.deepEqual(await fields(membersKey(room4)), []);
  assert.deepEqual(await fields(mediaKey(room1)), [a1.id]);
  assert.deepEqual(await fields(mediaKey(room2)), []);
  assert.equal(await step('redis', 'SCARD', `sb:node:{${NODE_IDS[2]}}:members`), 0, 'the dead node\'s member index');

  // The dead are unreachable, and a late joiner meets only the living.
  assert.equal((await ask(a1, '#rtcio:message', { target: dead.c1, data: {} })).code, 'not-in-room');
  const late = await connect({ node: 1 });
  const ack = await join(late, room1, 'late');
  assert.deepEqual(ack.peers, [
    { id: a1.id, name: 'a1', mic: false, cam: true },
    { id: b1.id, name: 'b1' },
  ]);
  assert.deepEqual(await step('alive'), [true, true, false]);

  // Survivors were not reaped by mistake: they still hear each other.
  await waitForCount(a1, 'user-connected', 3 + 1);
  assert.equal(received(a1, 'user-connected').at(-1).id, late.id);
});

test('a node SIGKILLed and restarted at once under the same id: its previous members are still announced gone, once each, and leave no ghost', async () => {
  assert.equal(await step('restart-node/2'), true); // the previous test left it dead
  const { room, a, b, dead } = await roomWithTwoOnNode2('restart');
  const marks = new Map([[a, a.log.length], [b, b.log.length]]);

  const killedAt = Date.now();
  assert.equal(await step('restart-node/2'), true);
  const elapsed = await expectDepartures([[a, dead], [b, dead]], marks, killedAt, CLEANUP_BOUND_MS, DUPLICATE_WINDOW_MS);
  console.log(`# members of the previous run announced ${elapsed} ms after the SIGKILL`);

  assert.deepEqual(await fields(membersKey(room)), [a.id, b.id].sort());
  assert.deepEqual(await fields(mediaKey(room)), []);
  const newcomer = await connect({ node: 2 });
  const ack = await join(newcomer, room, 'newcomer');
  assert.deepEqual(ack.peers, [{ id: a.id, name: 'a' }, { id: b.id, name: 'b' }]);
  assert.deepEqual(await step('redis', 'SMEMBERS', `sb:node:{${NODE_IDS[2]}}:members`), [`${room} ${newcomer.id}`]);
});

test('two nodes SIGKILLed at once: the last survivor announces the members of both, once each', async () => {
  const room = roomId('two-dead');
  const [a, b, c] = await Promise.all([0, 1, 2].map((node) => connect({ node })));
  await join(a, room, 'a');
  await join(b, room, 'b');
  await join(c, room, 'c');
  await waitForCount(a, 'user-connected', 2);
  const dead = [b.id, c.id];
  const marks = new Map([[a, a.log.length]]);

  const killedAt = Date.now();
  await Promise.all([step('kill-node/1'), step('kill-node/2')]);
  const elapsed = await expectDepartures([[a, dead]], marks, killedAt, CLEANUP_BOUND_MS, DUPLICATE_WINDOW_MS);
  console.log(`# members of two dead nodes announced ${elapsed} ms after the SIGKILLs`);
  assert.deepEqual(await fields(membersKey(room)), [a.id]);
  assert.deepEqual(await step('alive'), [true, false, false]);
  assert.equal((await ask(a, '#rtcio:message', { target: dead[1], data: {} })).code, 'not-in-room');
});
