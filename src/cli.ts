import { checkStartupFiles, type RunningApp, type RunningPrimary, start, startPrimary } from './app.js';
import { helpText } from './config/help.js';
import { loadConfig } from './config/load.js';
import { printConfig } from './config/print.js';
import type { Config } from './config/settings.js';
import { isUsageError } from './errors.js';
import { resolveWorkerCount } from './lifecycle/cluster-supervisor.js';
import { isClusterWorker, PrimaryConnection, processLink } from './lifecycle/cluster-worker.js';
import { keepFreedMemoryForReuse } from './lifecycle/heap-reuse.js';
import { handleReloadSignal, handleSignals } from './lifecycle/signals.js';
import { createLogger, type Logger, shareStdoutWithOtherProcesses } from './log.js';
import { VERSION } from './version.js';

/**
 * Subcommands: `wshub NAME ...` runs a tool instead of the server. Each one
 * receives the arguments after its name and returns the exit status; its module
 * is loaded only when it is used, so the server never loads them.
 */
const SUBCOMMANDS: Readonly<Record<string, (argv: readonly string[]) => Promise<number>>> = {
  bench: async (argv) => (await import('./bench/command.js')).benchCommand(argv, commandIO()),
  token: async (argv) => (await import('./auth/token-command.js')).tokenCommand(argv, commandIO()),
  client: async (argv) =>
    (await import('./client/command.js')).clientCommand(argv, { ...commandIO(), stdin: process.stdin }),
};

/**
 * The process entry point: argv and env come in here and nowhere else. A user
 * mistake prints one line on stderr and exits 2; never a stack trace.
 */
export async function main(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Promise<void> {
  try {
    const name = argv[0];
    const subcommand = name !== undefined && Object.hasOwn(SUBCOMMANDS, name) ? SUBCOMMANDS[name] : undefined;
    if (subcommand !== undefined) {
      process.exitCode = await subcommand(argv.slice(1));
      return;
    }
    const loaded = loadConfig(argv, env);
    if (loaded.action === 'help') {
      process.stdout.write(helpText(VERSION));
      return;
    }
    if (loaded.action === 'version') {
      process.stdout.write(`wshub ${VERSION}\n`);
      return;
    }
    if (loaded.action === 'print') {
      process.stdout.write(printConfig(loaded.config));
      return;
    }
    if (loaded.action === 'check') {
      checkStartupFiles(loaded.config);
      const file = loaded.configFile === undefined ? 'no config file' : `config file ${loaded.configFile}`;
      process.stdout.write(`wshub: configuration OK (${file})\n`);
      return;
    }
    keepFreedMemoryForReuse();
    const logger = createLogger({ format: loaded.config.logFormat, level: loaded.config.logLevel });
    // --workers (issue 5): this process is a worker of a primary, or becomes one.
    const primary = !isClusterWorker() && resolveWorkerCount(loaded.config.workers) > 1;
    // Several processes write to one stdout: each write must stay whole (PIPE_BUF).
    if (primary || isClusterWorker()) shareStdoutWithOtherProcesses();
    if (isClusterWorker()) {
      await runWorker(loaded.config, logger);
      return;
    }
    if (primary) {
      await runPrimary(loaded.config, logger);
      return;
    }
    // Installed before starting: Node's default for SIGHUP is to exit, even mid-startup.
    let app: RunningApp | undefined;
    handleReloadSignal(logger, () => {
      if (app) app.reload();
      else logger.info('Nothing to reload yet: still starting');
    });
    app = await start(loaded.config, { logger });
    const running = app;
    handleSignals(logger, () => running.stop());
  } catch (error) {
    if (isUsageError(error)) {
      process.stderr.write(`wshub: ${error.message} [${error.code}]\n`);
      process.exit(error.exitCode);
    }
    throw error;
  }
}

/** The primary of --workers: a startup error of any worker is reported once, here, by the catch in main(). */
async function runPrimary(config: Config, logger: Logger): Promise<void> {
  let primary: RunningPrimary | undefined;
  handleReloadSignal(logger, () => {
    if (primary) primary.reload();
    else logger.info('Nothing to reload yet: still starting');
  });
  primary = await startPrimary(config, { logger });
  const running = primary;
  handleSignals(logger, () => running.stop());
  running.gaveUp.then(async () => {
    await running.stop();
    process.exit(1);
  });
}

/**
 * A worker of --workers: serves like a single process, but the primary tells
 * it when to stop or reload. A user mistake found at startup (e.g. the port in
 * use) goes to the primary, which prints it once for the cluster.
 */
async function runWorker(config: Config, logger: Logger): Promise<void> {
  const primary = new PrimaryConnection(processLink(), resolveWorkerCount(config.workers));
  let app: RunningApp | undefined;
  handleReloadSignal(logger, () => app?.reload());
  try {
    app = await start(config, { logger, worker: primary });
  } catch (error) {
    if (!isUsageError(error)) throw error;
    await primary.startupFailed(error);
    process.exit(error.exitCode);
  }
  const running = app;
  const stopAndExit = (): void => {
    running.stop().then(
      () => process.exit(0),
      (error: Error) => {
        logger.error(`Shutdown failed: ${error.message}`);
        process.exit(1);
      },
    );
  };
  primary.onStop(stopAndExit);
  primary.onReload(() => running.reload());
  // A signal to the whole process group (Ctrl-C) reaches the workers too: they drain as on the primary's request.
  handleSignals(logger, () => running.stop());
  primary.listening(running.port);
}

/** The terminal a subcommand talks to: the first Ctrl-C asks it to finish, a second exits at once (130). */
function commandIO() {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    onInterrupt(handler: () => void): void {
      process.once('SIGINT', function onFirstInterrupt() {
        process.once('SIGINT', function onSecondInterrupt() {
          process.exit(130);
        });
        handler();
      });
    },
  };
}
