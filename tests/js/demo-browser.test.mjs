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
//   SWITCHBOARD_STEPS_URL  the Rust test's steps; `drain-restart/0` drains and restarts the
//                          node behind page 0 (see switchboard-testkit's Cluster::step)
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
 * How soon a crashed tab must disappear: a crash sends nothing, so its session is announced
 * gone only when its --resume-grace (8 s in these tests) ends, and its peers drop the tile
 * once their connection to it reports trouble too (Chromium: about 8 s without consent
 * responses).
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

  it('keeps the call untouched when alice\'s node is drained and restarted (her session resumes)', async () => {
    const { alice, bob } = people;
    const framesBefore = await bob.page.evaluate((id) => window.demo.framesDecoded(id), alice.id);
    const made = { alice: await alice.page.evaluate(() => window.demo.connectionsMade()), bob: await bob.page.evaluate(() => window.demo.connectionsMade()) };
    const disconnected = alice.page.waitForFunction(() => window.demo.state().status === 'reconnecting', null, { timeout: SETUP_MS });
    await step('drain-restart/0');
    await disconnected;
    await alice.page.waitForFunction(() => window.demo.state().status === 'connected', null, { timeout: SETUP_MS });
    // Her session resumed: the same peer id, so nobody had anything to redo.
    assert.equal(await alice.page.evaluate(() => window.demo.state().selfId), alice.id, 'alice kept her peer id');
    await sleep(1000);
    for (const [who, other] of [[alice, bob], [bob, alice]]) {
      const peers = await who.page.evaluate(() => window.demo.state().peers);
      assert.deepEqual(peers.map((p) => p.id), [other.id], `${who.name} knows one peer: ${JSON.stringify(peers)}`);
      assert.equal(peers[0].gone, false, `${who.name} was never told ${other.name} left`);
      assert.equal(await who.page.locator('.tile:not(.self)').count(), 1, `${who.name} shows one tile`);
      await expectConnected(who, other);
    }
    assert.equal(await bob.page.evaluate(() => window.demo.connections()), 1, 'bob has one RTCPeerConnection');
    assert.equal(await alice.page.evaluate(() => window.demo.connections()), 1, 'alice has one RTCPeerConnection');
    assert.equal(await bob.page.evaluate(() => window.demo.connectionsMade()), made.bob, 'bob made no new RTCPeerConnection');
    assert.equal(await alice.page.evaluate(() => window.demo.connectionsMade()), made.alice, 'alice made no new RTCPeerConnection');
    await expectTile(bob, alice, { name: 'alice', mic: 'off', cam: 'on' });
    await expectVideoFlowing(alice, bob);
    await expectVideoFlowing(bob, alice);
    const framesAfter = await bob.page.evaluate((id) => window.demo.framesDecoded(id), alice.id);
    assert.ok(framesAfter > framesBefore, `bob's frames from alice kept growing: ${framesBefore} then ${framesAfter}`);
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

  it('keeps a crashed tab while its session may still resume, and removes it once the grace is over', async () => {
    // A renderer crash ends carol's socket.io connection at once but says nothing: her
    // session is parked for --resume-grace (8 s here), as for a signaling reconnect, and
    // only then announced gone; her peer connection notices the silence on its own.
    const { alice, carol } = people;
    const cdp = await carol.context.newCDPSession(carol.page);
    const crashed = Date.now();
    cdp.send('Page.crash').catch(() => {}); // never answers: the page is gone

    await sleep(2000);
    const kept = await alice.page.evaluate((id) => ({
      gone: window.demo.state().peers.find((p) => p.id === id)?.gone,
      tile: document.querySelector(`.tile[data-peer="${id}"]`) !== null,
    }), carol.id);
    assert.deepEqual(kept, { gone: false, tile: true }, 'within the grace, carol is still in the call');

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
