// Two people chat through the demo page in headless Chromium: alice and bob sign in with
// dev tokens, alice creates a chat, bob sees the unread badge, typing, the message and
// the read receipt. Run by .ci/browser.sh (BASE_URL, SHOTS, BROWSER_DEPS set there).
import { createRequire } from 'node:module';

const require = createRequire(`${process.env.BROWSER_DEPS}/`);
const { chromium } = require('playwright-core');

const base = process.env.BASE_URL;
const shots = process.env.SHOTS;
const WAIT = 10000; // every wait is bounded: a missing push fails, never hangs
const problems = []; // console errors, CSP violations, requests leaving the server

function log(text) {
  console.log(`browser test: ${text}`);
}

async function openAs(browser, user) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 640 } });
  const page = await context.newPage();
  const server = new URL(base).host;
  page.on('request', (r) => {
    if (new URL(r.url()).host !== server) problems.push(`${user}: request outside the server: ${r.url()}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`${user}: console error: ${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => problems.push(`${user}: page error: ${e.message}`));
  await page.goto(base + '/');
  if (user === 'alice') await page.screenshot({ path: `${shots}/sign-in.png` });
  await page.fill('#login-user', user);
  await page.click('#login-submit');
  await waitText(page, '#conn-text', 'live');
  await waitText(page, '#me', user);
  log(`${user} signed in with a dev token and is connected`);
  return page;
}

function waitText(page, selector, text) {
  return page.waitForFunction(
    ([s, t]) => (document.querySelector(s)?.textContent ?? '').includes(t),
    [selector, text],
    { timeout: WAIT },
  );
}

function waitNoText(page, selector, text) {
  return page.waitForFunction(
    ([s, t]) => !(document.querySelector(s)?.textContent ?? '').includes(t),
    [selector, text],
    { timeout: WAIT },
  );
}

const message = (page, text) => page.locator('#messages li .content', { hasText: text });
const chatItem = (page, name) => page.locator('#chat-list li.chat-item', { hasText: name });

async function conversation(alice, bob) {
  await alice.fill('#new-chat-participants', 'bob');
  await alice.fill('#new-chat-name', 'Demo chat');
  await alice.click('#new-chat-submit');
  await waitText(alice, '#chat-title', 'Demo chat');
  await chatItem(bob, 'Demo chat').waitFor({ timeout: WAIT });
  log('bob sees the chat alice created (chat-created)');
  await waitText(alice, '#status', 'bob is online');
  log('alice sees bob online (presence)');

  await alice.fill('#composer-input', 'Hello Bob, first message!');
  await alice.press('#composer-input', 'Enter');
  await message(alice, 'Hello Bob, first message!').waitFor({ timeout: WAIT });
  await waitText(bob, '#chat-list li.chat-item .badge', '1');
  await waitText(bob, '#chat-list li.chat-item .chat-preview', 'alice: Hello Bob, first message!');
  log('bob has an unread badge of 1 before opening the chat (chat-updated)');

  await chatItem(bob, 'Demo chat').click();
  await message(bob, 'Hello Bob, first message!').waitFor({ timeout: WAIT });
  await bob.locator('#chat-list .badge').waitFor({ state: 'detached', timeout: WAIT });
  log('bob opened the chat: history loaded, badge cleared (read)');
  await waitText(alice, '#messages li.mine .receipt', '✓✓ read');
  log('alice sees her message as read (message-read)');

  await alice.click('#composer-input');
  await alice.keyboard.type('Are you there?', { delay: 40 });
  await waitText(bob, '#status', 'alice is typing');
  log('bob sees alice typing (user-typing)');
  await bob.screenshot({ path: `${shots}/bob-typing.png` });
  await alice.press('#composer-input', 'Enter');
  await message(bob, 'Are you there?').waitFor({ timeout: WAIT });
  log('the message alice typed appears on bob\'s page (new-message)');
  await waitNoText(bob, '#status', 'typing');
  log('bob sees alice stop typing once she sent it');

  await bob.fill('#composer-input', 'Yes, loud and clear.');
  await bob.click('#composer-send');
  await message(alice, 'Yes, loud and clear.').waitFor({ timeout: WAIT });
  await waitText(bob, '#messages li.mine .receipt', '✓✓ read');
  log('bob\'s reply reaches alice, who reads it at once');

  await bob.fill('#new-chat-participants', 'alice');
  await bob.fill('#new-chat-name', 'Lunch');
  await bob.click('#new-chat-submit');
  await waitText(bob, '#chat-title', 'Lunch');
  await bob.fill('#composer-input', 'Lunch at noon?');
  await bob.press('#composer-input', 'Enter');
  await waitText(alice, '#chat-list', 'Lunch');
  await waitText(alice, '#chat-list li.chat-item:first-child .badge', '1');
  await waitText(alice, '#chat-list li.chat-item:first-child .chat-name', 'Lunch');
  if (await message(alice, 'Lunch at noon?').count()) throw new Error('a message of another chat leaked into the open one');
  log('a message in another chat badges it on alice\'s list, moves it to the top, and stays out of the open chat');
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
    '--no-first-run', '--disable-component-update', '--disable-sync'],
});
let failed = false;
const pages = {};
try {
  pages.alice = await openAs(browser, 'alice');
  pages.bob = await openAs(browser, 'bob');
  await conversation(pages.alice, pages.bob);
} catch (err) {
  failed = true;
  console.error(`browser test FAILED: ${err.message}`);
} finally {
  for (const [user, page] of Object.entries(pages)) {
    await page.screenshot({ path: `${shots}/${user}.png` }).catch(() => {});
  }
  await browser.close();
}
// The favicon is the one request a browser makes on its own; its 404 is not the page's fault.
const real = problems.filter((p) => !p.includes('favicon.ico'));
for (const p of real) console.error(`browser test: ${p}`);
process.exit(failed || real.length ? 1 : 0);
