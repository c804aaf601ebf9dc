// Passkeys through the real pages, with Chromium's virtual authenticator (CDP WebAuthn
// domain): register, add a passkey in the security page, sign out, sign in with the passkey
// alone (and a replay of its assertion refused), sign in with the password and the passkey as
// second factor, remove the passkey.
// Run by crates/netapi/tests/cli.rs with BASE (an http://localhost:PORT issuer) and SHOTS set.
import { chromium, request } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const base = process.env.BASE;
const shots = process.env.SHOTS;
const email = 'passkey@example.com';
const password = 'correct horse battery';
mkdirSync(shots, { recursive: true });

function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const failures = [];
  page.on('console', (m) => { if (m.type() === 'error') failures.push(m.text()); });
  page.on('pageerror', (e) => failures.push(String(e)));

  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
    },
  });

  await page.goto(`${base}/register`);
  await page.fill('input[name=name]', 'Passkey User');
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('#new-secret');

  // Add a passkey in the security page.
  const security = await page.goto(`${base}/portal/security`);
  const csp = security.headers()['content-security-policy'];
  check(csp.includes("script-src 'self'") && !csp.includes('unsafe-inline'), `CSP: ${csp}`);
  await page.fill('#passkey-name', 'Virtual laptop');
  await page.click('[data-action="add-passkey"]');
  await page.waitForSelector('td.passkey-name:has-text("Virtual laptop")');
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  check(credentials.length === 1 && credentials[0].isResidentCredential,
    `expected one resident credential: ${JSON.stringify(credentials.map((c) => c.isResidentCredential))}`);
  await page.screenshot({ path: `${shots}/passkey-1-added.png`, fullPage: true });

  // Sign out, then in with the passkey alone (no email, no password). The assertion the
  // browser sends is kept, to be replayed below.
  await page.click('header form[action="/logout"] button');
  await page.waitForURL(`${base}/login`);
  let assertion = null;
  let cookies = '';
  await page.route(`${base}/login/passkey`, async (route) => {
    assertion = route.request().postData();
    cookies = (await route.request().allHeaders()).cookie || '';
    await route.continue();
  });
  await page.click('[data-action="passkey-login"]');
  await page.waitForURL(`${base}/portal`);
  await page.unroute(`${base}/login/passkey`);
  check((await page.textContent('header')).includes(email), 'not signed in after the passkey');

  // The same request sent again byte for byte, cookies included (what someone who captured
  // it would do): its challenge was taken by the first use, so it opens nothing.
  check(assertion !== null && cookies.includes('netapi_login_csrf='), `no passkey request was seen: ${cookies}`);
  const replayer = await request.newContext();
  const replay = await replayer.post(`${base}/login/passkey`, {
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', Cookie: cookies },
    data: assertion,
    maxRedirects: 0,
  });
  check(replay.status() === 401, `a replayed assertion got ${replay.status()}: ${await replay.text()}`);
  check(!(replay.headers()['set-cookie'] || '').includes('netapi_session='),
    'a replayed assertion set a session cookie');
  await replayer.dispose();
  await page.screenshot({ path: `${shots}/passkey-2-passwordless.png`, fullPage: true });

  // Sign out, then in with the password: the second step offers the passkey.
  await page.click('header form[action="/logout"] button');
  await page.waitForURL(`${base}/login`);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', password);
  await page.click('form[action="/login"] button[type=submit]');
  await page.waitForSelector('#passkey-second-factor');
  await page.screenshot({ path: `${shots}/passkey-3-second-factor.png`, fullPage: true });
  await page.click('#passkey-second-factor');
  await page.waitForURL(`${base}/portal`);

  // The sessions list counts it as two-step; then remove the passkey (password as proof).
  await page.goto(`${base}/portal/security`);
  const current = await page.textContent('tr.session:has-text("(this browser)")');
  check(current.includes('yes'), `this session is not marked two-step: ${current}`);
  await page.fill('tr.passkey input[name=code]', password);
  await page.click('tr.passkey button[type=submit]');
  await page.waitForSelector('text=The passkey was removed.');
  check(await page.locator('tr.passkey').count() === 0, 'the passkey is still listed');
  await page.screenshot({ path: `${shots}/passkey-4-removed.png`, fullPage: true });

  // Without a passkey the password alone signs in again, and the old passkey is refused.
  await page.click('header form[action="/logout"] button');
  await page.waitForURL(`${base}/login`);
  await page.click('[data-action="passkey-login"]');
  await page.waitForSelector('[data-role="passkey-message"]:not([hidden])');
  const refusal = await page.textContent('[data-role="passkey-message"]');
  check(refusal.includes('not accepted'), `a removed passkey was not refused: ${refusal}`);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', password);
  await page.click('form[action="/login"] button[type=submit]');
  await page.waitForURL(`${base}/portal`);

  // The refused passkey logs a 401 fetch in the console: that one is expected.
  const unexpected = failures.filter((f) => !f.includes('401'));
  check(unexpected.length === 0, `console errors: ${unexpected.join('; ')}`);
  console.log('passkey flow passed');
} finally {
  await browser.close();
}
