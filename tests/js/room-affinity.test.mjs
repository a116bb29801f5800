// Room affinity: three nodes and Redis behind nginx configured by the shipped
// docker/nginx-room-affinity.conf (`hash` on the `room` of the connection query, consistent).
// Clients name their room in the query and come from many loopback addresses (lib/proxy.mjs),
// so any grouping by node is the room's doing, not the address's.
//
// Runs from crates/switchboard/tests/nginx.rs (`room_affinity_through_nginx`), which starts
// the nodes with a 1 s ping interval (every long-poll ends and is reissued each second) and
// short drain times. The drain comes last: it stops a node for good.

import assert from 'node:assert/strict';
import { after, afterEach, test } from 'node:test';

import { AppClient, lostRelays } from './lib/app-client.mjs';
import { hash, membersKey } from './lib/cluster.mjs';
import { closeAll, join, NODE_IDS, roomId, sleep, step, waitFor, waitForCount, waitUntil } from './lib/harness.mjs';
import { addressesByNode, clientAddress, closeAgents, connectVia, nodeBehind, watchTrouble } from './lib/proxy.mjs';

afterEach(closeAll);
after(closeAgents);

assert.equal(NODE_IDS.length, 3, 'this file runs against three nodes');

/** Envelopes each peer of a long-polling pair sends the other. */
const RELAYS = 40;
/** A relay whose ends stayed connected this long after it was sent must have arrived. */
const GRACE_MS = 1500;

/** Socket id -> id of the node holding it, for every member of `room` (Redis' room hash). */
async function placement(room) {
  const members = await hash(membersKey(room));
  return new Map(Object.entries(members).map(([id, member]) => [id, member.node]));
}

/** The one node every member of `room` is on; fails if they are split. */
async function nodeOfRoom(room) {
  const nodes = new Set((await placement(room)).values());
  assert.equal(nodes.size, 1, `room ${room} is on one node, not ${[...nodes].join(', ')}`);
  return [...nodes][0];
}

test('every member of a room lands on the node its room hashes to, whatever its address', async () => {
  let next = 0;
  const rooms = [];
  for (let r = 0; r < 12; r++) {
    const room = roomId('affinity');
    const members = [];
    for (let k = 0; k < 2 + (r % 3); k++) {
      // Polling first, then the upgrade: both must reach the room's node.
      const socket = await connectVia(clientAddress(next++), { query: { room }, transports: ['polling', 'websocket'] });
      await join(socket, room, `m${k}`);
      members.push(socket);
    }
    rooms.push({ room, members });
  }
  const used = new Set();
  for (const { room, members } of rooms) {
    const node = await nodeOfRoom(room);
    assert.equal(node, await nodeBehind(clientAddress(500), room), `room ${room} is where nginx hashes it`);
    assert.equal((await placement(room)).size, members.length);
    used.add(node);
    // And the room works: the last joiner hears from the first.
    const [first, last] = [members[0], members.at(-1)];
    first.emit('#rtcio:message', { source: first.id, target: last.id, data: { mid: room } });
    assert.deepEqual((await waitFor(last, '#rtcio:message')).data, { mid: room });
  }
  console.log(`# 12 rooms on ${used.size} nodes`);
  assert.ok(used.size >= 2, 'rooms are spread over the nodes');
});

test('a request without a room is hashed by its address: such clients still spread and stay put', async () => {
  const byNode = await addressesByNode(24);
  assert.ok(byNode.size >= 2, `clients without a room all went to ${[...byNode.keys()]}`);
  for (const [node, addresses] of byNode) {
    for (const address of addresses) assert.equal(await nodeBehind(address), node, `${address} stays on ${node}`);
  }
});

test('long-polling members of a room keep reaching their session\'s node: no "Session ID unknown"', async () => {
  const trouble = [];
  const pairs = [];
  for (let i = 0; i < 6; i++) {
    const room = roomId('poll');
    const first = await connectVia(clientAddress(100 + 2 * i), { query: { room }, transports: ['polling'] });
    const second = await connectVia(clientAddress(101 + 2 * i), { query: { room }, transports: ['polling'] });
    for (const socket of [first, second]) watchTrouble(socket, trouble);
    await join(first, room, 'first');
    await join(second, room, 'second');
    await waitFor(first, '#rtcio:init-offer');
    await nodeOfRoom(room);
    pairs.push([first, second]);
  }
  for (let n = 0; n < RELAYS; n++) {
    for (const [first, second] of pairs) {
      first.emit('#rtcio:message', { source: first.id, target: second.id, data: { n } });
      second.emit('#rtcio:message', { source: second.id, target: first.id, data: { n } });
    }
    await sleep(75); // 3 s in all: three ping cycles, dozens of polls per client
  }
  const sequence = Array.from({ length: RELAYS }, (_, n) => n);
  for (const [first, second] of pairs) {
    assert.deepEqual((await waitForCount(second, '#rtcio:message', RELAYS)).map((m) => m.data.n), sequence);
    assert.deepEqual((await waitForCount(first, '#rtcio:message', RELAYS)).map((m) => m.data.n), sequence);
    for (const socket of [first, second]) {
      assert.equal(socket.io.engine.transport.name, 'polling');
      assert.equal(socket.connected, true);
    }
  }
  assert.deepEqual(trouble, [], 'no poll reached a node that did not know its session');
});

test('a drain moves each of the node\'s rooms whole to one other node, where it relays again', async () => {
  const clients = [];
  try {
    const rooms = Array.from({ length: 12 }, () => roomId('drain'));
    rooms.forEach((room, r) => {
      for (let k = 0; k < 3; k++) {
        const i = 200 + 3 * r + k;
        clients.push(new AppClient(clientAddress(i), room, `c${i}`, { roomInQuery: true }));
      }
    });
    const allBack = () => clients.every((c) => c.socket.connected && c.inRoom);
    await waitUntil(allBack, 'every client joined its room', 15_000);

    const before = new Map();
    for (const room of rooms) before.set(room, await nodeOfRoom(room));
    const count = (node) => rooms.filter((room) => before.get(room) === node).length;
    const victim = NODE_IDS.reduce((a, b) => (count(b) > count(a) ? b : a));
    const moving = rooms.filter((room) => before.get(room) === victim);
    console.log(`# rooms per node: ${NODE_IDS.map((n) => `${n} ${count(n)}`).join(', ')}; draining ${victim}`);

    let loading = true;
    const relaying = (async () => {
      while (loading) {
        for (const c of clients) c.relayToPeers();
        await sleep(100);
      }
    })();
    await sleep(1000);
    const { exited_after_ms: exited } = await step(`drain-node/${NODE_IDS.indexOf(victim)}`);
    console.log(`# ${victim} exited ${exited} ms after SIGTERM`);
    await waitUntil(allBack, 'every client is back in its room', 15_000);
    await sleep(1000); // relays between the moved members, now on their new node
    loading = false;
    await relaying;
    await sleep(GRACE_MS);

    for (const room of rooms) {
      const node = await nodeOfRoom(room);
      const members = clients.filter((c) => c.room === room);
      if (moving.includes(room)) {
        assert.notEqual(node, victim);
        assert.equal(node, await nodeBehind(clientAddress(500), room), `room ${room} moved where nginx now hashes it`);
        console.log(`# room ${room}: ${victim} -> ${node}, ${members.length} members together`);
        for (const c of members) {
          assert.equal(c.ids.length, 2, `${c.name} reconnected once`);
          const heard = [...c.got].filter((key) => key.includes(`>${c.id}#`));
          assert.ok(heard.length > 0, `${c.name} received relays on its new node`);
        }
      } else {
        assert.equal(node, before.get(room), `room ${room} stayed on ${before.get(room)}`);
        for (const c of members) assert.equal(c.ids.length, 1, `${c.name} was not moved`);
      }
    }
    const failures = clients.flatMap((c) => c.failures.map((f) => `${c.name}: ${f}`));
    assert.deepEqual(failures, [], 'no client failed to reconnect or to rejoin');
    const { owed, lost } = lostRelays(clients, GRACE_MS);
    console.log(`# ${owed} relays owed, ${lost.length} lost`);
    assert.deepEqual(lost.slice(0, 10), [], `${lost.length} relays between sockets that stayed connected were lost`);
  } finally {
    for (const c of clients) c.close();
  }
});
