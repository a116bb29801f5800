// The demo page (served by switchboard at /) in Debian's headless Chromium: real
// getUserMedia (Chromium's fake camera and microphone), real RTCPeerConnections, real
// socket.io over real switchboard nodes. Run by cargo (crates/switchboard/tests/demo.rs),
// which starts the servers and tells us:
//
//   SWITCHBOARD_PAGE_URLS  base URL each page opens, comma-separated: page 0 (alice) on the
//                          first, page 1 (bob) on the second, page 2 (carol) on the third
//                          (wrapping around). A node's own URL, or a proxy in front of it.
//   SWITCHBOARD_ARTIFACTS  where to write screenshots (created if missing)
//   CHROMIUM               the browser binary (default /usr/bin/chromium; never downloaded)
//   SWITCHBOARD_STEPS_URL  the Rust test's steps; `restart-node/0` restarts the node behind
//                          page 0 (see switchboard-testkit's Cluster::step)
//
// The test acts the way a person would (type a name, click Join, click Mute, close the tab)
// and checks what a person would see (tiles, names, badges). Where the DOM cannot tell
// (connection state, decoded frames) it reads the page's `window.demo` hooks.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { chromium } from 'playwright-core';

import { step } from './lib/harness.mjs';

const PAGE_URLS = (process.env.SWITCHBOARD_PAGE_URLS ?? process.env.SWITCHBOARD_URL ?? 'http://127.0.0.1:3001')
  .split(',').filter(Boolean);
const ARTIFACTS = process.env.SWITCHBOARD_ARTIFACTS ?? 'artifacts';
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--use-fake-device-for-media-stream', // a generated camera picture and a beeping microphone
  '--use-fake-ui-for-media-stream', // grant camera and microphone without asking
  '--disable-features=WebRtcHideLocalIpsWithMdns', // plain loopback candidates, no mDNS names
];

/** Longest wait for a call to be set up or for the page to show a change. */
const SETUP_MS = 15_000;
/** How soon a closed tab must disappear from the others' pages. */
const CLOSED_TAB_MS = 5_000;
/**
 * How soon a crashed tab must disappear: a crash sends nothing, so its peers wait for their
 * connection to it to report trouble (Chromium: about 8 s without consent responses).
 */
const CRASHED_TAB_MS = 20_000;

describe('the demo call in headless Chromium', () => {
  const room = `e2e-${randomBytes(8).toString('hex')}`;
  let browser;
  /** Pages by person, in the order they joined. */
  const people = {};

  before(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    await mkdir(ARTIFACTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
  });

  it('puts alice (page 0) and bob (page 1) in a call, each seeing the other\'s live video', async () => {
    const alice = await enter('alice', 0);
    const bob = await enter('bob', 1);

    await expectTile(alice, bob, { name: 'bob' });
    await expectTile(bob, alice, { name: 'alice' });
    await expectConnected(alice, bob);
    await expectConnected(bob, alice);
    // The protocol's roles: alice was there first, got #rtcio:init-offer and offered.
    assert.equal((await peerState(alice, bob)).polite, false, 'alice (existing member) is impolite');
    assert.equal((await peerState(bob, alice)).polite, true, 'bob (newcomer) is polite');

    await expectVideoFlowing(alice, bob);
    await expectVideoFlowing(bob, alice);
    await alice.page.screenshot({ path: join(ARTIFACTS, 'demo-two-peers.png') });
  });

  it('shows alice\'s mic as off on bob\'s page when she mutes', async () => {
    const { alice, bob } = people;
    await alice.page.click('#mic');
    await expectTile(bob, alice, { name: 'alice', mic: 'off', cam: 'on' });
    await expectTile(alice, 'self', { mic: 'off', cam: 'on' });
    assert.equal(await alice.page.getAttribute('#mic', 'aria-pressed'), 'false');
  });

  it('keeps the call when alice\'s node restarts (her signaling reconnects with a new socket id)', async () => {
    const { alice, bob } = people;
    const before = alice.id;
    await step('restart-node/0');
    await alice.page.waitForFunction(
      (old) => window.demo.state().status === 'connected' && window.demo.state().selfId !== old,
      before,
      { timeout: SETUP_MS },
    );
    alice.id = await alice.page.evaluate(() => window.demo.state().selfId);
    // bob drops his connection to alice's old socket id once it reports trouble (alice replaced
    // it when bob offered to her new id): one tile for alice again, the new one.
    await bob.page.waitForFunction((id) => {
      const tiles = [...document.querySelectorAll('.tile:not(.self)')].map((t) => t.dataset.peer);
      return tiles.length === 1 && tiles[0] === id;
    }, alice.id, { timeout: CRASHED_TAB_MS });
    await expectTile(bob, alice, { name: 'alice', mic: 'off', cam: 'on' });
    await expectConnected(alice, bob);
    await expectConnected(bob, alice);
    await expectVideoFlowing(alice, bob);
    await expectVideoFlowing(bob, alice);
    assert.equal(await alice.page.locator('.tile:not(.self)').count(), 1, 'alice shows bob once');
  });

  it('shows a late joiner (carol, page 2) both members with their current mic and camera', async () => {
    const { alice, bob } = people;
    const carol = await enter('carol', 2);
    await expectTile(carol, alice, { name: 'alice', mic: 'off', cam: 'on' });
    await expectTile(carol, bob, { name: 'bob', mic: 'on', cam: 'on' });
    await expectTile(alice, carol, { name: 'carol', mic: 'on', cam: 'on' });
    await expectTile(bob, carol, { name: 'carol', mic: 'on', cam: 'on' });
    for (const [from, to] of [[carol, alice], [carol, bob], [alice, carol], [bob, carol]]) {
      await expectConnected(from, to);
    }
    await expectVideoFlowing(carol, alice);
  });

  it(`removes bob's tile from the others within ${CLOSED_TAB_MS / 1000} s when he closes his tab`, async () => {
    // The page leaves the room on pagehide; the others drop the tile on that user-disconnected.
    const { alice, bob, carol } = people;
    const closed = Date.now();
    await bob.page.close();
    await bob.context.close();
    await expectNoTile(alice, bob, CLOSED_TAB_MS, closed);
    await expectNoTile(carol, bob, CLOSED_TAB_MS, closed);
    console.log(`bob's tile was gone from alice's and carol's pages ${Date.now() - closed} ms after he closed it`);
  });

  it('keeps a peer whose signaling ended while media still flows, and removes it once its connection fails', async () => {
    // A renderer crash ends carol's socket.io connection at once (alice gets #rtcio:peer-left)
    // but says nothing on the peer connection, which only notices the silence seconds later:
    // the same signals as a signaling reconnect, until the media stops too.
    const { alice, carol } = people;
    const cdp = await carol.context.newCDPSession(carol.page);
    const crashed = Date.now();
    cdp.send('Page.crash').catch(() => {}); // never answers: the page is gone

    await alice.page.waitForFunction(
      (id) => window.demo.state().peers.find((p) => p.id === id)?.gone === true,
      carol.id,
      { timeout: SETUP_MS },
    );
    const kept = await alice.page.evaluate((id) => ({
      connection: window.demo.state().peers.find((p) => p.id === id)?.connectionState,
      tile: document.querySelector(`.tile[data-peer="${id}"]`) !== null,
    }), carol.id);
    assert.deepEqual(kept, { connection: 'connected', tile: true },
      'after #rtcio:peer-left, a peer whose connection is still up keeps its tile');

    await expectNoTile(alice, carol, CRASHED_TAB_MS, crashed);
    console.log(`carol's tile was gone from alice's page ${Date.now() - crashed} ms after her tab crashed`);
  });

  // -------------------------------------------------------------------------------------------

  /** Opens the demo in a fresh browser context (its own person), types a name, joins `room`. */
  async function enter(name, index) {
    const context = await browser.newContext({ viewport: { width: 1000, height: 640 } });
    const page = await context.newPage();
    page.on('pageerror', (error) => console.log(`[${name}] page error: ${error.message}`));
    page.on('console', (message) => {
      if (['error', 'warning'].includes(message.type())) console.log(`[${name}] ${message.type()}: ${message.text()}`);
    });
    const base = PAGE_URLS[index % PAGE_URLS.length];
    await page.goto(`${base}/?room=${room}`);
    await page.fill('#name', name);
    await page.click('#join:enabled', { timeout: SETUP_MS }); // enabled once the camera is on
    await page.waitForFunction(() => window.demo.state().status === 'connected', null, { timeout: SETUP_MS });
    const id = await page.evaluate(() => window.demo.state().selfId);
    const person = { name, page, context, id };
    people[name] = person;
    return person;
  }

  /** `who`'s view of the connection to `other`, from `window.demo.state()`. */
  async function peerState(who, other) {
    return who.page.evaluate((id) => window.demo.state().peers.find((p) => p.id === id), other.id);
  }

  async function expectConnected(who, other) {
    await who.page.waitForFunction(
      (id) => window.demo.state().peers.find((p) => p.id === id)?.connectionState === 'connected',
      other.id,
      { timeout: SETUP_MS },
    ).catch(async (error) => {
      throw new Error(`${who.name} -> ${other.name} never connected: ${JSON.stringify(await peerState(who, other))} (${error.message})`);
    });
  }

  /**
   * Waits until `who`'s page shows a tile for `other` (a person, or 'self') with the given name
   * and badges ('on'/'off'), as a person would read them.
   */
  async function expectTile(who, other, { name, mic, cam }) {
    const id = other === 'self' ? 'self' : other.id;
    const seen = () => who.page.evaluate((id) => {
      const tile = document.querySelector(`.tile[data-peer="${id}"]`);
      const badge = (what) => {
        const element = tile?.querySelector(`.badge.${what}`);
        if (!element || element.hidden) return undefined;
        return { text: element.textContent, off: element.classList.contains('off') };
      };
      return tile && { name: tile.querySelector('.name').textContent, mic: badge('mic'), cam: badge('cam') };
    }, id);
    const matches = (tile) => tile
      && (name === undefined || tile.name === name)
      && [['mic', mic], ['cam', cam]].every(([what, state]) => state === undefined
        || (tile[what]?.text === `${what} ${state}` && tile[what]?.off === (state === 'off')));
    const deadline = Date.now() + SETUP_MS;
    let tile;
    while (!matches(tile = await seen())) {
      if (Date.now() > deadline) {
        assert.fail(`${who.name} sees ${JSON.stringify(tile)} for ${other.name ?? id}, wanted ${JSON.stringify({ name, mic, cam })}`);
      }
      await sleep(50);
    }
  }

  /** Waits until `who`'s page has no tile for `other`, at most `boundMs` after `since`. */
  async function expectNoTile(who, other, boundMs, since) {
    const left = Math.max(0, since + boundMs - Date.now());
    await who.page.waitForSelector(`.tile[data-peer="${other.id}"]`, { state: 'detached', timeout: left })
      .catch(async () => {
        assert.fail(`${who.name} still shows ${other.name} ${boundMs} ms later: ${JSON.stringify(await peerState(who, other))}`);
      });
  }

  /**
   * `who` decodes `other`'s video (inbound-rtp framesDecoded above zero, then growing) and its
   * tile plays it at the camera's size.
   */
  async function expectVideoFlowing(who, other) {
    const frames = () => who.page.evaluate((id) => window.demo.framesDecoded(id), other.id);
    const deadline = Date.now() + SETUP_MS;
    let first;
    while ((first = await frames()) === 0) {
      if (Date.now() > deadline) assert.fail(`${who.name} decoded no frame from ${other.name}`);
      await sleep(100);
    }
    await sleep(1000);
    const second = await frames();
    assert.ok(second > first, `${who.name}'s frames from ${other.name} do not advance: ${first} then ${second}`);
    const size = await who.page.evaluate((id) => {
      const video = document.querySelector(`.tile[data-peer="${id}"] video`);
      return { width: video.videoWidth, height: video.videoHeight, paused: video.paused };
    }, other.id);
    assert.ok(size.width > 0 && size.height > 0 && !size.paused, `${who.name}'s tile of ${other.name}: ${JSON.stringify(size)}`);
  }
});
