import { describe, expect, it } from 'vitest';
import type { NameAddr, SipUri, Via } from '../../../src/sip/message/types.js';
import {
  formatNameAddr,
  formatUri,
  formatVia,
  parseBoundedInt,
  parseCSeq,
  parseNameAddr,
  parseParams,
  parseUri,
  parseVia,
  quoteString,
  unescapeUriComponent,
  unquoteString,
} from '../../../src/sip/message/uri.js';
import { parseNameAddrSlow, parseUriSlow, parseViaSlow } from './reference-scanners.js';

function nameAddr(s: string): NameAddr {
  const na = parseNameAddr(s);
  if (na === undefined) throw new Error(`not a name-addr: ${s}`);
  return na;
}

function sipUri(s: string): SipUri {
  const uri = parseUri(s);
  if (uri === undefined || (uri.scheme !== 'sip' && uri.scheme !== 'sips'))
    throw new Error(`not a SIP URI: ${s}`);
  return uri as SipUri;
}

describe('parseUri', () => {
  it('parses every part of a SIP URI', () => {
    const uri = sipUri(
      'sips:alice:secret@Example.COM:5061;transport=TCP;lr;maddr=[2001:db8::1]?subject=hi&priority=urgent',
    );
    expect(uri).toEqual({
      scheme: 'sips',
      user: 'alice',
      password: 'secret',
      host: 'Example.COM',
      port: 5061,
      params: new Map([
        ['transport', 'TCP'],
        ['lr', null],
        ['maddr', '[2001:db8::1]'],
      ]),
      headers: new Map([
        ['subject', 'hi'],
        ['priority', 'urgent'],
      ]),
    });
  });

  it('parses hosts without user, IPv4 and IPv6 references', () => {
    expect(sipUri('sip:sip.ringcentral.com')).toMatchObject({ host: 'sip.ringcentral.com' });
    expect(sipUri('sip:sip.ringcentral.com').user).toBeUndefined();
    expect(sipUri('sip:104.245.57.165:5091;transport=tcp')).toMatchObject({
      host: '104.245.57.165',
      port: 5091,
    });
    expect(sipUri('sip:[::1]:5060')).toMatchObject({ host: '[::1]', port: 5060 });
    expect(sipUri('sip:bob@[2001:db8::10]')).toMatchObject({ user: 'bob', host: '[2001:db8::10]' });
    expect(sipUri('SIP:bob@host').scheme).toBe('sip');
  });

  it('lowercases parameter names but keeps values', () => {
    expect([...sipUri('sip:h;Transport=TCP;LR').params]).toEqual([
      ['transport', 'TCP'],
      ['lr', null],
    ]);
    // Never mistaken for a name it resembles byte for byte (U+00F4 is 0x80 + 't').
    expect([...sipUri('sip:h;\u00f4t=5').params]).toEqual([['\u00f4t', '5']]);
  });

  it('decodes escapes in user, password, parameters and headers, once', () => {
    const uri = sipUri(
      'sip:sips%3Auser%40example.com:p%40ss@example.net;n%61me=v%61lue%25%34%31?h%61=%3Cx%3E',
    );
    expect(uri.user).toBe('sips:user@example.com');
    expect(uri.password).toBe('p@ss');
    expect(uri.params.get('name')).toBe('value%41');
    expect(uri.headers.get('ha')).toBe('<x>');
  });

  it('keeps unusual user parts intact (RFC 4475 3.1.1.2, 3.1.1.9)', () => {
    expect(sipUri('sip:user;par=u%40example.net@example.com')).toMatchObject({
      user: 'user;par=u@example.net',
      host: 'example.com',
    });
    expect(sipUri('sip:+1-650-555-0199;phone-context=example.com@gw.example.com;user=phone')).toMatchObject({
      user: '+1-650-555-0199;phone-context=example.com',
      host: 'gw.example.com',
    });
  });

  it('keeps other schemes opaque', () => {
    expect(parseUri('tel:+1-650-555-0199')).toEqual({ scheme: 'tel', opaque: '+1-650-555-0199' });
    expect(parseUri('urn:uuid:00000000-0000-1000-8000-000000000000')).toEqual({
      scheme: 'urn',
      opaque: 'uuid:00000000-0000-1000-8000-000000000000',
    });
  });

  it.each([
    ['empty', ''],
    ['no scheme', 'alice@example.com'],
    ['scheme only', 'tel:'],
    ['bad scheme', '1sip:host'],
    ['empty host', 'sip:'],
    ['empty host after user', 'sip:alice@'],
    ['empty user', 'sip:@host'],
    ['whitespace', 'sip:alice@example.com; lr'],
    ['angle brackets', '<sip:alice@example.com>'],
    ['quote', 'sip:"alice"@example.com'],
    ['bad host character', 'sip:alice@exa!mple.com'],
    ['port out of range', 'sip:host:70000'],
    ['port not a number', 'sip:host:50x'],
    ['empty port', 'sip:host:'],
    ['empty parameter', 'sip:host;;lr'],
    ['header without value', 'sip:host?subject'],
    ['empty IPv6 reference', 'sip:[]:5060'],
    ['unterminated IPv6 reference', 'sip:[::1:5060'],
    ['control character', 'sip:al\u0000ice@host'],
  ])('rejects %s', (_label, input) => {
    expect(parseUri(input)).toBeUndefined();
  });

  it('formats with the escaping each component requires', () => {
    const uri: SipUri = {
      scheme: 'sip',
      user: 'sips:user@example.com',
      password: 'p@ss:word',
      host: 'example.net',
      port: 5060,
      params: new Map<string, string | null>([
        ['lr', null],
        ['name', 'a b;c'],
      ]),
      headers: new Map([['Route', '<sip:x@y>']]),
    };
    const text = formatUri(uri);
    expect(text).toBe(
      'sip:sips%3Auser%40example.com:p%40ss%3Aword@example.net:5060;lr;name=a%20b%3Bc?Route=%3Csip:x%40y%3E',
    );
    expect(parseUri(text)).toEqual(uri);
    expect(
      formatUri({
        ...uri,
        user: 'josé',
        password: undefined,
        port: undefined,
        params: new Map(),
        headers: new Map(),
      }),
    ).toBe('sip:jos%C3%A9@example.net');
    expect(formatUri({ scheme: 'tel', opaque: '+16505550199' })).toBe('tel:+16505550199');
  });

  it.each([
    'sip:18885550123*101@sip.ringcentral.com',
    'sip:18885550123*101@203.0.113.7:53412;transport=tcp;ob',
    'sips:[2001:db8::1]:5061;maddr=[2001:db8::2]',
    'sip:+16505550199;npdi@gw.example.com;user=phone',
  ])('round-trips %s', (text) => {
    expect(formatUri(parseUri(text) as SipUri)).toBe(text);
  });
});

describe('unescapeUriComponent', () => {
  it.each([
    ['value%2541', 'value%41'],
    ['null-%00-null', 'null-\u0000-null'],
    ['%Z%45', '%ZE'],
    ['100%', '100%'],
    ['%4', '%4'],
    ['%C3%A9t%C3%A9', 'été'],
    ['%FF', '\u00ff'],
    ['plain', 'plain'],
  ])('%s → %j', (input, output) => {
    expect(unescapeUriComponent(input)).toBe(output);
  });
});

describe('quoted strings', () => {
  it('quotes with escapes and unquotes back', () => {
    expect(quoteString('J Rosenberg \\"')).toBe('"J Rosenberg \\\\\\""');
    expect(unquoteString(quoteString('J Rosenberg \\"'))).toBe('J Rosenberg \\"');
    expect(unquoteString('"<urn:uuid:abc>"')).toBe('<urn:uuid:abc>');
    expect(unquoteString('""')).toBe('');
  });

  it('never lets CR or LF into a quoted string', () => {
    expect(quoteString('a\r\nVia: evil')).toBe('"a  Via: evil"');
  });

  it('returns values that are not quoted unchanged', () => {
    expect(unquoteString('token')).toBe('token');
    expect(unquoteString('"unterminated')).toBe('"unterminated');
    expect(unquoteString('"')).toBe('"');
  });
});

describe('parseNameAddr', () => {
  it('parses a quoted display name with escapes (RFC 4475 3.1.1.1)', () => {
    const na = nameAddr('"J Rosenberg \\\\\\""       <sip:jdrosen@example.com> ; tag = 98asjd8');
    expect(na.displayName).toBe('J Rosenberg \\"');
    expect((na.uri as SipUri).user).toBe('jdrosen');
    expect([...na.params]).toEqual([['tag', '98asjd8']]);
  });

  it('parses token display names, with or without space before <', () => {
    expect(parseNameAddr("token1~` token2'+_   token3*%!.- <sip:a@b>")?.displayName).toBe(
      "token1~` token2'+_ token3*%!.-",
    );
    expect(parseNameAddr('caller<sip:caller@example.com>;tag=323')?.displayName).toBe('caller');
    expect(parseNameAddr('<sip:caller@example.com>')?.displayName).toBeUndefined();
    expect(parseNameAddr('"" <sip:caller@example.com>')?.displayName).toBe('');
  });

  it('treats ;params after a bare addr-spec as header parameters (RFC 3261 20.10)', () => {
    const bare = nameAddr('sip:+19725552222@gw1.example.net;unknownparam;tag=x');
    expect((bare.uri as SipUri).params.size).toBe(0);
    expect([...bare.params]).toEqual([
      ['unknownparam', null],
      ['tag', 'x'],
    ]);
    const bracketed = nameAddr('<sip:+19725552222@gw1.example.net;unknownparam>;tag=x');
    expect([...(bracketed.uri as SipUri).params]).toEqual([['unknownparam', null]]);
    expect([...bracketed.params]).toEqual([['tag', 'x']]);
  });

  it('keeps parameter values raw, so +sip.instance round-trips exactly', () => {
    const text =
      '<sip:18885550123*101@a7f3c2e1.invalid;transport=tcp;ob>;+sip.instance="<urn:uuid:5c2a8f3e-1b7d-4c9e-a6f5-3e2d1c0b9a87>";reg-id=1;expires=600';
    const na = parseNameAddr(text) as NameAddr;
    expect(na.params.get('+sip.instance')).toBe('"<urn:uuid:5c2a8f3e-1b7d-4c9e-a6f5-3e2d1c0b9a87>"');
    expect(unquoteString(na.params.get('+sip.instance') ?? '')).toBe(
      '<urn:uuid:5c2a8f3e-1b7d-4c9e-a6f5-3e2d1c0b9a87>',
    );
    expect(formatNameAddr(na)).toBe(text);
    // A quoted value may contain ; and , and escaped quotes.
    const odd = parseNameAddr('<sip:a@b>;x="a;b,c\\"d";y');
    expect([...(odd?.params ?? [])]).toEqual([
      ['x', '"a;b,c\\"d"'],
      ['y', null],
    ]);
  });

  it('formats display names quoted and URIs in brackets', () => {
    const na = parseNameAddr('Bob <sip:bob@example.com>;tag=1') as NameAddr;
    expect(formatNameAddr(na)).toBe('"Bob" <sip:bob@example.com>;tag=1');
    expect(formatNameAddr({ ...na, displayName: 'a"b\\c' })).toBe('"a\\"b\\\\c" <sip:bob@example.com>;tag=1');
    expect(formatNameAddr({ uri: { scheme: 'tel', opaque: '+1650' }, params: new Map() })).toBe(
      '<tel:+1650>',
    );
  });

  it('keeps the first of repeated parameters', () => {
    expect(parseNameAddr('<sip:a@b>;tag=1;TAG=2')?.params.get('tag')).toBe('1');
  });

  it.each([
    ['unterminated quote (RFC 4475 3.1.2.6)', '"Mr. J. User <sip:j.user@example.com>'],
    [
      'comma in an unquoted display name (RFC 4475 3.1.2.15)',
      'Bell, Alexander <sip:a.g.bell@example.com>;tag=43',
    ],
    ['spaces inside <> (RFC 4475 3.1.2.14)', '"Watson, Thomas" < sip:t.watson@example.org >'],
    ['URI headers outside <> (RFC 4475 3.1.2.13)', 'sip:user@example.com?Route=%3Csip:sip.example.com%3E'],
    ['empty parameters (RFC 4475 3.1.2.1)', '"Joe" <sip:joe@example.org>;;;;'],
    ['two values', '<sip:a@b>, <sip:c@d>'],
    ['unterminated <', '<sip:a@b'],
    ['parameter without value', '<sip:a@b>;tag='],
    ['junk after the URI', '<sip:a@b> junk'],
    ['empty', ''],
    ['display name only', '"Alice"'],
    ['bad URI', '<sip:>'],
  ])('rejects %s', (_label, input) => {
    expect(parseNameAddr(input)).toBeUndefined();
  });
});

describe('parseVia', () => {
  it('parses LWS around the slashes and parameters (RFC 4475 3.1.1.1)', () => {
    const via = parseVia('SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8');
    expect(via).toEqual({
      protocol: 'SIP/2.0',
      transport: 'TCP',
      host: 'spindle.example.com',
      params: new Map([['branch', 'z9hG4bK9ikj8']]),
    });
  });

  it('parses ports, IPv6, rport, received and alias', () => {
    const via = parseVia('SIP/2.0/tcp [2001:db8::1]:5061;branch=z9hG4bKabc;rport;received=2001:db8::9;alias');
    expect(via).toEqual({
      protocol: 'SIP/2.0',
      transport: 'TCP',
      host: '[2001:db8::1]',
      port: 5061,
      params: new Map<string, string | null>([
        ['branch', 'z9hG4bKabc'],
        ['rport', null],
        ['received', '2001:db8::9'],
        ['alias', null],
      ]),
    });
    expect(parseVia('SIP/2.0/UDP 10.0.0.1 : 5060 ;rport=5060')?.port).toBe(5060);
    expect(parseVia('SIP/2.0/UDP 10.0.0.1:5060;rport=5060')?.params.get('rport')).toBe('5060');
  });

  it('round-trips through formatVia', () => {
    const text = 'SIP/2.0/TCP 10.0.0.5:53412;rport=53412;branch=z9hG4bK7f3a2c1e9b0c;received=203.0.113.7';
    expect(formatVia(parseVia(text) as Via)).toBe(text);
  });

  it.each([
    ['no host', 'SIP/2.0/UDP'],
    ['no LWS before the host', 'SIP/2.0/UDP192.0.2.1'],
    ['missing transport', 'SIP/2.0 192.0.2.1'],
    ['empty parameters (RFC 4475 3.1.2.1)', 'SIP/2.0/UDP 192.0.2.15;;'],
    ['empty parameter name', 'SIP/2.0/UDP 192.0.2.15;=x'],
    ['port out of range', 'SIP/2.0/UDP host:99999'],
    ['empty port', 'SIP/2.0/UDP host:;branch=z9hG4bK1'],
    ['junk after', 'SIP/2.0/UDP host;branch=z9hG4bK1 junk'],
    ['two values', 'SIP/2.0/UDP a;branch=1, SIP/2.0/UDP b'],
    ['unterminated quoted value', 'SIP/2.0/UDP a;x="abc'],
  ])('rejects %s', (_label, input) => {
    expect(parseVia(input)).toBeUndefined();
  });
});

describe('parseCSeq', () => {
  it('parses the number with bounds and the method', () => {
    expect(parseCSeq('0009\t INVITE')).toEqual({ seq: 9, method: 'INVITE' });
    expect(parseCSeq('4294967295 BYE')).toEqual({ seq: 4294967295, method: 'BYE' });
    expect(parseCSeq(" 1 !interesting-Method0123456789_*+`.%indeed'~ ")?.method).toBe(
      "!interesting-Method0123456789_*+`.%indeed'~",
    );
  });

  it.each([
    ['2^32', '4294967296 INVITE'],
    ['huge (RFC 4475 3.1.2.4)', '36893488147419103232 REGISTER'],
    ['negative', '-1 INVITE'],
    ['no LWS', '1INVITE'],
    ['no method', '1'],
    ['two methods', '1 INVITE BYE'],
    ['no number', 'INVITE'],
  ])('rejects %s', (_label, input) => {
    expect(parseCSeq(input)).toBeUndefined();
  });
});

describe('parseParams (lenient)', () => {
  it('splits at ; outside quotes, lowercases names, keeps raw values', () => {
    expect([...parseParams(';A=b ; c;d="x;y" ;; e = f')]).toEqual([
      ['a', 'b'],
      ['c', null],
      ['d', '"x;y"'],
      ['e', 'f'],
    ]);
    expect([...parseParams('expires=600;q=0.5')]).toEqual([
      ['expires', '600'],
      ['q', '0.5'],
    ]);
  });
});

describe('parseBoundedInt', () => {
  it('accepts digits within the bound, with leading zeros', () => {
    expect(parseBoundedInt('0068', 255)).toBe(68);
    expect(parseBoundedInt('0', 0)).toBe(0);
    expect(parseBoundedInt('00000000000000000000000000007', 10)).toBe(7);
    expect(parseBoundedInt('4294967295', 0xffffffff)).toBe(0xffffffff);
  });

  it.each([['256'], ['-1'], [''], ['1e3'], ['0x10'], [' 1'], ['1.0'], ['99999999999999999999999999']])(
    'rejects %j',
    (input) => {
      expect(parseBoundedInt(input, 255)).toBeUndefined();
    },
  );
});

describe('the scanners agree with the reference scanners', () => {
  const samples = {
    uri: [
      'sip:18885550123*101@sip.ringcentral.com',
      'sip:a:b@h:1;lr;x=%41',
      'sip:a%40b@[::1]:5060;maddr=[::2]',
      'sips:h;A=B',
      'sip:h:65536',
      'sip:h;x=a=b',
    ],
    via: [
      'SIP/2.0/TCP 10.0.0.5:53412;rport;branch=z9hG4bK7f3a;received=1.2.3.4',
      'SIP/2.0/UDP h;x="quoted;value";Branch=Z',
      'SIP/2.0/UDP h:70000',
      'SIP/2.0/WSS [2001:db8::1]:443;branch=z9hG4bK1;TAG',
    ],
    nameAddr: [
      '"WIRELESS CALLER" <sip:+16505550199@104.245.57.165>;tag=10.13.21.112-5060-3b7c1f9e',
      'Bob  Smith<sip:bob@h>',
      '<sip:a@b>;+sip.instance="<urn:uuid:1>";reg-id=1',
      '"a\\"b" <sip:a@b;lr>;tag=1;tag=2',
      '<tel:+1650>',
      '<sip:h:99999>',
    ],
  };
  it.each(samples.uri)('uri %s', (s) => expect(parseUri(s)).toEqual(parseUriSlow(s)));
  it.each(samples.via)('via %s', (s) => expect(parseVia(s)).toEqual(parseViaSlow(s)));
  it.each(samples.nameAddr)('name-addr %s', (s) => expect(parseNameAddr(s)).toEqual(parseNameAddrSlow(s)));
});
