// A rolling restart under load: three nodes and Redis behind nginx (docker/nginx.conf);
// clients in rooms of three keep joining, relaying and leaving while each node in turn is
// drained (SIGTERM), exits, and is started again.
//
// Runs from crates/switchboard/tests/nginx.rs (`rolling_restart`) with short drain times.
// Asserts what users would notice: every client reconnects, every client is back in its room
// after each restart, no relay between two sockets that stayed connected is lost, and
// presence (Redis room hashes, each client's roster) converges with no ghost.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { AppClient, lostRelays } from './lib/app-client.mjs';
import { fields, membersKey } from './lib/cluster.mjs';
import { roomId, sleep, step, waitUntil } from './lib/harness.mjs';
import { clientAddress, closeAgents } from './lib/proxy.mjs';

after(closeAgents);

const ROOMS = 12;
const ROOM_SIZE = 3;
/** Each client relays to each roommate this often. */
const RELAY_EVERY_MS = 100;
/** One client leaves its room and joins again this often. */
const CHURN_EVERY_MS = 400;
/** A relay whose ends stayed connected this long after it was sent must have arrived. */
const GRACE_MS = 1500;
/** Longest a client may take to be back in its room after a node restarted. */
const BACK_IN_ROOM_MS = 15_000;

const clients = [];
after(() => { for (const c of clients) c.close(); });

test('three nodes drained and restarted in turn under load: nobody is lost, presence converges', async () => {
  const rooms = Array.from({ length: ROOMS }, () => roomId('rolling'));
  for (let r = 0; r < ROOMS; r++) {
    for (let k = 0; k < ROOM_SIZE; k++) {
      const i = r * ROOM_SIZE + k;
      clients.push(new AppClient(clientAddress(i), rooms[r], `c${i}`));
    }
  }
  const allBack = () => clients.every((c) => c.socket.connected && c.inRoom);
  await waitUntil(allBack, 'every client joined its room', BACK_IN_ROOM_MS);

  let loading = true;
  const relaying = (async () => {
    while (loading) {
      for (const c of clients) c.relayToPeers();
      await sleep(RELAY_EVERY_MS);
    }
  })();
  let churns = 0;
  const churning = (async () => {
    while (loading) {
      await sleep(CHURN_EVERY_MS);
      const c = clients[Math.floor(Math.random() * clients.length)];
      if (!c.inRoom) continue;
      await c.leave();
      await sleep(100);
      if (c.socket.connected) await c.join();
      churns++;
    }
  })();

  await sleep(1000);
  for (let node = 0; node < 3; node++) {
    const { exited_after_ms: exited } = await step(`drain-restart/${node}`);
    console.log(`# node ${node} drained and exited after ${exited} ms, restarted`);
    await waitUntil(allBack, `every client is back in its room after node ${node} restarted`, BACK_IN_ROOM_MS);
    await sleep(500);
  }

  loading = false;
  await Promise.all([relaying, churning]);
  await waitUntil(allBack, 'every client is back in its room after the load', BACK_IN_ROOM_MS);
  await sleep(GRACE_MS);

  const failures = clients.flatMap((c) => c.failures.map((f) => `${c.name}: ${f}`));
  assert.deepEqual(failures, [], 'no client failed to reconnect or to rejoin');

  const { owed, lost } = lostRelays(clients, GRACE_MS);
  const sent = clients.reduce((n, c) => n + c.sent.length, 0);
  const reconnects = clients.reduce((n, c) => n + c.ids.length - 1, 0);
  console.log(`# ${sent} relays sent, ${owed} owed (both ends stayed), ${lost.length} lost; ${reconnects} reconnects, ${churns} leave/join cycles`);
  assert.ok(owed > 1000, `the load ran (${owed} relays owed)`);
  assert.deepEqual(lost.slice(0, 10), [], `${lost.length} relays between sockets that stayed connected were lost`);
  assert.ok(reconnects >= ROOMS, 'the restarts moved clients');

  // Presence converges: each room's hash lists exactly its clients' current sockets, and each
  // client sees exactly its roommates.
  const presence = async () => {
    const wrong = [];
    for (const room of rooms) {
      const expected = clients.filter((c) => c.room === room).map((c) => c.id).sort();
      const actual = await fields(membersKey(room));
      if (JSON.stringify(actual) !== JSON.stringify(expected)) wrong.push({ room, expected, actual });
    }
    return wrong;
  };
  const deadline = Date.now() + 10_000;
  while ((await presence()).length > 0 && Date.now() < deadline) await sleep(200);
  assert.deepEqual(await presence(), [], 'the Redis room hashes list exactly the connected clients');
  for (const c of clients) {
    const roommates = clients.filter((o) => o.room === c.room && o !== c).map((o) => o.id).sort();
    assert.deepEqual([...c.peers].sort(), roommates, `${c.name} sees exactly its roommates`);
  }
  for (const c of clients) c.close();
});
