// The switchboard demo call: a small video room on plain WebRTC and the stock socket.io client.
//
// Why it exists: to show (and test, in a real browser) that switchboard carries a call. It
// speaks the rtc.io protocol (docs/protocol.md) exactly like any app would:
//
//   join-room {roomId, name}        → backfill: user-connected + media-state per member
//   #rtcio:init-offer {source}      ← we are an existing member and `source` just joined:
//                                     we make the offer (and are the *impolite* peer)
//   #rtcio:message {source, data}   ⇄ descriptions and ICE candidates, relayed one to one
//   media-state {roomId, mic, cam}  ⇄ the mic/cam badges on every tile
//   #rtcio:peer-left / user-disconnected → the peer's connection ended (see `peerLeft`)
//   switchboard:session {id, resume, resumed} ← switchboard's resumable sessions: we opt in
//                                     with `auth.resume`, so a reconnect (a drained node, a
//                                     network blip) keeps our peer id and nobody notices
//
// Negotiation follows the "perfect negotiation" pattern of the WebRTC specification: both
// sides run the same code; offers come from `negotiationneeded`; when two offers cross, the
// impolite side ignores the other's offer and the polite side rolls its own back. The roles
// come from the protocol: whoever is told `#rtcio:init-offer` was in the room first and is
// impolite; the newcomer is polite. docs/demo.md explains it step by step.
//
// `window.demo` exposes read-only hooks for the end-to-end test (tests/js/demo-browser.test.mjs).

import { io } from './socket.io.esm.min.js';

const $ = (id) => document.getElementById(id);

/** Room ids switchboard accepts (docs/protocol.md). */
const ROOM_ID = /^[A-Za-z0-9._:@-]{1,128}$/;
/** Connection states after which a peer that left signaling is gone for good. */
const TROUBLE = new Set(['disconnected', 'failed', 'closed']);

/** Everything the page knows. `window.demo.state()` returns a copy for tests. */
const call = {
  socket: null,
  roomId: '',
  name: '',
  /** Our peer id: our session's (kept across reconnects), or our socket id. */
  selfId: null,
  /** The token that resumes our session on the next connection ('' before the first). */
  resumeToken: '',
  /** Whether the server gave us a resumable session (switchboard does; others do not). */
  resumable: false,
  /** idle → connecting → connected ⇄ reconnecting; left; error */
  status: 'idle',
  localStream: null,
  mic: true,
  cam: true,
  iceServers: [],
  /** Peers by socket id. */
  peers: new Map(),
  /** Counts our peer ids (a new one per connection unless resumed); each peer connection
   *  remembers the one it was made under. */
  session: 0,
  /** RTCPeerConnections made so far (a test hook: a resumed session makes none). */
  connectionsMade: 0,
};

// ---------------------------------------------------------------------------------------------
// Start-up: the room from the link (or a fresh random one), the camera preview.

const roomFromLink = new URL(location.href).searchParams.get('room') ?? decodeURIComponent(location.hash.slice(1));
$('room').value = ROOM_ID.test(roomFromLink) ? roomFromLink : randomRoomId();
$('lobby').addEventListener('submit', (event) => {
  event.preventDefault();
  join($('name').value.trim(), $('room').value.trim());
});
$('mic').addEventListener('click', () => setMedia({ mic: !call.mic }));
$('cam').addEventListener('click', () => setMedia({ cam: !call.cam }));
$('leave').addEventListener('click', leave);
// Closing the tab is leaving the room, said out loud. Otherwise the others would hear only
// #rtcio:peer-left, keep our tile while our peer connection might still be alive (see
// `peerLeft`), and notice the silence ~8 s later.
window.addEventListener('pagehide', () => {
  call.socket?.emit('leave-room', { roomId: call.roomId });
  call.socket?.disconnect();
});

const selfTile = makeTile('self');
selfTile.classList.add('self');
const preview = startPreview();

/** 128 random bits, URL-safe: a room nobody finds by guessing. */
function randomRoomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Camera and microphone, shown in our own tile. The call works without them (receive only). */
async function startPreview() {
  try {
    call.localStream = await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: { width: 640, height: 360 },
    });
    const video = selfTile.querySelector('video');
    video.muted = true; // never play our own microphone back
    video.srcObject = call.localStream;
  } catch (error) {
    notice(`No camera or microphone (${error.name}): you can still join, see and hear others.`);
    call.mic = call.cam = false;
  }
  renderSelf();
  $('join').disabled = false;
}

// ---------------------------------------------------------------------------------------------
// Signaling: one socket.io connection, (re)joining the room on every connect.

async function join(name, roomId) {
  if (!ROOM_ID.test(roomId)) {
    notice('A room name uses only letters, digits and . _ : @ - (at most 128).');
    return;
  }
  await preview;
  call.name = name;
  call.roomId = roomId;
  call.iceServers = await fetchIceServers();
  history.replaceState(null, '', `${location.pathname}#${encodeURIComponent(roomId)}`);
  $('invite').href = $('invite').textContent = location.href;
  $('lobby').hidden = true;
  $('controls').hidden = false;
  notice('');
  setStatus('connecting');

  // WebSocket first, long-polling if that fails (e.g. a proxy without WebSocket support).
  // `auth` is a function so every reconnection presents the latest resume token.
  const socket = io({
    transports: ['websocket', 'polling'],
    tryAllTransports: true,
    auth: (cb) => cb({ resume: call.resumeToken }),
  });
  call.socket = socket;
  socket.on('switchboard:session', ({ id, resume, resumed }) => {
    call.resumeToken = resume;
    if (!resumed) {
      // A new peer id: the others will meet us again, as a new peer.
      if (call.resumable) call.session += 1;
      call.selfId = id;
    }
    call.resumable = true;
  });
  socket.on('connect', onConnect);
  socket.on('disconnect', (reason) => {
    if (call.socket !== socket) return;
    setStatus('reconnecting');
    // The server closed us (e.g. a draining node): socket.io waits for us to reconnect.
    if (reason === 'io server disconnect') socket.connect();
  });
  socket.on('connect_error', () => setStatus('reconnecting'));
  socket.on('user-connected', ({ id, name: peerName }) => {
    const peer = ensurePeer(id);
    peer.name = peerName;
    renderPeer(peer);
  });
  socket.on('media-state', ({ id, mic, cam }) => {
    const peer = ensurePeer(id);
    Object.assign(peer, { mic, cam });
    renderPeer(peer);
  });
  socket.on('#rtcio:init-offer', ({ source }) => {
    // We were here first: we offer, and we are the impolite peer.
    const peer = ensurePeer(source);
    connectPeer(peer, { polite: false });
    addLocalMedia(peer, { offering: true });
  });
  socket.on('#rtcio:message', ({ source, data }) => {
    const peer = ensurePeer(source);
    const isOffer = data?.description?.type === 'offer';
    // The first message from a newcomer's point of view is the existing member's offer. An
    // offer for a connection made before our signaling reconnected starts a fresh one: the
    // other side made a new one for our new socket id.
    if (!peer.pc || (isOffer && peer.session !== call.session)) connectPeer(peer, { polite: true });
    peer.inbox = peer.inbox.then(() => onSignal(peer, data)).catch((error) => console.warn('signal', source, error));
  });
  socket.on('#rtcio:peer-left', ({ id }) => peerLeft(id, { announced: true }));
  socket.on('user-disconnected', ({ id }) => peerLeft(id, { announced: false }));
  socket.on('error', ({ code, message, event }) => notice(`switchboard refused ${event}: ${code} (${message})`));
}

/**
 * Every (re)connection joins the room again: harmless when our session was resumed (the
 * server only repeats the backfill), needed when it was not (a new peer id).
 */
function onConnect() {
  if (!call.resumable) {
    call.session += 1;
    call.selfId = call.socket.id;
  }
  setStatus('connected');
  joinRoom(call.socket);
}

function joinRoom(socket) {
  socket.emit('join-room', { roomId: call.roomId, name: call.name }, (ack) => {
    if (ack?.ok) {
      // Peers that left while we were away were never announced to this socket.
      const present = new Set(ack.peers.map((p) => p.id));
      for (const id of call.peers.keys()) if (!present.has(id)) peerLeft(id, { announced: true });
      return;
    }
    notice(`Could not join: ${ack?.code} (${ack?.message})`);
    // `unavailable`: the node cannot reach its room state yet (e.g. it just restarted).
    if (ack?.code === 'unavailable') setTimeout(() => socket === call.socket && socket.connected && joinRoom(socket), 1000);
    else setStatus('error');
  });
  // After join-room: events from one socket are handled in order, so this finds us joined.
  socket.emit('media-state', { roomId: call.roomId, mic: call.mic, cam: call.cam });
}

async function fetchIceServers() {
  try {
    const response = await fetch('ice-servers');
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return await response.json();
  } catch (error) {
    notice(`Could not load ICE servers (${error.message}); using none.`);
    return [];
  }
}

function leave() {
  const socket = call.socket;
  call.socket = null;
  socket?.emit('leave-room', { roomId: call.roomId });
  socket?.disconnect();
  for (const peer of call.peers.values()) removePeer(peer);
  setStatus('left');
  $('controls').hidden = true;
  $('lobby').hidden = false;
  $('join').textContent = 'Join again';
}

/** Mic/cam on or off: the track keeps flowing (silence, black frames), the room is told. */
function setMedia(change) {
  Object.assign(call, change);
  for (const track of call.localStream?.getAudioTracks() ?? []) track.enabled = call.mic;
  for (const track of call.localStream?.getVideoTracks() ?? []) track.enabled = call.cam;
  renderSelf();
  if (call.socket?.connected) call.socket.emit('media-state', { roomId: call.roomId, mic: call.mic, cam: call.cam });
}

// ---------------------------------------------------------------------------------------------
// Peers: one RTCPeerConnection each, perfect negotiation.

function ensurePeer(id) {
  let peer = call.peers.get(id);
  if (!peer) {
    peer = {
      id,
      name: '',
      mic: null, // unknown until its media-state arrives
      cam: null,
      pc: null,
      polite: false,
      session: 0,
      makingOffer: false,
      ignoreOffer: false,
      mediaAdded: false,
      /** Left signaling; removed as soon as its connection is in trouble too. */
      gone: false,
      /** Its signaling messages, handled one after the other. */
      inbox: Promise.resolve(),
      tile: makeTile(id),
    };
    call.peers.set(id, peer);
  }
  return peer;
}

/** A new RTCPeerConnection for `peer` (closing an older one). */
function connectPeer(peer, { polite }) {
  peer.pc?.close();
  const pc = new RTCPeerConnection({ iceServers: call.iceServers });
  call.connectionsMade += 1;
  Object.assign(peer, { pc, polite, session: call.session, makingOffer: false, ignoreOffer: false, mediaAdded: false, gone: false });
  const send = (data) => call.socket?.emit('#rtcio:message', { source: call.selfId, target: peer.id, data });

  pc.onnegotiationneeded = async () => {
    try {
      peer.makingOffer = true;
      await pc.setLocalDescription(); // an offer, made from the current state
      send({ description: pc.localDescription });
    } catch (error) {
      console.warn('offer', peer.id, error);
    } finally {
      peer.makingOffer = false;
    }
  };
  pc.onicecandidate = ({ candidate }) => {
    if (candidate) send({ candidate });
  };
  pc.ontrack = ({ track, streams }) => {
    const video = peer.tile.querySelector('video');
    const stream = streams[0] ?? video.srcObject ?? new MediaStream();
    if (!stream.getTracks().includes(track)) stream.addTrack(track);
    if (video.srcObject !== stream) video.srcObject = stream;
    play(video);
  };
  pc.onconnectionstatechange = () => {
    if (peer.pc !== pc) return;
    renderPeer(peer);
    if (peer.gone && TROUBLE.has(pc.connectionState)) removePeer(peer);
    else if (pc.connectionState === 'failed') pc.restartIce(); // still in the room: try again
  };
  renderPeer(peer);
}

/** Our tracks on the peer's connection, once. An offerer without media still asks to receive. */
function addLocalMedia(peer, { offering }) {
  if (peer.mediaAdded) return;
  peer.mediaAdded = true;
  const stream = call.localStream;
  if (stream) {
    for (const track of stream.getTracks()) peer.pc.addTrack(track, stream);
  } else if (offering) {
    peer.pc.addTransceiver('audio', { direction: 'recvonly' });
    peer.pc.addTransceiver('video', { direction: 'recvonly' });
  }
}

/** One relayed message: a description or an ICE candidate (perfect negotiation). */
async function onSignal(peer, { description, candidate } = {}) {
  const pc = peer.pc;
  if (description) {
    const collision = description.type === 'offer' && (peer.makingOffer || pc.signalingState !== 'stable');
    peer.ignoreOffer = !peer.polite && collision;
    if (peer.ignoreOffer) return; // the impolite peer keeps its own offer
    await pc.setRemoteDescription(description); // the polite peer rolls back its own, if any
    if (description.type === 'offer') {
      // Added after the offer, our tracks take the offer's transceivers: one round trip.
      addLocalMedia(peer, { offering: false });
      await pc.setLocalDescription(); // the answer
      call.socket?.emit('#rtcio:message', { source: call.selfId, target: peer.id, data: { description: pc.localDescription } });
    }
  } else if (candidate) {
    try {
      await pc.addIceCandidate(candidate);
    } catch (error) {
      if (!peer.ignoreOffer) throw error; // candidates of an offer we ignored fail: expected
    }
  }
}

/**
 * The peer's signaling connection ended (`#rtcio:peer-left`, then `user-disconnected`), or it
 * left the room (`user-disconnected` alone). Leaving is final: the tile goes. A connection
 * that ended may be a signaling reconnect while media still flows peer to peer, so the peer
 * is kept until its RTCPeerConnection reports trouble too.
 */
function peerLeft(id, { announced }) {
  const peer = call.peers.get(id);
  if (!peer) return;
  const leftTheRoom = !announced && !peer.gone;
  peer.gone = true;
  if (leftTheRoom || !peer.pc || TROUBLE.has(peer.pc.connectionState)) removePeer(peer);
  else renderPeer(peer);
}

function removePeer(peer) {
  peer.pc?.close();
  peer.tile.remove();
  call.peers.delete(peer.id);
}

// ---------------------------------------------------------------------------------------------
// Rendering: one tile per participant, ourselves first.

function makeTile(id) {
  const tile = $('tile-template').content.firstElementChild.cloneNode(true);
  tile.dataset.peer = id;
  // A click gives sound back if the browser refused to autoplay it.
  tile.addEventListener('click', () => {
    const video = tile.querySelector('video');
    if (id !== 'self') video.muted = false;
    play(video);
  });
  $('tiles').append(tile);
  return tile;
}

/** Autoplay with sound needs a user gesture first; without one, play muted. */
function play(video) {
  video.play().catch(() => {
    video.muted = true;
    video.play().catch(() => {});
  });
}

function renderTile(tile, { name, mic, cam, connection }) {
  tile.querySelector('.name').textContent = name;
  badge(tile.querySelector('.badge.mic'), 'mic', mic);
  badge(tile.querySelector('.badge.cam'), 'cam', cam);
  tile.classList.toggle('cam-off', cam === false);
  tile.dataset.connection = connection;
  tile.querySelector('.connection').textContent = connection;
}

/** "mic on" / "mic off"; hidden while unknown. */
function badge(element, what, on) {
  element.hidden = on === null || on === undefined;
  element.textContent = `${what} ${on ? 'on' : 'off'}`;
  element.classList.toggle('off', on === false);
}

function renderPeer(peer) {
  const connection = peer.gone ? 'left signaling' : (peer.pc?.connectionState ?? 'waiting');
  renderTile(peer.tile, { name: peer.name || 'guest', mic: peer.mic, cam: peer.cam, connection });
}

function renderSelf() {
  renderTile(selfTile, { name: `${call.name || 'you'} (you)`, mic: call.mic, cam: call.cam, connection: '' });
  $('mic').textContent = call.mic ? 'Mute mic' : 'Unmute mic';
  $('mic').setAttribute('aria-pressed', String(call.mic));
  $('cam').textContent = call.cam ? 'Stop camera' : 'Start camera';
  $('cam').setAttribute('aria-pressed', String(call.cam));
}

function setStatus(status) {
  call.status = status;
  const text = { idle: 'not connected', connecting: 'connecting…', connected: 'connected', reconnecting: 'reconnecting…', left: 'left the call', error: 'error' };
  $('status').dataset.status = status;
  $('status').textContent = text[status];
  renderSelf();
}

function notice(text) {
  $('notice').hidden = !text;
  $('notice').textContent = text;
}

// ---------------------------------------------------------------------------------------------
// Test hooks: read-only views of the call (the test acts through the page like a person).

window.demo = {
  /** A JSON-able snapshot of the call. */
  state: () => ({
    status: call.status,
    selfId: call.selfId,
    roomId: call.roomId,
    mic: call.mic,
    cam: call.cam,
    peers: [...call.peers.values()].map((p) => ({
      id: p.id,
      name: p.name,
      mic: p.mic,
      cam: p.cam,
      polite: p.polite,
      gone: p.gone,
      connectionState: p.pc?.connectionState ?? null,
    })),
  }),
  /** RTCPeerConnections not closed, and how many were made since the page loaded. */
  connections: () => [...call.peers.values()].filter((p) => p.pc && p.pc.signalingState !== 'closed').length,
  connectionsMade: () => call.connectionsMade,
  /** Video frames decoded so far from `peerId` (inbound-rtp statistics). */
  framesDecoded: async (peerId) => {
    const pc = call.peers.get(peerId)?.pc;
    if (!pc) return 0;
    let frames = 0;
    for (const report of (await pc.getStats()).values()) {
      if (report.type === 'inbound-rtp' && report.kind === 'video') frames += report.framesDecoded ?? 0;
    }
    return frames;
  },
};
