// What the browser tests share: Chromium (Debian's, never a downloaded
// one) launched headless, a fresh page per test with its script errors
// collected, named steps, exact-text waits, and a `wsio run` host of a
// test's own. Every wait is Playwright's (a locator that appears within a
// timeout) or a process's output; nothing sleeps.

import { spawn } from 'node:child_process';
import { chromium } from 'playwright-core';

export const TIMEOUT = 15_000;
/** The wsio binary, for a test that runs a host of its own. */
export const HOST_BIN = process.env.WSIO_BIN;

const LAUNCH = {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
};

/** Waits until `locator` has an element whose whole text is `text`. */
export function hasExactly(locator, text) {
  const escaped = text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return locator.filter({ hasText: new RegExp(`^\\s*${escaped}\\s*$`) }).first().waitFor();
}

/** A fresh browser and page for test `t` (closed after it), with the
 * page's script errors collected in `problems`. */
export async function openPage(t, viewport = { width: 1280, height: 900 }) {
  const browser = await chromium.launch(LAUNCH);
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  return { context, page, problems };
}

/** Sends `message` with the Send Message form of the status view's
 * instance `article`, and waits for the host's ✓. */
export async function sendFromForm(article, message) {
  const send = article.getByRole('form', { name: 'Send Message', exact: true });
  await send.getByLabel('Message', { exact: true }).fill(message);
  await send.getByRole('button', { name: 'Send Message', exact: true }).click();
  await send.locator('output[data-result="ok"]').waitFor();
}

/** The value of status variable `key` of the status view's instance
 * `article`. */
export function statusValue(article, key) {
  return article.locator(`tr[data-key="${key}"] td.value`);
}

/** A named step, so a failure says which part of the story broke. */
export async function step(name, body) {
  try {
    await body();
  } catch (error) {
    error.message = `${name}: ${error.message}`;
    throw error;
  }
}

/** `wsio run` (the built-in demo) serving on `address`; resolves once it
 * prints its status page address. `stop()` ends it with SIGTERM and waits. */
export function startHost(address) {
  const child = spawn(HOST_BIN, ['run', '--http', address], { stdio: ['ignore', 'pipe', 'ignore'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`wsio run --http ${address} printed no address`)), TIMEOUT);
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const found = /status page: (http:\/\/([^/\s]+)\/)/.exec(out);
      if (found) {
        clearTimeout(timer);
        resolve({
          url: found[1],
          address: found[2],
          stop: async () => {
            if (child.exitCode === null) child.kill('SIGTERM');
            await exited;
          },
        });
      }
    });
    child.once('exit', (code) => reject(new Error(`wsio run --http ${address} exited with ${code}`)));
  });
}
