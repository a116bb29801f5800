// Draining a busy node behind nginx: SIGTERM on a node holding SOCKETS clients (in rooms of
// two, relaying), with two other nodes beside it. The node must exit within
// --drain-wait + --drain-spread, having moved its clients in batches spread over the spread
// time (no thundering herd), and every client must be connected to another node and back in
// its room, with no relay lost between sockets that stayed connected.
//
// Runs from crates/switchboard/tests/nginx.rs (`drain_moves_every_socket`), which passes the
// drain times and the socket count.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { AppClient, lostRelays } from './lib/app-client.mjs';
import { httpGet, NODE_IDS, roomId, sleep, step, waitUntil } from './lib/harness.mjs';
import { addressesByNode, closeAgents } from './lib/proxy.mjs';

after(closeAgents);

const SOCKETS = Number(process.env.DRAIN_TEST_SOCKETS ?? '1000');
const DRAIN_WAIT_MS = Number(process.env.DRAIN_WAIT_SECS) * 1000;
const DRAIN_SPREAD_MS = Number(process.env.DRAIN_SPREAD_SECS) * 1000;
/** Process exit and reaping, beyond the node's own bound of wait + spread. */
const EXIT_MARGIN_MS = 300;
const GRACE_MS = 3000;

const socketsOn = async (node) => (await httpGet(node, '/health')).body.sockets;

const clients = [];
after(() => { for (const c of clients) c.close(); });

test(`SIGTERM on a node with ${SOCKETS} sockets moves every one of them to the other nodes`, async () => {
  // Client networks nginx sends to node 0; many sockets per address (distinct source ports).
  const addresses = (await addressesByNode(30)).get(NODE_IDS[0]);
  assert.ok(addresses?.length > 0, 'some client networks map to node 0');
  for (let i = 0; i < SOCKETS; i++) {
    const room = i % 2 === 0 ? roomId('drain') : clients[i - 1].room;
    clients.push(new AppClient(addresses[i % addresses.length], room, `c${i}`));
    if (i % 50 === 49) await sleep(50); // a steady connect rate rather than one burst
  }
  const allBack = () => clients.every((c) => c.socket.connected && c.inRoom);
  await waitUntil(allBack, `all ${SOCKETS} clients joined`, 60_000, 100);
  assert.equal(await socketsOn(0), SOCKETS, `node 0 holds all ${SOCKETS} sockets`);

  let loading = true;
  const relaying = (async () => {
    while (loading) {
      for (const c of clients) c.relayToPeers();
      await sleep(500);
    }
  })();
  await sleep(1000);

  const { exited_after_ms: exited } = await step('drain-node/0');
  console.log(`# node 0 exited ${exited} ms after SIGTERM (wait ${DRAIN_WAIT_MS} ms + spread ${DRAIN_SPREAD_MS} ms)`);
  assert.ok(exited <= DRAIN_WAIT_MS + DRAIN_SPREAD_MS + EXIT_MARGIN_MS, `exited after ${exited} ms`);

  await waitUntil(allBack, 'every client is back in its room on another node', 30_000, 100);
  loading = false;
  await relaying;
  await sleep(GRACE_MS);
  const [on1, on2] = [await socketsOn(1), await socketsOn(2)];
  console.log(`# after the drain: ${on1} sockets on node 1, ${on2} on node 2`);
  assert.equal(on1 + on2, SOCKETS, 'every client reconnected to one of the other nodes');

  // Moved in batches: the disconnects span most of the spread time, not one instant.
  const cuts = clients.map((c) => c.disconnectedAt.get(c.ids[0])).filter(Boolean).sort((a, b) => a - b);
  assert.equal(cuts.length, SOCKETS, 'every client was moved');
  const span = cuts.at(-1) - cuts[0];
  const perSecond = new Map();
  for (const at of cuts) perSecond.set(Math.floor((at - cuts[0]) / 1000), (perSecond.get(Math.floor((at - cuts[0]) / 1000)) ?? 0) + 1);
  console.log(`# disconnects spread over ${span} ms; per second: ${[...perSecond.values()].join(', ')}`);
  assert.ok(span >= DRAIN_SPREAD_MS * 0.6, `disconnects spread over ${span} ms`);
  assert.ok(Math.max(...perSecond.values()) <= SOCKETS / 2, 'no more than half of the sockets moved in any one second');

  const failures = clients.flatMap((c) => c.failures.map((f) => `${c.name}: ${f}`));
  assert.deepEqual(failures.slice(0, 10), [], `${failures.length} clients failed to reconnect or rejoin`);
  const { owed, lost } = lostRelays(clients, GRACE_MS);
  console.log(`# ${owed} relays owed, ${lost.length} lost`);
  assert.deepEqual(lost.slice(0, 10), [], `${lost.length} relays between sockets that stayed connected were lost`);
  for (const c of clients) c.close();
});
