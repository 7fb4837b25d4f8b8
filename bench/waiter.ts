/** What the benches wait on: a condition on a child's output, re-checked as the output comes. */

/** Waits for a condition re-checked on every `poke()`; rejects after `timeoutMs` or when `abort()` says why. */
export class Waiter {
  #waiters: { check: () => boolean; resolve: () => void; reject: (e: Error) => void }[] = [];
  poke(): void {
    for (const w of [...this.#waiters]) {
      if (w.check()) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }
  abort(error: Error): void {
    for (const w of this.#waiters.splice(0)) w.reject(error);
  }
  until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      if (check()) return resolve();
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.check !== check);
        reject(new Error(`${what}: not within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      this.#waiters.push({
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }
}
