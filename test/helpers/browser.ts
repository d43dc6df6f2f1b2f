import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export interface Browser {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Script errors, CSP violations and console errors seen so far (a failed load of a resource is not one). */
  readonly errors: string[];
  close(): Promise<void>;
}

/** Headless Chromium (the Debian package) with a throwaway profile and one page that records its errors. */
export async function launchChromium(
  viewport = { width: 1000, height: 700 },
  options: { readonly ignoreHTTPSErrors?: boolean } = {},
): Promise<Browser> {
  assert.ok(
    existsSync(CHROMIUM),
    `${CHROMIUM} not found: install the Debian packages chromium and chromium-driver (apt-get install chromium chromium-driver)`,
  );
  const profile = mkdtempSync(join(tmpdir(), 'wshub-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
    viewport,
    // A test's self-signed certificate (wss:// tests): the browser carries on as if it were trusted.
    ignoreHTTPSErrors: options.ignoreHTTPSErrors ?? false,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  page.on('console', (message) => {
    // CSP violations and script errors surface as console errors; a refused /stats poll or
    // reconnection (the test stopped that server) is a network event, not a page defect.
    const text = message.text();
    if (
      message.type() === 'error' &&
      !text.startsWith('Failed to load resource') &&
      !/^WebSocket connection to .* failed/.test(text)
    ) {
      errors.push(text);
    }
  });
  return {
    context,
    page,
    errors,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
