import { type FSWatcher, watch } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Logger } from './log.js';

export interface DirectoryWatchOptions {
  /** The files whose directories are watched (empty strings are skipped). */
  readonly files: readonly string[];
  /** What the files are, for the log lines ("certificate", "JWKS"). */
  readonly what: string;
  readonly logger: Logger;
  /** Called once the directories have been quiet for `debounceMs` after an event. */
  readonly onChange: () => void;
  /** Quiet time after the last event (a rotation touches several files). */
  readonly debounceMs?: number;
}

/**
 * Watches the directories of some files, not the files: a Kubernetes Secret
 * volume rotates by atomically renaming a `..data` symlink, which a watch on the
 * old file never sees. Used for the TLS certificate and the auth key files; a
 * directory that cannot be watched is logged, and SIGHUP still reloads.
 */
export class DirectoryWatch {
  private readonly watchers: FSWatcher[] = [];
  private debounceTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: DirectoryWatchOptions) {}

  start(): void {
    const { files, what, logger } = this.options;
    const directories = new Set(files.filter((file) => file !== '').map((file) => dirname(resolve(file))));
    for (const directory of directories) {
      try {
        const watcher = watch(directory, { persistent: false }, this.onDirectoryEvent);
        watcher.on('error', function onWatchError(error: Error) {
          logger.warn(
            `Stopped watching ${directory} for ${what} changes (${error.message}); reload with SIGHUP`,
          );
          watcher.close();
        });
        this.watchers.push(watcher);
      } catch (error) {
        logger.warn(
          `Cannot watch ${directory} for ${what} changes (${(error as Error).message}); reload with SIGHUP`,
        );
      }
    }
  }

  stop(): void {
    for (const watcher of this.watchers) watcher.close();
    this.watchers.length = 0;
    clearTimeout(this.debounceTimer);
  }

  private readonly onDirectoryEvent = (): void => {
    clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(this.options.onChange, this.options.debounceMs ?? 500);
    this.debounceTimer.unref();
  };
}
