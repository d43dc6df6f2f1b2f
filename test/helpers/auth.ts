import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type JWTPayload, SignJWT } from 'jose';
import { type InProcessServer, startServer } from './server.js';

export const SECRET = 'an-hmac-secret-of-more-than-32-bytes-for-the-tests-0123456789';
export const secretBytes = new TextEncoder().encode(SECRET);
export const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

export function hs256(claims: JWTPayload, secret: Uint8Array = secretBytes, alg = 'HS256'): Promise<string> {
  return new SignJWT({ exp: inAnHour(), ...claims }).setProtectedHeader({ alg }).sign(secret);
}

/** A server with --auth=jwt and the test's HMAC secret in a file of a fresh directory. */
export async function startWithSecret(
  flags: string[],
): Promise<{ server: InProcessServer; dir: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'wshub-auth-'));
  writeFileSync(join(dir, 'secret'), `${SECRET}\n`);
  const server = await startServer([
    '--stats-interval=0',
    '--auth=jwt',
    `--auth-jwt-secret-file=${join(dir, 'secret')}`,
    ...flags,
  ]);
  return {
    server,
    dir,
    async stop() {
      await server.app.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
