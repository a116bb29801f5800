// Room capacity, per-socket rate limiting and the event size limit.
//
// Runs against: switchboard --max-room-size 3 --rate-limit 5 --rate-burst 10 --max-payload 4096
// Every socket has its own budget of 10 events at once, refilled at 5 per second, so each test
// uses fresh sockets and sends only what it needs. Also run against two nodes sharing one Redis
// (crates/switchboard/tests/cluster.rs), where the room capacity holds cluster-wide.

import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';

import {
  ask,
  assertStillWorks,
  closeAll,
  connect,
  connectMany,
  expectNone,
  join,
  QUIET_MS,
  received,
  roomId,
  sleep,
  waitFor,
  waitForCount,
  waitForError,
} from './lib/harness.mjs';

afterEach(closeAll);

/** Asserts that an ack refuses the event with `code`. */
function assertRefused(ack, code) {
  assert.equal(ack.ok, false, `expected a refusal, got ${JSON.stringify(ack)}`);
  assert.equal(ack.code, code);
  assert.equal(typeof ack.message, 'string');
}

/** Three sockets in a fresh room, with every introduction delivered. */
async function fullRoom() {
  const room = roomId();
  const members = await connectMany(3);
  for (const [i, member] of members.entries()) await join(member, room, `member-${i}`);
  const [first, second] = members;
  await waitForCount(first, '#rtcio:init-offer', 2);
  await waitForCount(second, '#rtcio:init-offer', 1);
  return { room, members };
}

test('a fourth member is refused with room-full, and the three members hear nothing of it', async () => {
  const { room, members } = await fullRoom();
  const marks = members.map((m) => m.log.length);
  const dave = await connect();

  const ack = await ask(dave, 'join-room', { roomId: room, name: 'dave' });
  assertRefused(ack, 'room-full');
  const error = await waitForError(dave, 'room-full');
  assert.deepEqual(error, { code: 'room-full', message: ack.message, event: 'join-room' });

  await Promise.all(members.map((member, i) => expectNone(member, '*', { since: marks[i] })));
  // Dave is not in the room: he cannot reach its members.
  assertRefused(await ask(dave, '#rtcio:message', { target: members[0].id, data: {} }), 'not-in-room');
});

test('a socket refused by a full room can join another room afterwards', async () => {
  const { room } = await fullRoom();
  const dave = await connect();
  assertRefused(await ask(dave, 'join-room', { roomId: room, name: 'dave' }), 'room-full');

  const other = roomId();
  const erin = await connect();
  await join(erin, other, 'erin');
  const ack = await join(dave, other, 'dave');
  assert.deepEqual(ack.peers, [{ id: erin.id, name: 'erin' }]);
  assert.deepEqual(await waitFor(erin, '#rtcio:init-offer'), { source: dave.id });
});

test('when a member of a full room leaves or disconnects, the next newcomer gets the seat', async () => {
  const { room, members } = await fullRoom();
  const [first, second, third] = members;
  const [dave, erin] = await connectMany(2);

  await ask(third, 'leave-room', { roomId: room });
  const daveAck = await join(dave, room, 'dave');
  assert.deepEqual(daveAck.peers.map((p) => p.id), [first.id, second.id]);

  assertRefused(await ask(erin, 'join-room', { roomId: room, name: 'erin' }), 'room-full');
  const firstId = first.id; // socket.io-client forgets it on disconnect
  first.disconnect();
  await waitFor(second, 'user-disconnected', (p) => p.id === firstId);
  const erinAck = await join(erin, room, 'erin');
  assert.deepEqual(erinAck.peers.map((p) => p.id), [second.id, dave.id]);
});

test('a member of a full room may send join-room again without being refused', async () => {
  const { room, members } = await fullRoom();
  const ack = await join(members[2], room, 'member-2');
  assert.deepEqual(ack.peers.map((p) => p.id), [members[0].id, members[1].id]);
});

test('a socket sending faster than its budget is refused with rate-limited, and recovers after a second', async () => {
  const room = roomId();
  const [alice, bob] = await connectMany(2);
  await join(alice, room, 'alice');
  await join(bob, room, 'bob');

  // 30 events at once: about the first 10 pass (the burst), the rest are refused.
  const SENT = 30;
  const acks = await Promise.all(
    Array.from({ length: SENT }, (_, i) =>
      ask(alice, 'media-state', { roomId: room, mic: i % 2 === 0, cam: true }),
    ),
  );
  const accepted = acks.filter((a) => a.ok).length;
  const refused = acks.filter((a) => !a.ok);
  assert.ok(accepted >= 5 && accepted <= 12, `${accepted} of ${SENT} events passed; expected about 10`);
  for (const ack of refused) assertRefused(ack, 'rate-limited');

  // Each refusal also came as an error event; only accepted updates reached the room.
  const errors = await waitForCount(alice, 'error', refused.length);
  assert.ok(errors.every((e) => e.code === 'rate-limited' && e.event === 'media-state'));
  await waitForCount(bob, 'media-state', accepted);
  await sleep(QUIET_MS);
  assert.equal(received(bob, 'media-state').length, accepted);

  // Still connected, and after a second the budget has refilled.
  assert.equal(alice.connected, true);
  await sleep(1100);
  assert.deepEqual(await ask(alice, 'media-state', { roomId: room, mic: false, cam: false }), { ok: true });
  await waitFor(bob, 'media-state', (p) => p.mic === false && p.cam === false);
});

test('an event larger than --max-payload is refused with payload-too-large; a smaller one is delivered', async () => {
  const room = roomId();
  const [alice, bob] = await connectMany(2);
  await join(alice, room, 'alice');
  await join(bob, room, 'bob');
  const envelope = (bytes) => ({ target: bob.id, data: { description: { type: 'offer', sdp: 'a'.repeat(bytes) } } });

  const tooBig = await ask(alice, '#rtcio:message', envelope(5 * 1024));
  assertRefused(tooBig, 'payload-too-large');
  const error = await waitForError(alice, 'payload-too-large');
  assert.deepEqual(error, { code: 'payload-too-large', message: tooBig.message, event: '#rtcio:message' });

  assert.deepEqual(await ask(alice, '#rtcio:message', envelope(3 * 1024)), { ok: true });
  const got = await waitFor(bob, '#rtcio:message');
  assert.equal(got.data.description.sdp.length, 3 * 1024);
  await sleep(QUIET_MS);
  assert.equal(received(bob, '#rtcio:message').length, 1, 'the oversized event must not be delivered');
  await assertStillWorks(alice);
});
