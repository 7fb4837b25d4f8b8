/**
 * A small, strict XML 1.0 reader for tests that must prove a document is
 * well-formed and read it back (JUnit files): one root element, matched
 * tags, quoted and unique attributes, only the five predefined entities and
 * character references, no raw '<' or '&' in text, nothing but whitespace,
 * comments and processing instructions around the root. Throws with the
 * offset on any violation. No DTDs, no namespaces: not a general parser.
 */

export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  /** The element's own character data (children's excluded), entities decoded. */
  text: string;
}

const NAME = /^[A-Za-z_:][A-Za-z0-9_:.-]*/;
const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

export function parseXml(source: string): XmlElement {
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(`not well-formed XML at offset ${i}: ${why}`);
  };
  const decode = (raw: string, where: string): string => {
    if (raw.includes('<')) fail(`raw '<' in ${where}`);
    return raw.replace(/&([^;]*);|&/g, (m, ref: string | undefined) => {
      if (ref === undefined) return fail(`raw '&' in ${where}`);
      if (ref in ENTITIES) return ENTITIES[ref]!;
      const num = /^#(?:x([0-9A-Fa-f]+)|([0-9]+))$/.exec(ref);
      if (!num) return fail(`unknown entity ${m}`);
      const code = num[1] ? Number.parseInt(num[1], 16) : Number(num[2]);
      if (!legalChar(code)) fail(`character reference to an illegal character ${m}`);
      return String.fromCodePoint(code);
    });
  };
  for (const ch of source) {
    if (!legalChar(ch.codePointAt(0)!))
      throw new Error(`illegal character U+${ch.codePointAt(0)!.toString(16)}`);
  }
  const skipMisc = () => {
    for (;;) {
      const ws = /^\s*/.exec(source.slice(i))![0];
      i += ws.length;
      if (source.startsWith('<!--', i)) {
        const end = source.indexOf('-->', i + 4);
        if (end < 0) fail('unterminated comment');
        i = end + 3;
      } else if (source.startsWith('<?', i)) {
        const end = source.indexOf('?>', i + 2);
        if (end < 0) fail('unterminated processing instruction');
        i = end + 2;
      } else return;
    }
  };
  const element = (): XmlElement => {
    if (source[i] !== '<') fail("expected '<'");
    i++;
    const name = NAME.exec(source.slice(i))?.[0] ?? fail('expected an element name');
    i += name.length;
    const el: XmlElement = { name, attributes: {}, children: [], text: '' };
    for (;;) {
      const ws = /^\s*/.exec(source.slice(i))![0];
      i += ws.length;
      if (source.startsWith('/>', i)) {
        i += 2;
        return el;
      }
      if (source[i] === '>') {
        i++;
        break;
      }
      if (ws.length === 0) fail('attributes must be separated by whitespace');
      const attr = NAME.exec(source.slice(i))?.[0] ?? fail('expected an attribute name');
      i += attr.length;
      const eq = /^\s*=\s*/.exec(source.slice(i))?.[0] ?? fail(`attribute ${attr} without '='`);
      i += eq.length;
      const quote = source[i];
      if (quote !== '"' && quote !== "'") fail(`attribute ${attr} value is not quoted`);
      const end = source.indexOf(quote!, i + 1);
      if (end < 0) fail(`unterminated value of ${attr}`);
      if (attr in el.attributes) fail(`duplicate attribute ${attr}`);
      el.attributes[attr] = decode(source.slice(i + 1, end), `attribute ${attr}`);
      i = end + 1;
    }
    for (;;) {
      const lt = source.indexOf('<', i);
      if (lt < 0) fail(`unclosed <${name}>`);
      el.text += decode(source.slice(i, lt), `<${name}> text`);
      i = lt;
      if (source.startsWith('</', i)) {
        i += 2;
        const close = NAME.exec(source.slice(i))?.[0];
        if (close !== name) fail(`</${close}> closes <${name}>`);
        i += name.length;
        const rest = /^\s*>/.exec(source.slice(i))?.[0] ?? fail(`malformed </${name}>`);
        i += rest.length;
        return el;
      }
      if (source.startsWith('<!--', i)) {
        const end = source.indexOf('-->', i + 4);
        if (end < 0) fail('unterminated comment');
        i = end + 3;
        continue;
      }
      if (source.startsWith('<![CDATA[', i)) {
        const end = source.indexOf(']]>', i + 9);
        if (end < 0) fail('unterminated CDATA');
        el.text += source.slice(i + 9, end);
        i = end + 3;
        continue;
      }
      el.children.push(element());
    }
  };
  if (source.startsWith('<?xml', i)) {
    const end = source.indexOf('?>');
    if (end < 0) fail('unterminated XML declaration');
    i = end + 2;
  }
  skipMisc();
  const root = element();
  skipMisc();
  if (i !== source.length) fail('content after the root element');
  return root;
}

function legalChar(c: number): boolean {
  return (
    c === 0x9 ||
    c === 0xa ||
    c === 0xd ||
    (c >= 0x20 && c <= 0xd7ff) ||
    (c >= 0xe000 && c <= 0xfffd) ||
    (c >= 0x10000 && c <= 0x10ffff)
  );
}

/** Every descendant element named `name`, in document order. */
export function findAll(el: XmlElement, name: string): XmlElement[] {
  const out: XmlElement[] = [];
  for (const child of el.children) {
    if (child.name === name) out.push(child);
    out.push(...findAll(child, name));
  }
  return out;
}
