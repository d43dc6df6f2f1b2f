import type { Readable, Writable } from 'node:stream';
import { runClient } from './client.js';
import { checkHttp2ClientShape } from './http2.js';
import { clientHelpText, parseClientArgs } from './options.js';

export interface ClientCommandIO {
  readonly stdin: Readable;
  readonly stdout: Writable;
  readonly stderr: Writable;
  /** Registers what the first Ctrl-C does; a second one exits at once. */
  readonly onInterrupt: (handler: () => void) => void;
}

/** `wshub client [flags] [URL]`: returns the exit status. Usage errors are thrown (exit 2). */
export async function clientCommand(argv: readonly string[], io: ClientCommandIO): Promise<number> {
  const options = parseClientArgs(argv);
  if (options.action === 'help') {
    io.stdout.write(clientHelpText());
    return 0;
  }
  if (options.http2) checkHttp2ClientShape();
  const client = runClient(options, { input: io.stdin, output: io.stdout, status: io.stderr });
  io.onInterrupt(() => client.interrupt());
  const status = await client.done;
  // stdin may still be open (the server closed first); stop reading so the process can exit.
  io.stdin.destroy();
  return status;
}
