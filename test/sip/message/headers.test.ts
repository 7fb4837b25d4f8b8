import { describe, expect, it } from 'vitest';
import {
  canonicalHeaderName,
  Headers,
  isListHeader,
  splitHeaderList,
} from '../../../src/sip/message/headers.js';

describe('canonicalHeaderName', () => {
  it.each([
    ['v', 'Via'],
    ['V', 'Via'],
    ['f', 'From'],
    ['t', 'To'],
    ['i', 'Call-ID'],
    ['I', 'Call-ID'],
    ['m', 'Contact'],
    ['l', 'Content-Length'],
    ['c', 'Content-Type'],
    ['k', 'Supported'],
    ['s', 'Subject'],
    ['e', 'Content-Encoding'],
    ['o', 'Event'],
    ['u', 'Allow-Events'],
    ['r', 'Refer-To'],
    ['b', 'Referred-By'],
    ['x', 'Session-Expires'],
    ['y', 'Identity'],
    ['call-id', 'Call-ID'],
    ['Call-Id', 'Call-ID'],
    ['CALL-ID', 'Call-ID'],
    ['cseq', 'CSeq'],
    ['Www-Authenticate', 'WWW-Authenticate'],
    ['www-authenticate', 'WWW-Authenticate'],
    ['max-forwards', 'Max-Forwards'],
    ['RECORD-ROUTE', 'Record-Route'],
    ['proxy-authenticate', 'Proxy-Authenticate'],
    ['Proxy-authorization', 'Proxy-Authorization'],
    ['min-expires', 'Min-Expires'],
    ['content-type', 'Content-Type'],
    ['user-agent', 'User-Agent'],
    ['p-asserted-identity', 'P-Asserted-Identity'],
    ['X-RC-Custom', 'X-RC-Custom'],
    ['p-rc-api-ids', 'p-rc-api-ids'],
    ['xx', 'xx'],
  ])('%s → %s', (input, output) => {
    expect(canonicalHeaderName(input)).toBe(output);
  });
});

describe('splitHeaderList', () => {
  it('splits at top-level commas only', () => {
    expect(splitHeaderList('"Doe, John" <sip:a@b>;q=0.5 , <sip:1,2@c;x="y,z">,sip:d@e')).toEqual([
      '"Doe, John" <sip:a@b>;q=0.5',
      '<sip:1,2@c;x="y,z">',
      'sip:d@e',
    ]);
    expect(splitHeaderList('"a \\", b" <sip:a@b>, <sip:c@d>')).toEqual(['"a \\", b" <sip:a@b>', '<sip:c@d>']);
    expect(splitHeaderList('a,,b,')).toEqual(['a', '', 'b', '']);
  });

  it('knows which headers are lists', () => {
    for (const name of [
      'Via',
      'v',
      'Route',
      'record-route',
      'Contact',
      'm',
      'Allow',
      'Supported',
      'k',
      'Warning',
    ]) {
      expect(isListHeader(name), name).toBe(true);
    }
    for (const name of [
      'WWW-Authenticate',
      'Authorization',
      'Proxy-Authenticate',
      'Proxy-Authorization',
      'Date',
    ]) {
      expect(isListHeader(name), name).toBe(false);
    }
  });
});

describe('Headers', () => {
  const sample = (): Headers =>
    new Headers([
      ['v', 'SIP/2.0/TCP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2'],
      ['Via', 'SIP/2.0/UDP c;branch=z9hG4bK3'],
      ['call-id', 'abc@host'],
      ['Www-Authenticate', 'Digest realm="sip.ringcentral.com", nonce="n,1", algorithm=MD5'],
      ['Date', 'Sat, 13 Nov 2010 23:29:00 GMT'],
      ['m', '"Doe, John" <sip:a@b>, <sip:c@d>'],
      ['X-Custom', 'one, two'],
      ['x-custom', 'three'],
      ['Allow', 'INVITE, ACK,,BYE,'],
    ]);

  it('matches names case-insensitively and through compact forms', () => {
    const h = sample();
    expect(h.get('Call-ID')).toBe('abc@host');
    expect(h.get('i')).toBe('abc@host');
    expect(h.get('CALL-ID')).toBe('abc@host');
    expect(h.get('WWW-Authenticate')).toContain('nonce="n,1"');
    expect(h.get('Contact')).toBe('"Doe, John" <sip:a@b>, <sip:c@d>');
    expect(h.has('m')).toBe(true);
    expect(h.has('Route')).toBe(false);
    expect(h.get('Route')).toBeUndefined();
    expect(h.getAll('Route')).toEqual([]);
  });

  it('getAll splits list headers across fields and never splits the others', () => {
    const h = sample();
    expect(h.getAll('Via')).toEqual([
      'SIP/2.0/TCP a;branch=z9hG4bK1',
      'SIP/2.0/UDP b;branch=z9hG4bK2',
      'SIP/2.0/UDP c;branch=z9hG4bK3',
    ]);
    expect(h.getAll('Contact')).toEqual(['"Doe, John" <sip:a@b>', '<sip:c@d>']);
    expect(h.getAll('WWW-Authenticate')).toEqual([
      'Digest realm="sip.ringcentral.com", nonce="n,1", algorithm=MD5',
    ]);
    expect(h.getAll('Date')).toEqual(['Sat, 13 Nov 2010 23:29:00 GMT']);
    expect(h.getAll('X-Custom')).toEqual(['one, two', 'three']);
    expect(h.getAll('Allow')).toEqual(['INVITE', 'ACK', 'BYE']);
    expect(new Headers([['Contact', '*']]).getAll('Contact')).toEqual(['*']);
  });

  it('counts fields, not values', () => {
    const h = sample();
    expect(h.count('Via')).toBe(2);
    expect(h.count('v')).toBe(2);
    expect(h.count('X-CUSTOM')).toBe(2);
    expect(h.count('Route')).toBe(0);
    expect(h.size).toBe(9);
  });

  it('lists entries in order with canonical names, unknown names as spelled', () => {
    expect([...sample().entries()].map(([name]) => name)).toEqual([
      'Via',
      'Via',
      'Call-ID',
      'WWW-Authenticate',
      'Date',
      'Contact',
      'X-Custom',
      'x-custom',
      'Allow',
    ]);
    const names: string[] = [];
    sample().forEach((_value, name) => {
      names.push(name);
    });
    expect(names).toEqual([...sample()].map(([name]) => name));
  });

  it('set replaces every field of the name at the position of the first', () => {
    const h = sample().set('via', 'SIP/2.0/TCP z;branch=z9hG4bKz');
    expect([...h.entries()].slice(0, 2)).toEqual([
      ['Via', 'SIP/2.0/TCP z;branch=z9hG4bKz'],
      ['Call-ID', 'abc@host'],
    ]);
    expect(h.count('Via')).toBe(1);
    h.set('Max-Forwards', '70');
    expect([...h.entries()].at(-1)).toEqual(['Max-Forwards', '70']);
  });

  it('appends, prepends and deletes', () => {
    const h = new Headers()
      .append('Route', '<sip:a;lr>')
      .append('Route', '<sip:b;lr>')
      .prepend('Via', 'SIP/2.0/TCP h');
    expect([...h]).toEqual([
      ['Via', 'SIP/2.0/TCP h'],
      ['Route', '<sip:a;lr>'],
      ['Route', '<sip:b;lr>'],
    ]);
    h.delete('route');
    expect([...h]).toEqual([['Via', 'SIP/2.0/TCP h']]);
    expect(h.delete('Nothing').size).toBe(1);
  });

  it('clones independently', () => {
    const a = sample();
    const b = a.clone();
    b.set('Call-ID', 'other').delete('Via');
    expect(a.get('Call-ID')).toBe('abc@host');
    expect(a.count('Via')).toBe(2);
    expect(b.count('Via')).toBe(0);
  });

  it('refuses fields that would break the message', () => {
    const h = new Headers();
    expect(() => h.append('X-Evil', 'a\r\nVia: SIP/2.0/UDP attacker')).toThrow(TypeError);
    expect(() => h.set('X-Evil', 'a\nb')).toThrow(TypeError);
    expect(() => h.prepend('X-Evil', 'a\rb')).toThrow(TypeError);
    expect(() => h.append('Bad Name', 'x')).toThrow(TypeError);
    expect(() => h.append('', 'x')).toThrow(TypeError);
    expect(() => new Headers([['Bad:Name', 'x']])).toThrow(TypeError);
    expect(h.size).toBe(0);
  });

  describe('typed accessors', () => {
    const typed = (): Headers =>
      new Headers([
        ['Via', 'SIP/2.0/TCP a:5060;branch=z9hG4bK1;rport, SIP/2.0/UDP b;branch=z9hG4bK2'],
        ['From', '"Alice" <sip:alice@example.com>;tag=f1'],
        ['To', 'sip:bob@example.com'],
        ['CSeq', '42 INVITE'],
        ['Call-ID', 'c1'],
        ['Contact', '<sip:alice@10.0.0.1;transport=tcp>;expires=60'],
        ['Record-Route', '<sip:p1;lr>, <sip:p2;lr>'],
      ]);

    it('parses on demand', () => {
      const h = typed();
      expect(h.topVia()).toMatchObject({ transport: 'TCP', host: 'a', port: 5060 });
      expect(h.topVia()?.params.get('branch')).toBe('z9hG4bK1');
      expect(h.vias()?.map((v) => v.host)).toEqual(['a', 'b']);
      expect(h.from()?.params.get('tag')).toBe('f1');
      expect(h.from()?.displayName).toBe('Alice');
      expect(h.to()?.params.has('tag')).toBe(false);
      expect(h.cseq()).toEqual({ seq: 42, method: 'INVITE' });
      expect(h.callId()).toBe('c1');
      expect(h.nameAddrs('Contact')?.[0]?.params.get('expires')).toBe('60');
      expect(h.nameAddrs('record-route')?.map((r) => (r.uri as { host: string }).host)).toEqual(['p1', 'p2']);
      expect(h.nameAddrs('Route')).toEqual([]);
    });

    it('memoizes until the next mutation', () => {
      const h = typed();
      const via = h.topVia();
      expect(h.topVia()).toBe(via);
      expect(h.cseq()).toBe(h.cseq());
      h.set('Via', 'SIP/2.0/UDP c;branch=z9hG4bK3');
      expect(h.topVia()?.host).toBe('c');
      h.set('CSeq', '43 BYE');
      expect(h.cseq()).toEqual({ seq: 43, method: 'BYE' });
      h.set('From', 'garbage <');
      expect(h.from()).toBeUndefined();
      h.append('Contact', '*');
      expect(h.nameAddrs('Contact')).toBeUndefined();
      h.delete('To');
      expect(h.to()).toBeUndefined();
    });

    it('reports malformed values as undefined', () => {
      const h = new Headers([
        ['Via', 'SIP/2.0/UDP ok;branch=z9hG4bK1'],
        ['Via', 'garbage'],
        ['CSeq', '99999999999 INVITE'],
      ]);
      expect(h.topVia()?.host).toBe('ok');
      expect(h.vias()).toBeUndefined();
      expect(h.cseq()).toBeUndefined();
      expect(new Headers().vias()).toEqual([]);
      expect(new Headers().topVia()).toBeUndefined();
    });
  });
});

describe('unknown header spellings', () => {
  it('keep their own spelling whatever was seen before', () => {
    const h = new Headers([
      ['x-seen-first', '1'],
      ['X-Seen-First', '2'],
      ['X-SEEN-FIRST', '3'],
    ]);
    expect([...h].map(([name]) => name)).toEqual(['x-seen-first', 'X-Seen-First', 'X-SEEN-FIRST']);
    expect(canonicalHeaderName('X-Seen-First')).toBe('X-Seen-First');
    expect(h.getAll('x-SEEN-first')).toEqual(['1', '2', '3']);
  });
});
