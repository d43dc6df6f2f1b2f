import type { Logger } from '../log.js';

const SIGNAL_NUMBERS = { SIGINT: 2, SIGTERM: 15 } as const;
type HandledSignal = keyof typeof SIGNAL_NUMBERS;

/**
 * The first SIGINT or SIGTERM starts a graceful shutdown and exits 0 when it is
 * done; a second one exits at once with 128 + the signal number.
 */
export function handleSignals(
  logger: Logger,
  stop: () => Promise<void>,
  exit: (code: number) => void = (code) => process.exit(code),
): void {
  let stopping = false;
  const onSignal = (signal: HandledSignal): void => {
    if (stopping) {
      logger.warn(`Received ${signal} again during shutdown, exiting immediately`, { signal });
      exit(128 + SIGNAL_NUMBERS[signal]);
      return;
    }
    stopping = true;
    logger.info(`Received ${signal}, shutting down`, { signal });
    stop().then(
      () => {
        logger.info('Shutdown complete');
        exit(0);
      },
      (error: Error) => {
        logger.error(`Shutdown failed: ${error.message}`);
        exit(1);
      },
    );
  };
  for (const signal of Object.keys(SIGNAL_NUMBERS) as HandledSignal[]) {
    process.on(signal, onSignal);
  }
}

/**
 * SIGHUP reloads what can change without a restart (the TLS certificate), as
 * nginx and HAProxy do. Without a listener Node's default for SIGHUP is to exit.
 */
export function handleReloadSignal(logger: Logger, reload: () => void): void {
  process.on('SIGHUP', function onSighup() {
    logger.info('Received SIGHUP, reloading');
    reload();
  });
}
