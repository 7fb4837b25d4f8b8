/** A resolver to inject as `lookup` into net/tls connect (SipFlow, UserAgent), scripted per call. */
import type { LookupAddress, LookupOptions } from 'node:dns';
import type net from 'node:net';

/** What one lookup answers: an IPv4 address, or the getaddrinfo error code to fail with. */
export type LookupAnswer = { address: string } | { error: 'ENOTFOUND' | 'EAI_AGAIN' };

export interface ScriptedLookup {
  lookup: net.LookupFunction;
  /** Host names looked up, in order. */
  calls: string[];
}

/** `answer(host, n)` decides the n-th lookup (0-based); errors look like the system resolver's. */
export function scriptedLookup(answer: (host: string, n: number) => LookupAnswer): ScriptedLookup {
  const calls: string[] = [];
  const lookup = ((
    hostname: string,
    options: LookupOptions,
    callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ) => {
    const result = answer(hostname, calls.length);
    calls.push(hostname);
    process.nextTick(() => {
      if ('error' in result) {
        const err: NodeJS.ErrnoException = new Error(`getaddrinfo ${result.error} ${hostname}`);
        err.code = result.error;
        err.syscall = 'getaddrinfo';
        callback(err, options.all ? [] : '', undefined);
        return;
      }
      // net asks for every address (`all`) when it may try several families (autoSelectFamily).
      if (options.all) callback(null, [{ address: result.address, family: 4 }]);
      else callback(null, result.address, 4);
    });
  }) as net.LookupFunction;
  return { lookup, calls };
}
