// Room capacity across a cluster: --max-room-size holds for the room as a whole, however many
// nodes its joins come through and however simultaneous they are.
//
// Runs against two nodes started with --max-room-size 4 (crates/switchboard/tests/cluster.rs,
// `room_full_race`). Successive sockets alternate between the nodes.

import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';

import {
  ask,
  closeAll,
  connect,
  connectMany,
  join,
  QUIET_MS,
  received,
  roomId,
  SERVER_URLS,
  sleep,
  step,
  waitForCount,
} from './lib/harness.mjs';
import { membersKey } from './lib/cluster.mjs';

afterEach(closeAll);

assert.equal(SERVER_URLS.length, 2, 'this file runs against two nodes');

/** --max-room-size of the nodes under test. */
const CAPACITY = 4;
/** Sockets racing for the seats of one room (half on each node). */
const RACERS = 30;
/** Rooms raced for, one after the other. */
const ROUNDS = 5;


/** The socket ids in the room's members hash, sorted. */
async function membersInRedis(room) {
  return ((await step('redis', 'HKEYS', membersKey(room))) ?? []).sort();
}

test(`${RACERS} simultaneous joins from two nodes admit exactly ${CAPACITY}, every round, and the admitted meet each other once`, async () => {
  for (let round = 1; round <= ROUNDS; round++) {
    const room = roomId(`race${round}`);
    const racers = await connectMany(RACERS);
    assert.deepEqual(new Set(racers.map((s) => s.node)), new Set([0, 1]));

    const acks = await Promise.all(
      racers.map((socket, i) => ask(socket, 'join-room', { roomId: room, name: `racer${i}` })),
    );
    const admitted = racers.filter((_, i) => acks[i].ok);
    const refusals = acks.filter((a) => !a.ok);
    assert.equal(admitted.length, CAPACITY, `round ${round}: ${admitted.length} joins admitted`);
    assert.deepEqual(
      [...new Set(refusals.map((a) => a.code))],
      ['room-full'],
      `round ${round}: refusals ${JSON.stringify(refusals.slice(0, 3))}`,
    );
    assert.deepEqual(await membersInRedis(room), admitted.map((s) => s.id).sort(), `round ${round}: room hash`);

    // The admitted meet each other exactly once; nobody hears of a refused socket.
    for (const member of admitted) await waitForCount(member, 'user-connected', CAPACITY - 1);
    await sleep(QUIET_MS);
    const admittedIds = admitted.map((s) => s.id);
    for (const member of admitted) {
      const met = received(member, 'user-connected').map((u) => u.id).sort();
      assert.deepEqual(met, admittedIds.filter((id) => id !== member.id).sort(), `round ${round}: ${member.id} met`);
    }
    const offers = admitted.reduce((n, s) => n + received(s, '#rtcio:init-offer').length, 0);
    assert.equal(offers, (CAPACITY * (CAPACITY - 1)) / 2, `round ${round}: one offer per pair`);
    for (const [i, socket] of racers.entries()) {
      if (acks[i].ok) continue;
      const events = socket.log.map((e) => e.event);
      assert.deepEqual(events, ['error'], `round ${round}: a refused socket received ${events}`);
    }
    closeAll();
  }
});

test('a seat freed on one node by leave-room or by disconnect can be taken from the other node, and only one', async () => {
  const room = roomId();
  const members = await connectMany(CAPACITY); // nodes 0, 1, 0, 1 or 1, 0, 1, 0
  for (const [i, member] of members.entries()) await join(member, room, `m${i}`);
  const waiting = await Promise.all([connect({ node: 0 }), connect({ node: 1 })]);
  for (const socket of waiting) {
    assert.equal((await ask(socket, 'join-room', { roomId: room, name: 'w' })).code, 'room-full');
  }

  // A member on node 0 leaves; both waiting sockets race for its seat.
  const leaver = members.find((m) => m.node === 0);
  assert.deepEqual(await ask(leaver, 'leave-room', { roomId: room }), { ok: true });
  const acks = await Promise.all(waiting.map((s) => ask(s, 'join-room', { roomId: room, name: 'w' })));
  assert.equal(acks.filter((a) => a.ok).length, 1, `after one leave: ${JSON.stringify(acks)}`);
  assert.equal((await membersInRedis(room)).length, CAPACITY);

  // A member on node 1 disconnects; the socket still waiting takes its seat.
  const stillWaiting = waiting[acks.findIndex((a) => !a.ok)];
  const quitter = members.find((m) => m.node === 1);
  quitter.disconnect();
  const start = Date.now();
  let ack;
  do {
    await sleep(50);
    ack = await ask(stillWaiting, 'join-room', { roomId: room, name: 'w' });
  } while (!ack.ok && ack.code === 'room-full' && Date.now() - start < 3000);
  assert.equal(ack.ok, true, `the seat of a disconnected member was not freed: ${JSON.stringify(ack)}`);
  assert.equal((await membersInRedis(room)).length, CAPACITY);
});
