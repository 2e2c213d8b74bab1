// Signing in, in a real browser (issue 18): a host of this test's own with
// a viewer and an operator in its users file. The status page sends a
// browser that is not signed in to the login page; a wrong password is
// said so; a viewer sees the status but no action buttons; an operator
// sees them; signing out ends the session.
//
// Run it with `bash tests/browser/run.sh` (it passes WSIO_BIN). Every wait
// is Playwright's; nothing sleeps.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { chromium } from 'playwright-core';

const HOST_BIN = process.env.WSIO_BIN;
const SHOTS = dirname(process.env.WSIO_SCREENSHOT || 'target/browser/status-page.png');
const TIMEOUT = 15_000;
const PASSWORD = 'browser-pass-do-not-show';

const LAUNCH = {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
};

function addUser(users, name, role) {
  const done = spawnSync(HOST_BIN, ['user', 'add', name, '--role', role, '--password-stdin', '--users', users],
    { input: `${PASSWORD}\n` });
  assert.equal(done.status, 0, String(done.stderr));
}

/** The built-in demo with this users file; resolves with its URL. */
function startHost(users) {
  const child = spawn(HOST_BIN, ['run', '--http', '127.0.0.1:0', '--users', users],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stderr.on('data', (chunk) => { log += chunk; });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('wsio run printed no address')), TIMEOUT);
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const found = /status page: (http:\/\/[^/\s]+\/)/.exec(out);
      if (found) {
        clearTimeout(timer);
        resolve({
          url: found[1],
          log: () => log + out,
          stop: async () => {
            if (child.exitCode === null) child.kill('SIGTERM');
            await exited;
          },
        });
      }
    });
    child.once('exit', (code) => reject(new Error(`wsio run exited with ${code}: ${log}`)));
  });
}

async function step(name, body) {
  try {
    await body();
  } catch (error) {
    error.message = `${name}: ${error.message}`;
    throw error;
  }
}

async function shoot(page, name) {
  await page.setViewportSize({ width: 1400, height: 900 });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true, animations: 'disabled' });
  await page.setViewportSize({ width: 420, height: 860 });
  await page.screenshot({ path: join(SHOTS, `${name}-420.png`), fullPage: true, animations: 'disabled' });
  await page.setViewportSize({ width: 1400, height: 900 });
}

async function signIn(page, user, password) {
  await page.locator('#user').fill(user);
  await page.locator('#password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

test('sign in, a viewer sees no action buttons, an operator does, sign out', { timeout: 120_000 }, async (t) => {
  assert.ok(HOST_BIN, 'WSIO_BIN is not set: run this through tests/browser/run.sh');
  const dir = mkdtempSync(join(tmpdir(), 'wsio-browser-access-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const users = join(dir, 'users.toml');
  addUser(users, 'vera', 'viewer');
  addUser(users, 'otto', 'operator');
  const host = await startHost(users);
  t.after(() => host.stop());

  const browser = await chromium.launch(LAUNCH);
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));

  await step('the status page sends a browser that is not signed in to the login page', async () => {
    await page.goto(host.url);
    await page.waitForURL(/\/login$/);
    await page.locator('#user').waitFor();
    await shoot(page, 'login');
  });

  await step('a wrong password is said so, and the page stays the login page', async () => {
    await signIn(page, 'vera', 'not-the-password');
    await page.locator('.login-error').filter({ hasText: 'Wrong user name or password.' }).waitFor();
    assert.equal(await page.locator('#user').inputValue(), 'vera', 'the name tried is kept');
    assert.equal(await page.locator('#password').inputValue(), '');
    await shoot(page, 'login-failed');
  });

  await step('a viewer sees the status and the log, no action buttons', async () => {
    await signIn(page, 'vera', PASSWORD);
    await page.waitForURL(host.url);
    await page.locator('body[data-role="viewer"]').waitFor();
    await page.locator('#feed[data-feed="live"]').waitFor();
    await page.locator('article[data-instance="piesocket"] .connection .badge').waitFor();
    await page.locator('form.action button').first().waitFor({ state: 'hidden' });
    await page.locator('.actions-title').first().waitFor({ state: 'hidden' });
    // Nor the Configure tab, even when asked for by its address. (Hidden is
    // waited for: before page.css applies, everything shows.)
    await page.locator('#tab-configure').waitFor({ state: 'hidden' });
    await page.goto(`${host.url}#configure`);
    await page.locator('article[data-instance="piesocket"]').waitFor();
    await page.locator('#configure-view').waitFor({ state: 'hidden' });
    await page.locator('.session-user').filter({ hasText: 'vera · viewer' }).waitFor();
    await shoot(page, 'viewer');
  });

  await step('signing out goes back to the login page and ends the session', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/login$/);
    const status = await page.evaluate(async () => (await fetch('/io_modules')).status);
    assert.equal(status, 401);
  });

  await step('an operator sees the action buttons, not the Configure tab', async () => {
    await signIn(page, 'otto', PASSWORD);
    await page.locator('body[data-role="operator"]').waitFor();
    await page.locator('form.action button').first().waitFor();
    await page.locator('#tab-configure').waitFor({ state: 'hidden' });
  });

  await host.stop();
  assert.ok(!host.log().includes(PASSWORD), 'the password is in the host output');
  assert.ok(host.log().includes('sign-in failed for user "vera" from 127.0.0.1'), host.log());
  assert.deepEqual(problems, []);
});

// The run.sh host has no users: the page says so, discreetly, and shows
// every control (this machine is admin).
test('with no users the header notes "this machine only"', { timeout: 60_000 }, async (t) => {
  const url = process.env.WSIO_STATUS_URL;
  assert.ok(url, 'WSIO_STATUS_URL is not set: run this through tests/browser/run.sh');
  const browser = await chromium.launch(LAUNCH);
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(TIMEOUT);
  await page.goto(url);
  await page.locator('body[data-role="admin"]').waitFor();
  await page.locator('.session-note').filter({ hasText: 'no users: this machine only' }).waitFor();
  await page.locator('form.action button').first().waitFor();
  const header = page.locator('header.top');
  await header.screenshot({ path: join(SHOTS, 'no-users-header.png') });
  await page.setViewportSize({ width: 420, height: 860 });
  await header.screenshot({ path: join(SHOTS, 'no-users-header-420.png') });
});
