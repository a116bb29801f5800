// Helpers shared by the cluster scenarios (tests/js/cluster*.test.mjs): the Redis key schema
// (docs/architecture.md) and departure bookkeeping. Redis is read through the Rust test's
// `redis` step, so these work only when cargo runs the file.

import assert from 'node:assert/strict';

import { ask, connect, join, roomId, sleep, step, waitForCount } from './harness.mjs';

/** The hash of a room's members: socket id -> {"name","node","joined_at_ms"}. */
export const membersKey = (room) => `sb:room:{${room}}:members`;
/** The hash of a room's media state: socket id -> {"mic","cam"}. */
export const mediaKey = (room) => `sb:room:{${room}}:media`;
/** The set of a node's members, as "<roomId> <socketId>". */
export const nodeMembersKey = (nodeId) => `sb:node:{${nodeId}}:members`;

/** Sorted fields of a Redis hash. */
export async function fields(key) {
  return ((await step('redis', 'HKEYS', key)) ?? []).sort();
}

/** A Redis hash as an object, values parsed as JSON. */
export async function hash(key) {
  const flat = (await step('redis', 'HGETALL', key)) ?? [];
  const object = {};
  for (let i = 0; i + 1 < flat.length; i += 2) object[flat[i]] = JSON.parse(flat[i + 1]);
  return object;
}

/** How many `event`s about member `id` the socket received after `mark`. */
export function count(socket, event, id, mark) {
  return socket.log.slice(mark).filter((e) => e.event === event && e.args[0]?.id === id).length;
}

/**
 * Waits (at most `boundMs` from `since`) until every socket of `expected` ([socket, [ids]])
 * has received #rtcio:peer-left and user-disconnected about each of its ids after its mark;
 * then, after `duplicateWindowMs`, asserts that each came exactly once and that nobody else
 * was announced gone. Resolves with the time it took.
 */
export async function expectDepartures(expected, marks, since, boundMs, duplicateWindowMs) {
  const heard = (socket, id) => count(socket, '#rtcio:peer-left', id, marks.get(socket)) >= 1
    && count(socket, 'user-disconnected', id, marks.get(socket)) >= 1;
  const announced = () => expected.every(([socket, ids]) => ids.every((id) => heard(socket, id)));
  while (!announced() && Date.now() - since < boundMs) await sleep(50);
  const elapsed = Date.now() - since;
  const missing = expected.flatMap(([socket, ids]) => ids
    .filter((id) => !heard(socket, id))
    .map((id) => `${socket.id} (node ${socket.node}) about ${id}`));
  assert.deepEqual(missing, [], `departures not announced within ${boundMs} ms`);

  await sleep(duplicateWindowMs);
  for (const [socket, ids] of expected) {
    const mark = marks.get(socket);
    for (const id of ids) {
      assert.equal(count(socket, '#rtcio:peer-left', id, mark), 1, `${socket.id}: #rtcio:peer-left about ${id}`);
      assert.equal(count(socket, 'user-disconnected', id, mark), 1, `${socket.id}: user-disconnected about ${id}`);
    }
    const departures = socket.log.slice(mark)
      .filter((e) => e.event === 'user-disconnected' || e.event === '#rtcio:peer-left')
      .map((e) => e.args[0].id);
    assert.deepEqual([...new Set(departures)].sort(), [...ids].sort(), `${socket.id}: departures`);
  }
  return elapsed;
}

/** A room with survivors `a` (node 0) and `b` (node 1) and two members of node 2 between them. */
export async function roomWithTwoOnNode2(label) {
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
