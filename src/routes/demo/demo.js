// Missive demo client: REST for every action, one WebSocket for push (see README).
// Plain DOM, no framework, no build step; every piece of user text goes in via
// textContent, never innerHTML, so a message cannot inject markup.
'use strict';

const $ = (id) => document.getElementById(id);
const SESSION_KEY = 'missive-demo';
// The server reports a typist as stopped after about 6 s of quiet; this covers a lost event.
const TYPING_FORGET_MS = 10000;
const TYPING_REPEAT_MS = 3000;
const TYPING_IDLE_MS = 4000;

const state = {
  token: null, me: null, dev: false, signedOut: false,
  chats: new Map(), // chat id -> chat view, kept current by events
  openId: null, openGen: 0,
  messages: new Map(), // seq -> message, open chat only
  lastSeq: 0, lastOtherSeq: 0, readSent: 0,
  readers: new Map(), // participant -> lastReadSeq (open chat, from message-read)
  typing: new Map(), // participant -> forget timer (open chat)
  presence: new Map(), // user -> {online, lastSeen}
  ws: null, retries: 0,
  typingChat: null, typingSentAt: 0, typingIdle: null,
};

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

function toast(text) {
  const t = $('toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
}

// A random id without crypto.randomUUID, which plain-http pages on a LAN address lack.
function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return 'demo-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function clock(iso) {
  return iso ? new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
}

async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + state.token };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) {
    const err = new Error((data && data.message) || `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

// --- signing in ---------------------------------------------------------------

async function devToken(user) {
  const res = await fetch('/dev/token', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ userId: user }),
  });
  if (res.status === 404) return null; // not dev auth, or not this machine: ask for a token
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.message || `HTTP ${res.status}`);
  return data.token;
}

// The user a pasted JWT names (display only: the server checks the token).
function tokenSubject(token) {
  try {
    const claims = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return claims.sub || claims.userId || null;
  } catch (_) {
    return null;
  }
}

async function signIn(event) {
  event.preventDefault();
  const user = $('login-user').value.trim();
  const pasted = $('login-token').value.trim();
  $('login-error').textContent = '';
  $('login-submit').disabled = true;
  try {
    let token = pasted;
    if (!token) {
      token = await devToken(user);
      if (!token) {
        $('login-token-row').hidden = false;
        $('login-error').textContent = 'Paste a token to sign in.';
        return;
      }
      state.dev = true;
    }
    state.token = token;
    state.me = tokenSubject(token) || user;
    await start();
    sessionStorage.setItem(SESSION_KEY, JSON.stringify({ token, me: state.me, dev: state.dev }));
  } catch (err) {
    $('login-error').textContent = err.message;
  } finally {
    $('login-submit').disabled = false;
  }
}

async function start() {
  await loadChats(); // fails with 401 on a bad token, before anything is shown
  $('login').hidden = true;
  $('app').hidden = false;
  $('whoami').hidden = false;
  $('me').textContent = state.me;
  connect();
}

function signOut() {
  state.signedOut = true;
  sessionStorage.removeItem(SESSION_KEY);
  if (state.ws) state.ws.close(1000);
  location.reload();
}

// --- the socket ------------------------------------------------------------------

function connect() {
  const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
  const ws = new WebSocket(`${scheme}${location.host}/messaging?token=${encodeURIComponent(state.token)}`);
  state.ws = ws;
  ws.onmessage = (e) => {
    let frame;
    try { frame = JSON.parse(e.data); } catch (_) { return; }
    const handler = handlers[frame.event];
    if (handler) handler(frame.data || {});
  };
  ws.onclose = (e) => {
    setConnection(false, e.code === 4029 ? 'too many connections' : 'reconnecting…');
    if (!state.signedOut) setTimeout(() => reconnect(e.code), Math.min(1000 * 2 ** state.retries++, 15000));
  };
}

async function reconnect(code) {
  // 4001: the token expired. In dev auth a fresh one is a request away.
  if (code === 4001 && state.dev) {
    try { state.token = (await devToken(state.me)) || state.token; } catch (_) { /* retry later */ }
  }
  connect();
}

function send(event, data) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify({ event, data }));
}

function setConnection(on, text) {
  $('conn-dot').className = 'dot ' + (on ? 'on' : 'off');
  $('conn-text').textContent = text;
}

const handlers = {
  connected(d) {
    state.me = d.userId;
    $('me').textContent = d.userId;
    setConnection(true, 'live');
    send('listen-all-chats', {});
    if (state.retries > 0) loadChats().catch(() => {}); // badges may have moved while away
    state.retries = 0;
    if (state.openId) send('join-chat', { chatId: state.openId, lastSeq: state.lastSeq });
  },
  'new-message'(d) {
    if (d.chatId !== state.openId) return;
    addMessage(d.message);
    markRead();
  },
  'chat-joined'(d) {
    if (d.resync && d.chatId === state.openId) openChat(d.chatId); // too much missed: reload the page of history
  },
  'chat-created'(d) {
    state.chats.set(d.chat.id, d.chat);
    renderChatList();
  },
  'chat-updated'(d) {
    const chat = state.chats.get(d.chatId);
    if (!chat) return void refreshChat(d.chatId);
    chat.lastMessage = d.lastMessage;
    chat.unreadCount = d.unreadCount;
    if (d.lastMessage) chat.updatedAt = d.lastMessage.createdAt;
    renderChatList();
  },
  'unread-count-updated'(d) {
    const chat = state.chats.get(d.chatId);
    if (chat) chat.unreadCount = d.unreadCount;
    document.title = d.totalUnread > 0 ? `(${d.totalUnread}) Missive demo` : 'Missive demo';
    renderChatList();
  },
  'message-updated'(d) {
    if (d.chatId === state.openId) addMessage(d.message);
  },
  'message-deleted'(d) {
    const m = state.messages.get(d.seq);
    if (d.chatId === state.openId && m) addMessage({ ...m, content: '', deletedAt: new Date().toISOString() });
  },
  'message-read'(d) {
    if (d.chatId !== state.openId || d.userId === state.me) return;
    state.readers.set(d.userId, Math.max(d.lastReadSeq, state.readers.get(d.userId) || 0));
    renderReceipts();
  },
  'user-typing'(d) {
    if (d.chatId !== state.openId || d.userId === state.me) return;
    clearTimeout(state.typing.get(d.userId));
    if (d.isTyping) state.typing.set(d.userId, setTimeout(() => forgetTypist(d.userId), TYPING_FORGET_MS));
    else state.typing.delete(d.userId);
    renderStatus();
  },
  'user-online'(d) {
    state.presence.set(d.userId, { online: true });
    renderPresence();
  },
  'user-offline'(d) {
    state.presence.set(d.userId, { online: false, lastSeen: d.lastSeen });
    forgetTypist(d.userId);
  },
  'participant-added'(d) { refreshChat(d.chatId); },
  'participant-removed'(d) {
    if (d.userId !== state.me) return void refreshChat(d.chatId);
    state.chats.delete(d.chatId);
    if (state.openId === d.chatId) closeChat();
    renderChatList();
  },
  error(d) { toast(d.message); },
};

function forgetTypist(user) {
  clearTimeout(state.typing.get(user));
  state.typing.delete(user);
  renderPresence();
}

// --- chats -------------------------------------------------------------------------

async function loadChats() {
  const page = await api('GET', '/v1/messaging/chats?limit=100');
  state.chats = new Map(page.chats.map((c) => [c.id, c]));
  renderChatList();
}

async function refreshChat(id) {
  try {
    state.chats.set(id, await api('GET', `/v1/messaging/chats/${id}`));
  } catch (err) {
    if (err.status === 404) state.chats.delete(id);
  }
  renderChatList();
  if (id === state.openId) renderPresence();
}

function chatTitle(chat) {
  const others = chat.participants.filter((p) => p !== state.me);
  return chat.name || others.join(', ') || 'just you';
}

function renderChatList() {
  const list = $('chat-list');
  const chats = [...state.chats.values()].sort((a, b) => (b.updatedAt > a.updatedAt ? 1 : -1));
  list.replaceChildren(...chats.map((chat) => {
    const li = el('li', 'chat-item' + (chat.id === state.openId ? ' active' : ''));
    li.dataset.chatId = chat.id;
    li.append(el('span', 'chat-name', chatTitle(chat)));
    if (chat.unreadCount > 0) li.append(el('span', 'badge', String(chat.unreadCount)));
    const last = chat.lastMessage;
    const preview = !last ? 'No messages yet'
      : `${last.senderId === state.me ? 'You' : last.senderId}: ${last.deletedAt ? '(deleted)' : last.content}`;
    li.append(el('span', 'chat-preview', preview));
    li.addEventListener('click', () => openChat(chat.id));
    return li;
  }));
  $('chat-list-empty').hidden = chats.length > 0;
}

async function createChat(event) {
  event.preventDefault();
  const participants = $('new-chat-participants').value.split(/[\s,]+/).filter((p) => p && p !== state.me);
  const name = $('new-chat-name').value.trim();
  try {
    const chat = await api('POST', '/v1/messaging/chats', name ? { participants, name } : { participants });
    state.chats.set(chat.id, chat);
    $('new-chat').reset();
    await openChat(chat.id);
  } catch (err) {
    toast(err.message);
  }
}

// --- the open chat -----------------------------------------------------------------

async function openChat(id) {
  if (state.openId && state.openId !== id) {
    stopTyping();
    send('leave-chat', { chatId: state.openId });
  }
  const gen = ++state.openGen; // a later click wins over this one's slower requests
  Object.assign(state, { openId: id, lastSeq: 0, lastOtherSeq: 0, readSent: 0 });
  state.messages = new Map();
  state.readers = new Map();
  state.typing.forEach((t) => clearTimeout(t));
  state.typing = new Map();
  $('messages').replaceChildren();
  $('placeholder').hidden = true;
  $('chat').hidden = false;
  renderChatList();
  try {
    const [history, presence] = await Promise.all([
      api('GET', `/v1/messaging/chats/${id}/messages?limit=50`),
      api('GET', `/v1/messaging/chats/${id}/presence`),
    ]);
    if (gen !== state.openGen) return;
    for (const user of presence.online) state.presence.set(user, { online: true });
    for (const [user, seen] of Object.entries(presence.lastSeen)) state.presence.set(user, { online: false, lastSeen: seen });
    history.messages.forEach(addMessage);
    // Joining after the history page, with its last seq: the server replays anything newer.
    send('join-chat', { chatId: id, lastSeq: state.lastSeq });
    renderPresence();
    markRead();
    $('composer-input').focus();
  } catch (err) {
    toast(err.message);
  }
}

function closeChat() {
  state.openId = null;
  $('chat').hidden = true;
  $('placeholder').hidden = false;
}

function addMessage(m) {
  const list = $('messages');
  const mine = m.senderId === state.me;
  const li = el('li', 'message' + (mine ? ' mine' : '') + (m.deletedAt ? ' deleted' : ''));
  li.dataset.seq = m.seq;
  const meta = el('div', 'meta');
  meta.append(el('span', 'sender', mine ? 'You' : m.senderId), el('span', 'time', clock(m.createdAt)));
  if (m.editedAt && !m.deletedAt) meta.append(el('span', 'edited', 'edited'));
  if (mine) meta.append(el('span', 'receipt'));
  li.append(meta, el('div', 'content', m.deletedAt ? 'message deleted' : m.content));
  const old = list.querySelector(`li[data-seq="${m.seq}"]`);
  if (old) {
    old.replaceWith(li);
  } else {
    // Usually appended; an out-of-order arrival (replay, the POST reply) goes into place.
    const after = [...list.children].find((c) => Number(c.dataset.seq) > m.seq);
    list.insertBefore(li, after || null);
    if (!after) list.scrollTop = list.scrollHeight;
  }
  state.messages.set(m.seq, m);
  state.lastSeq = Math.max(state.lastSeq, m.seq);
  if (!mine) state.lastOtherSeq = Math.max(state.lastOtherSeq, m.seq);
  renderReceipts();
}

// A message of mine reads "read" once every other participant's marker has passed it.
function renderReceipts() {
  const chat = state.chats.get(state.openId);
  const others = chat ? chat.participants.filter((p) => p !== state.me) : [];
  const readUpTo = others.length ? Math.min(...others.map((p) => state.readers.get(p) || 0)) : 0;
  for (const li of $('messages').querySelectorAll('li.mine')) {
    const receipt = li.querySelector('.receipt');
    const read = Number(li.dataset.seq) <= readUpTo;
    receipt.textContent = read ? '✓✓ read' : '✓ sent';
    receipt.classList.toggle('read', read);
  }
}

function markRead() {
  const chat = state.chats.get(state.openId);
  if (!chat || document.visibilityState !== 'visible' || state.lastOtherSeq <= state.readSent) return;
  const id = state.openId;
  state.readSent = state.lastOtherSeq;
  api('POST', `/v1/messaging/chats/${id}/read`, { seq: state.readSent })
    .then((r) => { chat.unreadCount = r.unreadCount; renderChatList(); })
    .catch((err) => toast(err.message));
}

function renderPresence() {
  const chat = state.chats.get(state.openId);
  if (!chat) return;
  $('chat-title').textContent = chatTitle(chat);
  $('chat-members').replaceChildren(...chat.participants.map((p) => {
    const online = p === state.me || (state.presence.get(p) || {}).online;
    const li = el('li');
    li.append(el('span', 'dot ' + (online ? 'on' : 'off')), el('span', null, p === state.me ? `${p} (you)` : p));
    return li;
  }));
  renderStatus();
}

// Typing first (it is what changes); otherwise who is around.
function renderStatus() {
  const typists = [...state.typing.keys()];
  let text;
  if (typists.length) {
    text = `${typists.join(', ')} ${typists.length > 1 ? 'are' : 'is'} typing…`;
  } else {
    const chat = state.chats.get(state.openId);
    const others = chat ? chat.participants.filter((p) => p !== state.me) : [];
    text = others.map((p) => {
      const seen = state.presence.get(p) || {};
      if (seen.online) return `${p} is online`;
      return seen.lastSeen ? `${p} was last seen at ${clock(seen.lastSeen)}` : `${p} has not connected yet`;
    }).join(' · ');
  }
  $('status').textContent = text;
  $('status').classList.toggle('typing', typists.length > 0);
}

// --- composing ---------------------------------------------------------------------

function postTyping(chatId, isTyping) {
  api('POST', `/v1/messaging/chats/${chatId}/typing`, { isTyping }).catch(() => {}); // cosmetic: never worth a toast
}

// One `true` every few seconds keeps the server's typing spell alive; `false` ends it early.
function onComposerInput() {
  if (!state.openId) return;
  if ($('composer-input').value === '') return stopTyping();
  const now = Date.now();
  if (now - state.typingSentAt > TYPING_REPEAT_MS) {
    state.typingSentAt = now;
    state.typingChat = state.openId;
    postTyping(state.openId, true);
  }
  clearTimeout(state.typingIdle);
  state.typingIdle = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  clearTimeout(state.typingIdle);
  if (state.typingSentAt && state.typingChat) postTyping(state.typingChat, false);
  state.typingSentAt = 0;
  state.typingChat = null;
}

async function sendMessage(event) {
  event.preventDefault();
  const input = $('composer-input');
  const content = input.value;
  const chatId = state.openId;
  if (!chatId || !content.trim()) return;
  input.value = '';
  stopTyping();
  try {
    // The id makes a retried send idempotent on the server.
    const msg = await api('POST', `/v1/messaging/chats/${chatId}/messages`, { content, clientMessageId: newId() });
    if (msg.chatId === state.openId) addMessage(msg);
  } catch (err) {
    if (!input.value) input.value = content;
    toast(err.message);
  }
}

// --- wiring --------------------------------------------------------------------------

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);
  $('new-chat').addEventListener('submit', createChat);
  $('composer').addEventListener('submit', sendMessage);
  $('composer-input').addEventListener('input', onComposerInput);
  document.addEventListener('visibilitychange', markRead);
  // sessionStorage is per tab, so two tabs can be two users.
  const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
  if (saved) {
    Object.assign(state, { token: saved.token, me: saved.me, dev: saved.dev });
    start().catch(() => sessionStorage.removeItem(SESSION_KEY));
  } else {
    $('login-user').focus();
  }
});
