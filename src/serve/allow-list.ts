/**
 * Who may connect to `serve`: RingCX has no SIP authentication, so the bot
 * admits by source address, from an allow-list of networks (RingCentral's
 * published supernets). Entries are CIDRs (`203.0.113.0/24`,
 * `2001:db8::/32`) or single addresses; a file holds one per line, `#`
 * starting a comment. Matching is node's net.BlockList (an IPv4-mapped IPv6
 * address matches its IPv4 network). Parsing is pure and names the bad entry.
 */
import net from 'node:net';

export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** One entry: `A.B.C.D[/N]` or `IPv6[/N]`; the reason when it is not one. */
export function parseCidr(text: string): { ok: true; cidr: Cidr } | { ok: false; reason: string } {
  const entry = text.trim();
  const slash = entry.indexOf('/');
  const address = slash === -1 ? entry : entry.slice(0, slash);
  const version = net.isIP(address);
  if (version === 0) return { ok: false, reason: `"${entry}" is not an IP address or CIDR` };
  const max = version === 4 ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const p = entry.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) {
      return { ok: false, reason: `"${entry}": the prefix length must be 0-${max}` };
    }
    prefix = Number(p);
  }
  return { ok: true, cidr: { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' } };
}

/**
 * The entries of an allow-list file: one CIDR per line (or several separated
 * by spaces or commas), blank lines and `#` comments ignored. Errors name the
 * line.
 */
export function parseAllowFile(text: string): { ok: true; cidrs: Cidr[] } | { ok: false; reason: string } {
  const cidrs: Cidr[] = [];
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') continue;
    for (const item of line.split(/[\s,]+/)) {
      const parsed = parseCidr(item);
      if (!parsed.ok) return { ok: false, reason: `line ${i + 1}: ${parsed.reason}` };
      cidrs.push(parsed.cidr);
    }
  }
  return { ok: true, cidrs };
}

export class AllowList {
  readonly #list = new net.BlockList();
  readonly entries: readonly Cidr[];

  constructor(cidrs: readonly Cidr[]) {
    this.entries = Object.freeze([...cidrs]);
    for (const c of cidrs) this.#list.addSubnet(c.address, c.prefix, c.family);
  }

  /** Whether `address` (IPv4, IPv6 or IPv4-mapped IPv6) is inside one of the networks. */
  allows(address: string): boolean {
    const version = net.isIP(address);
    if (version === 0) return false;
    return this.#list.check(address, version === 4 ? 'ipv4' : 'ipv6');
  }

  /** The entries as written back, e.g. for the `listening` event. */
  describe(): string[] {
    return this.entries.map((c) => `${c.address}/${c.prefix}`);
  }
}
