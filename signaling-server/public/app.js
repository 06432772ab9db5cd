// The demo page: join a room, see who is there, call a peer over WebRTC (a data-channel chat,
// camera optional), and edit the room's shared note through `state` with conflict retry.
// `window.demo` exposes the live objects for debugging and for the end-to-end test.
import { SignalingClient } from '/client/index.js';
import { PeerCall } from './call.js';

const params = new URLSearchParams(location.search);
const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
// ICE servers come from the cluster with each join (TURN credentials included, renewed by the
// client before they expire); `?stun=URL` (repeatable) replaces them, and `?relay=1` allows relayed
// paths only, which shows whether the TURN server works.
const iceOverride = params.getAll('stun').map((urls) => ({ urls }));
const iceTransportPolicy = params.get('relay') === '1' ? 'relay' : 'all';
const iceServersFor = (room) => (iceOverride.length > 0 ? iceOverride : (client.room(room)?.iceServers ?? []));

const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'),
  statusText: $('status-text'),
  joinForm: $('join-form'),
  room: $('room'),
  name: $('name'),
  join: $('join'),
  roomView: $('room-view'),
  roomName: $('room-name'),
  leave: $('leave'),
  peers: $('peers'),
  version: $('state-version'),
  topicForm: $('topic-form'),
  topic: $('topic'),
  topicInfo: $('topic-info'),
  notes: $('notes'),
  noteForm: $('note-form'),
  note: $('note'),
  camera: $('camera'),
  videos: $('videos'),
  localTile: $('local-tile'),
  localVideo: $('local-video'),
  callEmpty: $('call-empty'),
  chat: $('chat'),
  chatForm: $('chat-form'),
  message: $('message'),
  send: $('send'),
  toasts: $('toasts'),
};

const client = new SignalingClient({ url: wsUrl, token: params.get('token') ?? undefined });

/** What the page shows; the client holds the authoritative room snapshot. */
const page = {
  room: /** @type {string | null} */ (null),
  /** @type {Map<string, PeerCall>} peer id → call */
  calls: new Map(),
  /** @type {MediaStream | null} */
  localStream: null,
  /** Everything shown in the chat, for tests: { from, text, label }. */
  log: [],
};
window.demo = { client, page, call, hangUp, sendChat };

// ---- connection status -------------------------------------------------------------------------

let retryTimer;
function showStatus(state, text) {
  ui.status.dataset.state = state;
  ui.statusText.textContent = text;
}
client.on('welcome', ({ node }) => showStatus('connecting', `Connected to ${node}, joining…`));
client.on('connected', ({ node }) => {
  clearInterval(retryTimer);
  showStatus('open', `Online · node ${node}`);
});
client.on('reconnecting', ({ delayMs, reason }) => {
  clearInterval(retryTimer);
  const until = Date.now() + delayMs;
  const tick = () => {
    const left = Math.max(0, until - Date.now());
    const why = reason === 'drain' ? 'Node draining' : 'Connection lost';
    showStatus('reconnecting', `${why} · reconnecting${left > 0 ? ` in ${(left / 1000).toFixed(1)} s` : '…'}`);
  };
  tick();
  retryTimer = setInterval(tick, 100);
});
client.on('closed', ({ error }) => {
  clearInterval(retryTimer);
  showStatus('closed', `Disconnected: ${error.message}`);
});
client.on('error', (error) => toast(`Server: ${error.message} (${error.code})`));
addEventListener('online', () => client.reconnectNow());

// ---- joining and leaving -----------------------------------------------------------------------

ui.room.value = params.get('room') ?? sessionStorage.getItem('demo.room') ?? '';
ui.name.value = localStorage.getItem('demo.name') ?? '';

ui.joinForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const room = ui.room.value.trim();
  const name = ui.name.value.trim() || `guest-${Math.random().toString(36).slice(2, 6)}`;
  ui.join.disabled = true;
  try {
    await client.join(room, { name });
    page.room = room;
    localStorage.setItem('demo.name', name);
    sessionStorage.setItem('demo.room', room);
    const url = new URL(location.href);
    url.searchParams.set('room', room);
    history.replaceState(null, '', url);
    ui.joinForm.hidden = true;
    ui.roomView.hidden = false;
    ui.roomName.textContent = room;
    renderPeers();
    renderState(null);
  } catch (error) {
    toast(`Could not join: ${error.message}`);
  } finally {
    ui.join.disabled = false;
  }
});

ui.leave.addEventListener('click', async () => {
  const room = page.room;
  if (!room) return;
  for (const peerId of [...page.calls.keys()]) hangUp(peerId);
  page.room = null;
  ui.roomView.hidden = true;
  ui.joinForm.hidden = false;
  await client.leave(room).catch((error) => toast(`Leave failed: ${error.message}`));
});

addEventListener('pagehide', () => {
  for (const peerId of [...page.calls.keys()]) hangUp(peerId);
});

client.on('joined', ({ room, isRejoin, resumed }) => {
  if (room !== page.room || !isRejoin) return;
  // A new participant id: tell the peers we call so that they address the call to it.
  if (!resumed) {
    for (const call of page.calls.values()) call.signal({ kind: 'rebind', previous: page.previousSelf });
    toast('Rejoined as a new participant');
  }
  page.previousSelf = undefined;
  renderPeers();
});
client.on('disconnected', () => {
  page.previousSelf = page.room ? client.room(page.room)?.self.id : undefined;
});
client.on('connected', ({ isReconnect }) => {
  if (isReconnect) for (const call of page.calls.values()) call.recover();
});
client.on('room-lost', ({ room, error }) => {
  if (room !== page.room) return;
  toast(`Lost the room: ${error.message}`);
  for (const peerId of [...page.calls.keys()]) hangUp(peerId, false);
  page.room = null;
  ui.roomView.hidden = true;
  ui.joinForm.hidden = false;
});
client.on('kicked', ({ room, reason }) => {
  if (room !== page.room) return;
  toast(`Removed from the room by an operator${reason ? `: ${reason}` : ''}`);
  for (const peerId of [...page.calls.keys()]) hangUp(peerId, false);
  page.room = null;
  ui.roomView.hidden = true;
  ui.joinForm.hidden = false;
});
client.on(
  'server',
  ({ room, data }) => room === page.room && toast(`Operator: ${typeof data === 'string' ? data : JSON.stringify(data)}`),
);
client.on('peer-joined', ({ room }) => room === page.room && renderPeers());
client.on('peer-left', ({ room, peer }) => {
  if (room !== page.room) return;
  if (page.calls.has(peer.id)) hangUp(peer.id, false);
  renderPeers();
});

function peerName(id) {
  const snapshot = page.room && client.room(page.room);
  if (!snapshot) return id;
  if (snapshot.self.id === id) return snapshot.self.name || 'you';
  return snapshot.peers.find((p) => p.id === id)?.name || id.slice(0, 8);
}

function renderPeers() {
  const snapshot = page.room && client.room(page.room);
  if (!snapshot) return;
  const items = [
    peerItem(snapshot.self, true),
    ...snapshot.peers
      .slice()
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((p) => peerItem(p, false)),
  ];
  ui.peers.replaceChildren(...items);
}

function peerItem(peer, isSelf) {
  const li = document.createElement('li');
  li.dataset.peer = peer.id;
  const avatar = document.createElement('span');
  avatar.className = 'avatar';
  avatar.textContent = (peer.name || '?').slice(0, 1).toUpperCase();
  avatar.style.setProperty('--hue', String(hue(peer.id)));
  const name = document.createElement('span');
  name.className = 'grow';
  name.textContent = isSelf ? `${peer.name || 'You'} (you)` : peer.name || peer.id.slice(0, 8);
  li.append(avatar, name);
  if (!isSelf) {
    const call = page.calls.get(peer.id);
    const state = document.createElement('span');
    state.className = 'badge';
    state.textContent = call ? call.pc.connectionState : '';
    state.hidden = !call;
    const button = document.createElement('button');
    button.type = 'button';
    button.className = call ? 'danger' : 'primary';
    button.textContent = call ? 'Hang up' : 'Call';
    button.dataset.action = call ? 'hangup' : 'call';
    button.addEventListener('click', () => (call ? hangUp(peer.id) : window.demo.call(peer.id)));
    li.append(state, button);
  }
  return li;
}

function hue(text) {
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.charCodeAt(0)) % 3600;
  return (h * 137) % 360; // spread ids that differ in one character across the colour wheel
}

// ---- calls -------------------------------------------------------------------------------------

/** Starts a call with a peer (or returns the existing one); the chat channel triggers the offer. */
function call(peerId) {
  const existing = page.calls.get(peerId);
  if (existing) return existing;
  const created = createCall(peerId);
  created.openChannel('chat');
  return created;
}

function createCall(peerId) {
  const room = page.room;
  const selfId = client.room(room).self.id;
  const peerCall = new PeerCall({
    peerId,
    polite: selfId < peerId,
    iceServers: iceServersFor(room),
    iceTransportPolicy,
    send: (data) => client.signal(room, peerCall.peerId, data),
  });
  page.calls.set(peerId, peerCall);
  if (page.localStream) peerCall.setLocalStream(page.localStream);

  const tile = document.createElement('figure');
  tile.className = 'tile';
  tile.hidden = true;
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  const caption = document.createElement('figcaption');
  caption.textContent = peerName(peerId);
  tile.append(video, caption);
  ui.videos.append(tile);

  peerCall.addEventListener('track', ({ detail }) => {
    video.srcObject = detail.stream;
    tile.hidden = false;
  });
  peerCall.addEventListener('state', ({ detail }) => {
    renderPeers();
    if (detail.state === 'connected') addChat(null, `Connected to ${peerName(peerCall.peerId)}`);
    if (detail.state === 'failed') addChat(null, `Connection to ${peerName(peerCall.peerId)} failed`);
  });
  peerCall.addEventListener('channel', ({ detail }) => {
    if (detail.state === 'open') addChat(null, `Channel “${detail.label}” open with ${peerName(peerCall.peerId)}`);
    updateChatControls();
  });
  peerCall.addEventListener('message', ({ detail }) => addChat(peerCall.peerId, detail.text, detail.label));
  peerCall.addEventListener('error', ({ detail }) => console.warn('call', peerId, detail.error));
  peerCall.addEventListener('closed', () => {
    tile.remove();
    if (page.calls.get(peerCall.peerId) === peerCall) page.calls.delete(peerCall.peerId);
    addChat(null, `Call with ${peerName(peerCall.peerId)} ended`);
    renderPeers();
    updateChatControls();
  });
  renderPeers();
  updateChatControls();
  return peerCall;
}

// Renewed credentials (or a re-join's): calls use them for their next relay allocation.
client.on('ice-servers', ({ room }) => {
  if (room !== page.room) return;
  for (const peerCall of page.calls.values()) peerCall.setIceServers(iceServersFor(room));
});

function hangUp(peerId, notify = true) {
  page.calls.get(peerId)?.close(notify);
}

client.on('signal', ({ room, from, data }) => {
  if (room !== page.room || typeof data !== 'object' || data === null) return;
  if (data.kind === 'rebind') {
    const moved = page.calls.get(data.previous);
    if (moved) {
      page.calls.delete(data.previous);
      moved.peerId = from;
      page.calls.set(from, moved);
      renderPeers();
    }
    return;
  }
  let peerCall = page.calls.get(from);
  if (!peerCall) {
    if (data.kind !== 'sdp' || data.description?.type !== 'offer') return; // stale message of an ended call
    peerCall = createCall(from);
    addChat(null, `${peerName(from)} called you`);
  }
  void peerCall.handle(data);
});

// ---- chat over data channels ---------------------------------------------------------------------

/** Sends a line to every peer in a call; returns how many received it. */
function sendChat(text, label = 'chat') {
  let sent = 0;
  for (const peerCall of page.calls.values()) if (peerCall.sendText(text, label)) sent++;
  if (sent > 0) addChat(client.room(page.room)?.self.id ?? null, text, label);
  return sent;
}

ui.chatForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = ui.message.value.trim();
  if (!text) return;
  if (sendChat(text) === 0) toast('No open data channel yet');
  else ui.message.value = '';
});

function updateChatControls() {
  const isOpen = [...page.calls.values()].some((c) => c.channels.get('chat')?.readyState === 'open');
  ui.message.disabled = !isOpen;
  ui.send.disabled = !isOpen;
  ui.callEmpty.hidden = page.calls.size > 0;
}

function addChat(from, text, label = 'chat') {
  page.log.push({ from, text, label });
  const li = document.createElement('li');
  if (from === null) {
    li.className = 'system';
    li.textContent = text;
  } else {
    const isSelf = page.room && client.room(page.room)?.self.id === from;
    li.className = isSelf ? 'mine' : 'theirs';
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = (isSelf ? 'You' : peerName(from)) + (label === 'chat' ? '' : ` · ${label}`);
    const body = document.createElement('span');
    body.textContent = text;
    li.append(who, body);
  }
  ui.chat.append(li);
  ui.chat.scrollTop = ui.chat.scrollHeight;
}

// ---- camera (optional) -------------------------------------------------------------------------

ui.camera.addEventListener('click', async () => {
  if (page.localStream) {
    for (const track of page.localStream.getTracks()) track.stop();
    page.localStream = null;
  } else {
    try {
      page.localStream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    } catch {
      try {
        page.localStream = await navigator.mediaDevices.getUserMedia({ video: true });
      } catch (error) {
        toast(`No camera: ${error.message}. Chat still works.`);
        return;
      }
    }
  }
  for (const peerCall of page.calls.values()) peerCall.setLocalStream(page.localStream);
  ui.localVideo.srcObject = page.localStream;
  ui.localTile.hidden = !page.localStream;
  ui.camera.textContent = page.localStream ? 'Stop camera' : 'Start camera';
  ui.camera.setAttribute('aria-pressed', String(Boolean(page.localStream)));
});

// ---- shared state: a topic and a list of notes ----------------------------------------------------

/** @typedef {{ topic?: string, topicBy?: string, notes?: { id: string, text: string, by: string }[] }} SharedNote */

client.on('state', ({ room, data }) => room === page.room && renderState(data));

function renderState(data) {
  const snapshot = page.room && client.room(page.room);
  if (!snapshot) return;
  const state = /** @type {SharedNote} */ (data ?? snapshot.state.data ?? {});
  ui.version.textContent = `v${snapshot.state.version}`;
  if (document.activeElement !== ui.topic || ui.topic.dataset.synced === ui.topic.value) {
    ui.topic.value = state.topic ?? '';
    ui.topic.dataset.synced = ui.topic.value;
  }
  ui.topicInfo.textContent = state.topic ? `Set by ${state.topicBy ?? 'someone'}` : 'No topic yet.';
  ui.notes.replaceChildren(
    ...(state.notes ?? []).map((note) => {
      const li = document.createElement('li');
      const text = document.createElement('span');
      text.className = 'grow';
      text.textContent = note.text;
      const by = document.createElement('span');
      by.className = 'hint';
      by.textContent = note.by;
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'ghost icon';
      remove.textContent = '×';
      remove.setAttribute('aria-label', `Remove note “${note.text}”`);
      remove.addEventListener('click', () =>
        editState((s) => ({ ...s, notes: (s.notes ?? []).filter((n) => n.id !== note.id) })),
      );
      li.append(text, by, remove);
      return li;
    }),
  );
}

/** Read-modify-write through updateState; a conflict re-runs `change` on the newer state. */
async function editState(change) {
  const room = page.room;
  let runs = 0;
  try {
    await client.updateState(room, (current) => {
      runs++;
      return change(current ?? {});
    });
    if (runs > 1) toast('Someone edited at the same time — merged your change on top');
    renderState(null);
  } catch (error) {
    toast(`Could not save: ${error.message}`);
  }
}

ui.topicForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const topic = ui.topic.value.trim();
  const by = peerName(client.room(page.room).self.id);
  ui.topic.dataset.synced = topic;
  void editState((s) => ({ ...s, topic, topicBy: by }));
});

ui.noteForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = ui.note.value.trim();
  if (!text) return;
  ui.note.value = '';
  const by = peerName(client.room(page.room).self.id);
  const id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  void editState((s) => ({ ...s, notes: [...(s.notes ?? []), { id, text, by }].slice(-50) }));
});

// ---- toasts ------------------------------------------------------------------------------------

function toast(text) {
  const div = document.createElement('div');
  div.className = 'toast';
  div.textContent = text;
  ui.toasts.append(div);
  setTimeout(() => div.remove(), 5000);
}

showStatus('connecting', 'Connecting…');
client.connect().catch((error) => showStatus('closed', `Cannot connect: ${error.message}`));
