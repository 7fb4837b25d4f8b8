/**
 * The checks as JUnit XML, the format every CI system reads (Jenkins,
 * GitLab, GitHub test reporters, Azure): one <testsuite>, one <testcase>
 * per check, <failure> for a failed one, <skipped> for one that could not be
 * judged. Pure: checks in, text out.
 *
 * Text from the network (SIP reason phrases, error messages) ends up in
 * attributes and bodies, so everything is escaped, and characters XML 1.0
 * cannot carry at all (most C0 controls, lone surrogates) are replaced.
 */
import os from 'node:os';
import { type Check, formatLimit, formatValue } from './checks.js';

export interface JUnitInput {
  /** Suite name (CI systems group by it). */
  suite: string;
  checks: readonly Check[];
  startedAt: Date;
  durationMs: number;
  /** Shown as <properties>: target, codec, … */
  properties?: Readonly<Record<string, string | number | undefined>>;
  hostname?: string;
}

const CLASSNAME = 'rc-softphone.smoke';

export function toJUnit(input: JUnitInput): string {
  const { checks } = input;
  const failures = checks.filter((c) => c.status === 'fail').length;
  const skipped = checks.filter((c) => c.status === 'skip').length;
  const time = (input.durationMs / 1000).toFixed(3);
  const counts = `tests="${checks.length}" failures="${failures}" errors="0" skipped="${skipped}" time="${time}"`;
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="${attr(input.suite)}" ${counts}>`,
    // The JUnit schema's timestamp is an xs:dateTime without a zone: UTC, said so in a property.
    `  <testsuite name="${attr(input.suite)}" ${counts} timestamp="${input.startedAt.toISOString().slice(0, 19)}" hostname="${attr(input.hostname ?? os.hostname())}">`,
  ];
  const all: Record<string, string | number | undefined> = { timezone: 'UTC', ...input.properties };
  const properties = Object.entries(all).filter((e): e is [string, string | number] => e[1] !== undefined);
  lines.push('    <properties>');
  for (const [name, value] of properties)
    lines.push(`      <property name="${attr(name)}" value="${attr(String(value))}"/>`);
  lines.push('    </properties>');
  for (const c of checks) {
    const open = `    <testcase classname="${CLASSNAME}" name="${attr(c.name)}" time="0"`;
    const summary = `value ${formatValue(c)}${c.limit === null ? '' : `, limit ${formatLimit(c)}`}: ${c.message}`;
    if (c.status === 'pass') {
      lines.push(`${open}>`, `      <system-out>${text(summary)}</system-out>`, '    </testcase>');
    } else if (c.status === 'fail') {
      lines.push(
        `${open}>`,
        `      <failure message="${attr(c.message)}" type="${attr(c.name)}">${text(summary)}</failure>`,
        '    </testcase>',
      );
    } else {
      lines.push(`${open}>`, `      <skipped message="${attr(c.message)}"/>`, '    </testcase>');
    }
  }
  lines.push('  </testsuite>', '</testsuites>', '');
  return lines.join('\n');
}

/** XML 1.0 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]. */
function legal(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    const ok =
      c === 0x9 ||
      c === 0xa ||
      c === 0xd ||
      (c >= 0x20 && c <= 0xd7ff) ||
      (c >= 0xe000 && c <= 0xfffd) ||
      (c >= 0x10000 && c <= 0x10ffff);
    out += ok ? ch : '\uFFFD';
  }
  return out;
}

function text(s: string): string {
  return legal(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Attribute values: also quotes, and line breaks as character references (a parser would fold them to spaces). */
function attr(s: string): string {
  return text(s)
    .replace(/"/g, '&quot;')
    .replace(/\n/g, '&#10;')
    .replace(/\r/g, '&#13;')
    .replace(/\t/g, '&#9;');
}
