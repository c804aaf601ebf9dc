// A person in a browser: registers, creates an API key in the portal, then authorizes an
// application through the login and consent pages and lands on its redirect URI with a code.
// Run by crates/netapi/tests/cli.rs with BASE, CLIENT_ID, CALLBACK_PORT and SHOTS set.
import { chromium } from 'playwright-core';
import http from 'node:http';
import { mkdirSync } from 'node:fs';

const base = process.env.BASE;
const clientId = process.env.CLIENT_ID;
const callbackPort = Number(process.env.CALLBACK_PORT);
const shots = process.env.SHOTS;
const redirectUri = `http://127.0.0.1:${callbackPort}/callback`;
mkdirSync(shots, { recursive: true });

function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

const callback = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end('<!doctype html><title>Callback</title><p>Back at the application.</p>');
});
await new Promise((resolve) => callback.listen(callbackPort, '127.0.0.1', resolve));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const failures = [];
  page.on('console', (m) => { if (m.type() === 'error') failures.push(m.text()); });

  await page.goto(`${base}/register`);
  await page.screenshot({ path: `${shots}/1-register.png`, fullPage: true });
  await page.fill('input[name=name]', 'Browser User');
  await page.fill('input[name=email]', 'browser@example.com');
  await page.fill('input[name=password]', 'correct horse battery');
  await page.click('button[type=submit]');
  await page.waitForSelector('#new-secret');
  const firstKey = (await page.textContent('#new-secret')).trim();
  check(/^napi_[0-9A-Za-z]{38}$/.test(firstKey), `first key looks wrong: ${firstKey}`);
  await page.screenshot({ path: `${shots}/2-portal-first-key.png`, fullPage: true });

  // A key with one scope ticked: the form redirects to the portal, which shows it once.
  await page.fill('#key-name', 'Made in the browser');
  await page.check('input[name=scope][value="users:read"]');
  await page.click('form[action="/portal/keys"] button[type=submit]');
  await page.waitForSelector('text=Made in the browser');
  check(new URL(page.url()).pathname === '/portal', `not redirected to the portal: ${page.url()}`);
  const key = (await page.textContent('#new-secret')).trim();
  check(key !== firstKey && key.startsWith('napi_'), 'the new key was not shown');
  const me = await fetch(`${base}/v1/users/me`, { headers: { Authorization: `Bearer ${key}` } });
  check(me.status === 200, `the new key does not work: ${me.status}`);
  const keys = await fetch(`${base}/v1/api-keys`, { headers: { Authorization: `Bearer ${key}` } });
  check(keys.status === 403, `the key holds more than the ticked scope: ${keys.status}`);
  await page.screenshot({ path: `${shots}/3-portal-new-key.png`, fullPage: true });
  // A refresh shows the portal again without the secret, and makes no second key.
  await page.reload();
  check(await page.$('#new-secret') === null, 'the secret was shown a second time');

  // Rotating asks first, and offers a grace period; the old value keeps working for it.
  await page.click('tr:has-text("Made in the browser") a:has-text("Rotate")');
  await page.waitForSelector('select[name=grace_period_seconds]');
  await page.screenshot({ path: `${shots}/3b-confirm-rotate.png`, fullPage: true });
  await page.selectOption('select[name=grace_period_seconds]', '3600');
  await page.click('main button[type=submit]');
  await page.waitForSelector('#new-secret');
  const rotated = (await page.textContent('#new-secret')).trim();
  check(rotated !== key && rotated.startsWith('napi_'), 'the rotated key was not shown');
  const old = await fetch(`${base}/v1/users/me`, { headers: { Authorization: `Bearer ${key}` } });
  check(old.status === 200, `the old value stopped at once despite the grace period: ${old.status}`);

  // Sign out, then authorize an application as that user.
  await page.click('header button[type=submit]');
  await page.waitForURL(/\/login/);
  const verifier = 'browser-test-verifier-0123456789-abcdefghijklmnop';
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  const challenge = Buffer.from(digest).toString('base64url');
  const authorize = `${base}/oauth/authorize?response_type=code&client_id=${clientId}`
    + `&redirect_uri=${encodeURIComponent(redirectUri)}&scope=openid%20email%20users%3Aread`
    + `&state=st-123&code_challenge=${challenge}&code_challenge_method=S256`;
  await page.goto(authorize);
  await page.waitForSelector('input[name=password]');
  await page.screenshot({ path: `${shots}/4-login.png`, fullPage: true });
  await page.fill('input[name=email]', 'browser@example.com');
  await page.fill('input[name=password]', 'correct horse battery');
  await page.click('button[type=submit]');
  await page.waitForSelector('button[value=approve]');
  const consentText = await page.textContent('main');
  check(consentText.includes('Browser Demo App'), 'the consent page does not name the client');
  check(consentText.includes('See your email address'), 'the consent page does not describe scopes');
  await page.screenshot({ path: `${shots}/5-consent.png`, fullPage: true });
  await page.click('button[value=approve]');
  await page.waitForURL(/\/callback\?/);
  const landed = new URL(page.url());
  check(landed.searchParams.get('code')?.startsWith('napac_'), 'no code at the redirect URI');
  check(landed.searchParams.get('state') === 'st-123', 'state was not returned');
  check(landed.searchParams.get('iss') === process.env.ISSUER, 'iss was not returned');
  await page.screenshot({ path: `${shots}/6-callback.png`, fullPage: true });

  const token = await fetch(`${base}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', client_id: clientId,
      code: landed.searchParams.get('code'), redirect_uri: redirectUri, code_verifier: verifier }),
  });
  check(token.status === 200, `code exchange failed: ${token.status} ${await token.text()}`);
  check(failures.length === 0, `console errors: ${failures.join('; ')}`);
  console.log('browser flow passed');
} finally {
  await browser.close();
  callback.close();
}
