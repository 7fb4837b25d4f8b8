/**
 * The smoke test's HTML report, for CI artifacts: the checks, and for each
 * side the recording (a player), its waveform and its spectrogram, with the
 * tones it should have heard drawn where they were heard (or, missing, where
 * they should have been), so a failure can be seen at a glance. Pure: one
 * self-contained page (inline CSS and SVG, the spectrogram a PNG data URI;
 * no script, no font, nothing fetched); the WAVs are referenced by relative
 * name, the CLI copies them next to the page.
 */
import { type Check, formatLimit, formatValue, type Side, type Summary } from './checks.js';
import { spectrogram, spectrogramPng } from './spectrogram.js';
import { type HeardTone, type ToneMatch, type TonePattern, toneOffsetsMs } from './tones.js';

export interface ReportRecording {
  side: Side;
  /** File name of the WAV, relative to the report (copied there). */
  file: string;
  samples: Float32Array;
  rate: number;
  /** What this side should have heard (the other side's pattern), and what was found. */
  pattern: TonePattern;
  matches: readonly ToneMatch[] | undefined;
  heard: readonly HeardTone[];
  dtmf: readonly { digit: string; atMs: number }[];
}

export interface ReportInput {
  checks: readonly Check[];
  summary: Summary;
  /** Shown in the header table: caller, callee, target, codec, … */
  facts: Readonly<Record<string, string | undefined>>;
  startedAt: Date;
  durationMs: number;
  recordings: readonly ReportRecording[];
  /** Sides without a recording, and why. */
  missing?: readonly { side: Side; why: string }[];
}

const WIDTH = 1000;
const WAVE_HEIGHT = 120;
const SPEC_HEIGHT = 220;
/** Left margin for the axis labels, top strip for the tone labels. */
const MARGIN = 44;
/** Two rows of labels: the expected tones, then unexpected tones and DTMF (they may sit at the same time). */
const TOP = 28;

export function renderReport(input: ReportInput): string {
  const { summary } = input;
  const verdict = summary.ok ? 'PASS' : 'FAIL';
  const title = `rc-softphone smoke: ${verdict}`;
  const failed = summary.failed.map((c) => c.name).join(', ');
  const facts = Object.entries({
    ...input.facts,
    started: input.startedAt.toISOString(),
    duration: `${(input.durationMs / 1000).toFixed(1)} s`,
  }).filter((e): e is [string, string] => e[1] !== undefined);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1><span class="badge ${summary.ok ? 'pass' : 'fail'}">${verdict}</span> rc-softphone smoke</h1>
<p class="summary">${summary.passed} passed, ${summary.failed.length} failed, ${summary.skipped} skipped${
    failed ? ` — <strong>failed: ${esc(failed)}</strong>` : ''
  }</p>
<table class="facts">${facts.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>
<h2>Checks</h2>
<table class="checks">
<thead><tr><th>check</th><th>result</th><th>value</th><th>limit</th><th>details</th></tr></thead>
<tbody>
${input.checks
  .map(
    (c) =>
      `<tr class="${c.status}"><td><code>${esc(c.name)}</code></td><td><span class="badge ${c.status}">${c.status.toUpperCase()}</span></td><td>${esc(formatValue(c))}</td><td>${esc(formatLimit(c))}</td><td>${esc(c.message)}</td></tr>`,
  )
  .join('\n')}
</tbody>
</table>
${input.recordings.map(recordingSection).join('\n')}
${(input.missing ?? []).map((m) => `<h2>What the ${m.side} heard</h2><p class="missing">No recording: ${esc(m.why)}</p>`).join('\n')}
<p class="legend">Boxes: <span class="ok">a tone heard within ±2 % of what was sent</span>, <span class="bad">a tone missing (drawn where the pattern puts it)</span>, <span class="other">a tone heard that was not expected</span>; dashed lines: the frequencies sent; ticks: DTMF arrivals. Latency includes the receiver's playout delay.</p>
</body>
</html>
`;
}

function recordingSection(r: ReportRecording): string {
  const other = r.side === 'caller' ? 'callee' : 'caller';
  const durationMs = (r.samples.length / r.rate) * 1000;
  const boxes = toneBoxes(r);
  const heardList = r.pattern.tones
    .map((t, k) => {
      const m = r.matches?.[k];
      if (m?.heard)
        return `<li class="ok">${t.frequency} Hz: heard ${m.heard.frequency.toFixed(1)} Hz at ${(m.heard.onsetMs / 1000).toFixed(3)} s for ${m.heard.durationMs.toFixed(0)} ms</li>`;
      const instead = m?.nearest ? ` (nearest heard: ${m.nearest.frequency.toFixed(1)} Hz)` : '';
      return `<li class="bad">${t.frequency} Hz: not heard${esc(instead)}</li>`;
    })
    .join('');
  return `<h2>What the ${r.side} heard <small>(the ${other}'s tones and DTMF) — <a href="${esc(r.file)}">${esc(r.file)}</a></small></h2>
<audio controls preload="none" src="${esc(r.file)}"></audio>
<ul class="tones">${heardList}<li>DTMF: ${r.dtmf.length > 0 ? esc(r.dtmf.map((d) => d.digit).join('')) : '(none)'}</li></ul>
<figure><figcaption>Waveform (${(durationMs / 1000).toFixed(2)} s, ${r.rate} Hz)</figcaption>${waveformSvg(r, durationMs, boxes)}</figure>
<figure><figcaption>Spectrogram (0–${r.rate / 2} Hz)</figcaption>${spectrogramSvg(r, durationMs, boxes)}</figure>`;
}

interface Box {
  startMs: number;
  endMs: number;
  frequency: number;
  kind: 'ok' | 'bad' | 'other';
  label: string;
}

/** The expected tones where they were heard (or, missing, where the heard ones put them), and unexpected tones. */
function toneBoxes(r: ReportRecording): Box[] {
  const offsets = toneOffsetsMs(r.pattern);
  const anchor = r.matches?.find((m) => m.heard);
  const boxes: Box[] = [];
  r.pattern.tones.forEach((t, k) => {
    const m = r.matches?.[k];
    if (m?.heard) {
      boxes.push({
        startMs: m.heard.onsetMs,
        endMs: m.heard.onsetMs + m.heard.durationMs,
        frequency: t.frequency,
        kind: 'ok',
        label: `${t.frequency} Hz`,
      });
    } else if (anchor?.heard) {
      const start = anchor.heard.onsetMs + offsets[k]! - offsets[anchor.index]!;
      boxes.push({
        startMs: start,
        endMs: start + t.durationMs,
        frequency: t.frequency,
        kind: 'bad',
        label: `${t.frequency} Hz missing`,
      });
    }
  });
  const taken = new Set((r.matches ?? []).map((m) => m.heard));
  for (const h of r.heard) {
    if (taken.has(h)) continue;
    boxes.push({
      startMs: h.onsetMs,
      endMs: h.onsetMs + h.durationMs,
      frequency: h.frequency,
      kind: 'other',
      label: `${h.frequency.toFixed(0)} Hz?`,
    });
  }
  return boxes;
}

function timeAxis(durationMs: number, y: number): string {
  const x = (ms: number) => MARGIN + (ms / Math.max(1, durationMs)) * WIDTH;
  const step = durationMs > 20_000 ? 5000 : durationMs > 8000 ? 2000 : 1000;
  let out = '';
  for (let ms = 0; ms <= durationMs; ms += step) {
    out += `<line class="tick" x1="${x(ms).toFixed(1)}" y1="${y}" x2="${x(ms).toFixed(1)}" y2="${y + 4}"/><text class="axis" x="${x(ms).toFixed(1)}" y="${y + 15}" text-anchor="middle">${ms / 1000} s</text>`;
  }
  return out;
}

function dtmfTicks(r: ReportRecording, durationMs: number, top: number, bottom: number): string {
  // Digits are labelled in the strip above the plot, beside the tone labels.
  const x = (ms: number) => MARGIN + (ms / Math.max(1, durationMs)) * WIDTH;
  return r.dtmf
    .map(
      (d) =>
        `<line class="dtmf" x1="${x(d.atMs).toFixed(1)}" y1="${top}" x2="${x(d.atMs).toFixed(1)}" y2="${bottom}"/><text class="dtmf" x="${(x(d.atMs) + 3).toFixed(1)}" y="-4">DTMF ${esc(d.digit)}</text>`,
    )
    .join('');
}

function waveformSvg(r: ReportRecording, durationMs: number, boxes: Box[]): string {
  const n = r.samples.length;
  const mid = WAVE_HEIGHT / 2;
  let peak = 0;
  for (let i = 0; i < n; i++) peak = Math.max(peak, Math.abs(r.samples[i]!));
  // Scaled to the loudest sample (at least -20 dBFS), so quiet lines still show their shape.
  const scale = (mid - 4) / Math.max(peak, 0.1);
  let path = '';
  for (let col = 0; col < WIDTH; col++) {
    const a = Math.floor((col * n) / WIDTH);
    const b = Math.max(a + 1, Math.floor(((col + 1) * n) / WIDTH));
    let lo = 0;
    let hi = 0;
    for (let i = a; i < b && i < n; i++) {
      const s = r.samples[i]!;
      if (s < lo) lo = s;
      if (s > hi) hi = s;
    }
    const x = MARGIN + col + 0.5;
    path += `M${x} ${(mid - hi * scale).toFixed(1)}V${(mid - lo * scale + 0.5).toFixed(1)}`;
  }
  const x = (ms: number) => MARGIN + (ms / Math.max(1, durationMs)) * WIDTH;
  const rects = boxes
    .map(
      (b) =>
        `<rect class="box ${b.kind}" x="${x(b.startMs).toFixed(1)}" y="1" width="${Math.max(1, x(b.endMs) - x(b.startMs)).toFixed(1)}" height="${WAVE_HEIGHT - 2}"/>`,
    )
    .join('');
  const peakDb = peak > 0 ? (20 * Math.log10(peak)).toFixed(1) : '-inf';
  return `<svg class="wave" viewBox="0 ${-TOP} ${WIDTH + MARGIN + 10} ${WAVE_HEIGHT + TOP + 22}" role="img" aria-label="waveform of the ${r.side}'s recording">
<rect class="plot" x="${MARGIN}" y="0" width="${WIDTH}" height="${WAVE_HEIGHT}"/>
<line class="zero" x1="${MARGIN}" y1="${mid}" x2="${MARGIN + WIDTH}" y2="${mid}"/>
${rects}
<path class="wave" d="${path}"/>
${labels(boxes, x)}
${dtmfTicks(r, durationMs, 0, WAVE_HEIGHT)}
<text class="axis" x="${MARGIN - 4}" y="12" text-anchor="end">${peakDb}</text><text class="axis" x="${MARGIN - 4}" y="24" text-anchor="end">dBFS</text>
${timeAxis(durationMs, WAVE_HEIGHT)}
</svg>`;
}

function spectrogramSvg(r: ReportRecording, durationMs: number, boxes: Box[]): string {
  const spec = spectrogram(r.samples, r.rate);
  const png = spectrogramPng(spec).toString('base64');
  const nyquist = r.rate / 2;
  const y = (f: number) => SPEC_HEIGHT - (f / nyquist) * SPEC_HEIGHT;
  const x = (ms: number) => MARGIN + (ms / Math.max(1, durationMs)) * WIDTH;
  // The image's columns cover [0, columns·hop + fftSize/2) roughly; place it on the time axis by its centres.
  const imageMs = ((spec.columns * spec.hop) / r.rate) * 1000;
  const image = `<image x="${MARGIN}" y="0" width="${((imageMs / Math.max(1, durationMs)) * WIDTH).toFixed(1)}" height="${SPEC_HEIGHT}" preserveAspectRatio="none" href="data:image/png;base64,${png}"/>`;
  let axis = '';
  for (let f = 0; f <= nyquist; f += nyquist > 4000 ? 2000 : 1000) {
    axis += `<text class="axis" x="${MARGIN - 4}" y="${(y(f) + 4).toFixed(1)}" text-anchor="end">${f / 1000}k</text>`;
  }
  const expected = r.pattern.tones
    .map(
      (t) =>
        `<line class="expected" x1="${MARGIN}" y1="${y(t.frequency).toFixed(1)}" x2="${MARGIN + WIDTH}" y2="${y(t.frequency).toFixed(1)}"/>`,
    )
    .join('');
  // ±4 % around the tone (twice the tolerance), at least 12 px, so the tone shows inside its box.
  const band = (f: number) => Math.max(12, (f * 0.08 * SPEC_HEIGHT) / nyquist);
  const rects = boxes
    .map(
      (b) =>
        `<rect class="box ${b.kind}" x="${x(b.startMs).toFixed(1)}" y="${(y(b.frequency) - band(b.frequency) / 2).toFixed(1)}" width="${Math.max(1, x(b.endMs) - x(b.startMs)).toFixed(1)}" height="${band(b.frequency).toFixed(1)}"/>`,
    )
    .join('');
  return `<svg class="spec" viewBox="0 ${-TOP} ${WIDTH + MARGIN + 10} ${SPEC_HEIGHT + TOP + 22}" role="img" aria-label="spectrogram of the ${r.side}'s recording">
<rect class="plot dark" x="${MARGIN}" y="0" width="${WIDTH}" height="${SPEC_HEIGHT}"/>
${image}
${expected}
${rects}
${labels(boxes, x)}
${dtmfTicks(r, durationMs, 0, SPEC_HEIGHT)}
${axis}
${timeAxis(durationMs, SPEC_HEIGHT)}
</svg>`;
}

/** Each box's label in the strip above the plot: expected tones on the upper row, others on the lower. */
function labels(boxes: Box[], x: (ms: number) => number): string {
  return boxes
    .map(
      (b) =>
        `<text class="label ${b.kind}" x="${(x(b.startMs) + 1).toFixed(1)}" y="${b.kind === 'other' ? -4 : -16}">${esc(b.label)}</text>`,
    )
    .join('');
}

function esc(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const CSS = `
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;color:#1d2330}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}h2 small{font-weight:normal;color:#5a6170}
.badge{display:inline-block;padding:.1em .5em;border-radius:.3em;font-weight:600;font-size:.85em;color:#fff}
.badge.pass{background:#1f883d}.badge.fail{background:#cf222e}.badge.skip{background:#8c959f}
table{border-collapse:collapse}td,th{padding:.25em .6em;text-align:left;vertical-align:top}
table.checks{width:100%}table.checks td,table.checks th{border-bottom:1px solid #d8dee4}
tr.fail td{background:#ffebe9}tr.skip td{color:#6e7781}
table.facts th{color:#5a6170;font-weight:normal}
figure{margin:.5em 0}figcaption{color:#5a6170;font-size:.9em}svg{width:100%;height:auto;display:block}
rect.plot{fill:#f6f8fa;stroke:#d0d7de}rect.plot.dark{fill:#000004}
path.wave{stroke:#0969da;stroke-width:1;fill:none}line.zero{stroke:#d0d7de}
rect.box{fill-opacity:.15;stroke-width:1.5}rect.box.ok{fill:#1f883d;stroke:#1f883d}
rect.box.bad{fill:#cf222e;stroke:#cf222e;stroke-dasharray:4 3}rect.box.other{fill:#bf8700;stroke:#bf8700}
svg.spec rect.box{fill:none}svg.spec rect.box.ok{stroke:#4ac26b}
text{font-size:11px;font-family:system-ui,sans-serif}text.axis{fill:#5a6170}
text.label.ok{fill:#1a7f37}text.label.bad{fill:#cf222e}text.label.other{fill:#9a6700}
line.tick{stroke:#8c959f}line.expected{stroke:#fff;stroke-opacity:.55;stroke-dasharray:2 4}
line.dtmf{stroke:#8250df;stroke-width:1.5}text.dtmf{fill:#8250df;font-weight:600}
ul.tones{margin:.3em 0;padding-left:1.2em}li.ok{color:#1a7f37}li.bad{color:#cf222e;font-weight:600}
.legend{color:#5a6170;font-size:.9em;margin-top:2em}.legend .ok{color:#1a7f37}.legend .bad{color:#cf222e}.legend .other{color:#9a6700}
p.missing{color:#cf222e}audio{width:100%;max-width:600px}
`;
