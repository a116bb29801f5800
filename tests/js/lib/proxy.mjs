// Clients behind nginx (docker/nginx.conf or docker/nginx-room-affinity.conf, started by
// crates/switchboard-testkit/src/nginx.rs).
//
// nginx's ip_hash picks a node from the first three octets of the client's address, and Linux
// routes all of 127.0.0.0/8 to loopback: a client bound to 127.<a>.<b>.1 looks like a machine
// of its own network to nginx. Each socket gets an http.Agent with that local address, which
// socket.io-client uses for both long-polling requests and the WebSocket. With room affinity,
// nginx hashes the `room` of the query instead (the address when there is none).
//
//   SWITCHBOARD_PROXY_URL   where nginx listens (`opts.url` picks another nginx)

import assert from 'node:assert/strict';
import http from 'node:http';

import { openSocket, TIMEOUT_MS } from './harness.mjs';

export const PROXY_URL = process.env.SWITCHBOARD_PROXY_URL;
assert.ok(PROXY_URL, 'SWITCHBOARD_PROXY_URL is not set: run this file through cargo');

/** The i-th client address: 127.1.0.1, 127.2.0.1, ..., one /24 each. */
export function clientAddress(i) {
  return `127.${1 + (i % 250)}.${Math.floor(i / 250) % 250}.1`;
}

const agents = new Map();
function agentFor(address) {
  if (!agents.has(address)) agents.set(address, new http.Agent({ localAddress: address, keepAlive: true }));
  return agents.get(address);
}

/** A socket through nginx from `address` (not yet connected); see harness `openSocket`. */
export function openVia(address, opts = {}) {
  const socket = openSocket({ url: PROXY_URL, agent: agentFor(address), ...opts });
  socket.address = address;
  return socket;
}

/** A connected socket through nginx from `address`. */
export async function connectVia(address, opts = {}) {
  const socket = openVia(address, opts);
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', (err) => reject(new Error(`connect_error via ${address}: ${err.message}`)));
  });
  return socket;
}

/** GETs `path` through nginx from `address`; resolves with { status, body } (JSON parsed). */
export function getVia(address, path) {
  return new Promise((resolve, reject) => {
    const request = http.get(`${PROXY_URL}${path}`, { localAddress: address, timeout: TIMEOUT_MS }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => { text += chunk; });
      response.on('end', () => {
        let body = text;
        try { body = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: response.statusCode, body });
      });
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${path} via ${address} timed out`)));
    request.on('error', reject);
  });
}

/**
 * The id of the node nginx sends `address` to (its /health answers with it); with `room`, the
 * node a client of that room is sent to (the query nginx's room affinity hashes).
 */
export async function nodeBehind(address, room) {
  const path = room === undefined ? '/health' : `/health?room=${encodeURIComponent(room)}`;
  const { status, body } = await getVia(address, path);
  assert.equal(status, 200, `GET ${path} via ${address}: ${JSON.stringify(body)}`);
  return body.node;
}

/** Records every disconnect (with its reason) and connection error of a socket in `trouble`. */
export function watchTrouble(socket, trouble) {
  socket.on('disconnect', (reason) => trouble.push(`${socket.address}: disconnect (${reason})`));
  socket.io.engine.on('error', (err) => trouble.push(`${socket.address}: engine error ${err.message ?? err}`));
}

/** The first `count` client addresses, grouped by the node nginx sends them to: id -> [addresses]. */
export async function addressesByNode(count) {
  const byNode = new Map();
  for (let i = 0; i < count; i++) {
    const address = clientAddress(i);
    const node = await nodeBehind(address);
    if (!byNode.has(node)) byNode.set(node, []);
    byNode.get(node).push(address);
  }
  return byNode;
}

/** Closes the keep-alive connections of every agent (call once at the end of a file). */
export function closeAgents() {
  for (const agent of agents.values()) agent.destroy();
  agents.clear();
}
