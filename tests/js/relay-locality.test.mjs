// How many relays stay on one node: the same load through nginx with ip_hash
// (docker/nginx.conf) and with room affinity (docker/nginx-room-affinity.conf), both in front
// of the same three nodes and Redis. A relay between two members of a room on one node is
// delivered by that node; between nodes it goes through Redis (one HGET, one SPUBLISH).
//
// The share is read from the nodes' `switchboard_relay_routes_total{route="local"|"remote"}`
// counters (summed over the nodes, before and after the load) when they export them, and
// otherwise computed from where each member sits (Redis' room hashes). Both are printed.
//
// Runs from crates/switchboard/tests/nginx.rs (`local_relay_share_with_and_without_room_affinity`):
//   LOCALITY_IP_HASH_URL        nginx with docker/nginx.conf
//   LOCALITY_ROOM_AFFINITY_URL  nginx with docker/nginx-room-affinity.conf

import assert from 'node:assert/strict';
import { after, afterEach, test } from 'node:test';

import { hash, membersKey } from './lib/cluster.mjs';
import { closeAll, httpGet, join, NODE_IDS, roomId, sleep, waitForCount } from './lib/harness.mjs';
import { clientAddress, closeAgents, connectVia } from './lib/proxy.mjs';

afterEach(closeAll);
after(closeAgents);

assert.equal(NODE_IDS.length, 3, 'this file runs against three nodes');

const ROOMS = 24;
/** Relays each member sends each roommate. */
const RELAYS_PER_PAIR = 20;
/** Measured shares by configuration, for the comparison at the end. */
const shares = new Map();

/**
 * Client address indices in a fixed pseudo-random order. Consecutive /24s are a poor model of
 * a room's members: ip_hash's arithmetic sends consecutive networks to different nodes, so
 * they would almost never share one. Real members come from unrelated networks; a seeded
 * shuffle of 1,000 networks stands in for them, and keeps the figures reproducible.
 */
const ADDRESS_ORDER = (() => {
  let seed = 12;
  const random = () => {
    // mulberry32
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const order = Array.from({ length: 1000 }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
})();

/** Sum over the nodes of switchboard_relay_routes_total by route, or null if no node has it. */
async function relayRoutes() {
  const sums = { local: 0, remote: 0 };
  let found = false;
  for (let node = 0; node < NODE_IDS.length; node++) {
    const { status, body } = await httpGet(node, '/metrics');
    assert.equal(status, 200, 'GET /metrics');
    for (const line of String(body).split('\n')) {
      const m = line.match(/^switchboard_relay_routes_total\{[^}]*route="(local|remote)"[^}]*\}\s+(\S+)/);
      if (m) {
        sums[m[1]] += Number(m[2]);
        found = true;
      }
    }
  }
  return found ? sums : null;
}

/**
 * ROOMS rooms of two or three members, each member from its own network (ADDRESS_ORDER) and
 * naming its room in the query; every member sends RELAYS_PER_PAIR relays to each roommate. Resolves with the
 * share of node-local relays and how it was measured.
 */
async function measure(label, url) {
  const rooms = [];
  let next = 0;
  for (let r = 0; r < ROOMS; r++) {
    const room = roomId('locality');
    const members = [];
    for (let k = 0; k < 2 + (r % 2); k++) {
      const socket = await connectVia(clientAddress(ADDRESS_ORDER[next++]), { url, query: { room } });
      await join(socket, room, `m${k}`);
      members.push(socket);
    }
    rooms.push({ room, members });
  }
  // Every member has met every roommate before the relays start.
  for (const { members } of rooms) {
    for (const socket of members) await waitForCount(socket, 'user-connected', members.length - 1);
  }

  const before = await relayRoutes();
  let sent = 0;
  for (let n = 0; n < RELAYS_PER_PAIR; n++) {
    for (const { members } of rooms) {
      for (const from of members) {
        for (const to of members) {
          if (from === to) continue;
          from.emit('#rtcio:message', { source: from.id, target: to.id, data: { n } });
          sent++;
        }
      }
    }
    await sleep(20);
  }
  for (const { members } of rooms) {
    for (const socket of members) await waitForCount(socket, '#rtcio:message', RELAYS_PER_PAIR * (members.length - 1), 10_000);
  }
  const after = await relayRoutes();

  // From where the members sit: a relay is local when sender and target share a node.
  let local = 0;
  const used = new Set();
  for (const { room, members } of rooms) {
    const nodes = new Map(Object.entries(await hash(membersKey(room))).map(([id, m]) => [id, m.node]));
    for (const from of members) {
      used.add(nodes.get(from.id));
      for (const to of members) {
        if (from !== to && nodes.get(from.id) === nodes.get(to.id)) local += RELAYS_PER_PAIR;
      }
    }
  }
  const placed = { local, remote: sent - local };
  const counted = after && before && { local: after.local - before.local, remote: after.remote - before.remote };
  const pct = ({ local, remote }) => `${local} of ${local + remote} (${((100 * local) / (local + remote)).toFixed(1)}%)`;
  console.log(`# ${label}: ${ROOMS} rooms, ${next} clients on ${used.size} nodes, ${sent} relays`);
  console.log(`#   node-local by placement: ${pct(placed)}`);
  console.log(`#   node-local by switchboard_relay_routes_total: ${counted ? pct(counted) : 'not exported by these nodes'}`);
  if (counted) {
    assert.equal(counted.local + counted.remote, sent, 'each relay counted once, on its sender\'s node');
    assert.equal(counted.local, placed.local, 'local relays are those between members of one node');
  }
  const measured = counted ?? placed;
  return { share: measured.local / (measured.local + measured.remote), placedShare: local / sent };
}

test('ip_hash: the members of a room land wherever their addresses hash', async () => {
  shares.set('ip_hash', await measure('ip_hash', process.env.LOCALITY_IP_HASH_URL));
});

test('room affinity: every relay is delivered by the node it came in on', async () => {
  const measured = await measure('room affinity', process.env.LOCALITY_ROOM_AFFINITY_URL);
  shares.set('room affinity', measured);
  assert.equal(measured.placedShare, 1, 'every room on one node');
  assert.ok(measured.share >= 0.95, `node-local share ${measured.share}`);
});

test('room affinity keeps more relays on their node than ip_hash', () => {
  const [ipHash, affinity] = [shares.get('ip_hash'), shares.get('room affinity')];
  assert.ok(ipHash && affinity, 'both loads ran');
  console.log(`# node-local relays: ip_hash ${(100 * ipHash.share).toFixed(1)}%, room affinity ${(100 * affinity.share).toFixed(1)}%`);
  assert.ok(affinity.share > ipHash.share);
});
