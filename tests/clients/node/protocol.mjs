// The line protocol between a client script and the Rust test that runs it
// (crates/netapi/tests/clients/node.rs). Standard output carries only these lines:
//
//   AUTHORIZE <url>   a person must open <url>, sign in and approve; the test answers on
//                     standard input with the URL the browser was redirected to
//   USER_CODE <code>  a person must approve <code> at /device; the test answers APPROVED
//   DONE <json>       the script passed; <json> is what it found, for the test to check too
//
// Everything else (progress, errors) goes to standard error. Any failure exits non-zero.
import { createInterface } from 'node:readline';

// The test blocks on this script's output: never let it wait for ever.
setTimeout(() => {
  console.error('gave up after two minutes');
  process.exit(2);
}, 120_000).unref();

const answers = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** Asks the test for a person's part: prints `<kind> <value>`, answers the test's reply. */
export async function ask(kind, value) {
  process.stdout.write(`${kind} ${value}\n`);
  const { value: line, done } = await answers.next();
  if (done) throw new Error(`no answer to ${kind}`);
  return line.trim();
}

/** Fails the script unless `condition` holds. */
export function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
}

/** Runs `step`, which must fail; answers the error for more checks. */
export async function refused(step, what) {
  try {
    await step();
  } catch (error) {
    return error;
  }
  throw new Error(`check failed: ${what} was not refused`);
}

/** Reports success with what the test should check as well, and ends the script. */
export function done(found) {
  process.stdout.write(`DONE ${JSON.stringify(found)}\n`);
  process.exit(0);
}

/** The decoded JSON of a JWT's header (part 0) or claims (part 1), without verifying it. */
export function jwtPart(jwt, part) {
  return JSON.parse(Buffer.from(jwt.split('.')[part], 'base64url').toString('utf8'));
}

/** Runs `main`, turning any error into a message on standard error and exit status 1. */
export function run(main) {
  main().catch((error) => {
    console.error(error);
    if (error?.cause) console.error('cause:', error.cause);
    process.exit(1);
  });
}
