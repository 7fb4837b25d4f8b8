/**
 * A tiny in-process SIP registrar, call originator and relay on loopback,
 * shaped like RingCentral's edge: REGISTER is challenged with a 401 (Digest,
 * MD5, no qop), the binding is the device's TCP flow, and calls arrive as
 * INVITEs over that same flow. A device's own INVITE is challenged with a
 * 407 (the same credentials, the same realm) and then relayed to the user it
 * names over that user's flow, Record-Routed so the whole dialog passes
 * through (a stateless relay: each Call-ID's two flows are remembered).
 * `rc-softphone demo` uses it to show the whole pipeline without an account;
 * the tests use it as a peer whose behaviour they can steer (expiry, 423,
 * dropped connections, wrong passwords, a callee's answer).
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { computeDigestResponse, parseAuthParams } from '../sip/auth/digest.js';
import { createResponse, generateBranch, generateCallId, generateTag } from '../sip/message/build.js';
import { Headers } from '../sip/message/headers.js';
import { parseMessage } from '../sip/message/parse.js';
import { serialize } from '../sip/message/serialize.js';
import type { SipRequest, SipResponse } from '../sip/message/types.js';
import { parseBoundedInt, unquoteString } from '../sip/message/uri.js';
import { StreamFramer } from '../sip/transport/framer.js';

export interface PbxUser {
  username: string;
  authorizationId: string;
  password: string;
}

export interface LocalPbxOptions {
  host?: string;
  port?: number;
  domain?: string;
  realm?: string;
  users: PbxUser[];
  /** Longest binding granted (seconds); longer requests are cut down (default 3600). */
  maxExpires?: number;
  /** Shorter requests get 423 Interval Too Brief with this Min-Expires (default 0: none). */
  minExpires?: number;
}

export interface PbxBinding {
  username: string;
  contact: string;
  instance: string | undefined;
  expires: number;
  socket: net.Socket;
}

export interface PbxEvents {
  register: [info: { username: string; expires: number; status: number; instance: string | undefined }];
  request: [request: SipRequest];
}

export interface OutboundCall {
  callId: string;
  /** The 200's SDP answer. */
  answer: string;
  response: SipResponse;
  /** Sends BYE and waits for its 200. */
  bye(): Promise<SipResponse>;
  /** Sends an in-dialog request (re-INVITE with SDP, INFO, …) and waits for its final response. */
  request(method: string, body?: string): Promise<SipResponse>;
}

interface Pending {
  resolve: (r: SipResponse) => void;
  reject: (e: Error) => void;
  onProvisional?: ((r: SipResponse) => void) | undefined;
}

export class LocalPbx extends EventEmitter<PbxEvents> {
  readonly domain: string;
  readonly realm: string;
  readonly #server: net.Server;
  readonly #options: LocalPbxOptions;
  readonly #bindings = new Map<string, PbxBinding>();
  readonly #sockets = new Set<net.Socket>();
  readonly #pending = new Map<string, Pending>();
  readonly #registerCounts = new Map<string, number>();
  /** Users whose password the PBX currently refuses (tests: a password change). */
  readonly rejectUsers = new Set<string>();
  /** Answers a re-INVITE from the device for a call the PBX placed with this status (default 200 with SDP). */
  reinviteStatus = 200;
  /** The last requests received (bounded), for tests. */
  readonly #received: SipRequest[] = [];
  /** The SDP of each call the PBX placed, for answering the device's re-INVITEs. */
  readonly #callerSdp = new Map<string, string>();
  /** Callees the PBX answers itself with this final status instead of relaying (tests: 486, 603, …). */
  readonly calleeStatus = new Map<string, number>();
  /** The two flows of each relayed call, by Call-ID. */
  readonly #relayed = new Map<string, { caller: net.Socket; callee: net.Socket }>();
  /** Relay Via branches we added, so a response can be matched to the flow it came for. */
  #relayBranch = 0;

  private constructor(server: net.Server, options: LocalPbxOptions) {
    super();
    this.#server = server;
    this.#options = options;
    this.domain = options.domain ?? 'local.rc-softphone.test';
    this.realm = options.realm ?? this.domain;
    server.on('connection', (socket) => this.#accept(socket));
  }

  static listen(options: LocalPbxOptions): Promise<LocalPbx> {
    const server = net.createServer();
    const pbx = new LocalPbx(server, options);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve(pbx);
      });
    });
  }

  get address(): { host: string; port: number } {
    const a = this.#server.address() as net.AddressInfo;
    return { host: a.address, port: a.port };
  }

  binding(username: string): PbxBinding | undefined {
    const b = this.#bindings.get(username);
    return b && !b.socket.destroyed ? b : undefined;
  }

  /** The last request of `method` (and Call-ID) the PBX received, for tests. */
  lastRequest(method: string, callId?: string): SipRequest | undefined {
    for (let i = this.#received.length - 1; i >= 0; i--) {
      const r = this.#received[i]!;
      if (r.method === method && (callId === undefined || r.headers.callId() === callId)) return r;
    }
    return undefined;
  }

  registerCount(username: string): number {
    return this.#registerCounts.get(username) ?? 0;
  }

  /** Drops every connection (a registrar restart, as the device sees it). */
  dropConnections(): void {
    for (const s of this.#sockets) s.destroy();
  }

  /**
   * Calls a registered user over its flow with an SDP offer; resolves once the
   * call is answered (200 OK) and the ACK is sent.
   */
  async invite(
    username: string,
    offer: string,
    options: {
      from?: string;
      onProvisional?: (r: SipResponse) => void;
      timeoutMs?: number;
      /** For an INVITE without SDP: builds the answer (sent in the ACK) from the offer in the 200. */
      answer?: (offer: string) => string;
    } = {},
  ): Promise<OutboundCall> {
    const binding = this.binding(username);
    if (!binding) throw new Error(`${username} is not registered`);
    const callId = generateCallId();
    const fromTag = generateTag();
    const fromUser = options.from ?? '15550100';
    const from = `"Demo Caller" <sip:${fromUser}@${this.domain}>;tag=${fromTag}`;
    const to = `<sip:${username}@${this.domain}>`;
    const { host, port } = this.address;
    const request = (
      method: string,
      cseq: number,
      toValue: string,
      body?: string,
      branch = generateBranch(),
    ) => {
      const headers = new Headers()
        .append('Via', `SIP/2.0/TCP ${host}:${port};branch=${branch}`)
        .append('Max-Forwards', '70')
        .append('From', from)
        .append('To', toValue)
        .append('Call-ID', callId)
        .append('CSeq', `${cseq} ${method}`)
        .append('Contact', `<sip:${fromUser}@${host}:${port};transport=tcp>`);
      if (body)
        headers.append('Content-Type', method === 'INFO' ? 'application/dtmf-relay' : 'application/sdp');
      const req: SipRequest = {
        type: 'request',
        method,
        uri: binding.contact,
        headers,
        body: Buffer.from(body ?? '', 'utf8'),
      };
      return req;
    };
    const invite = request('INVITE', 1, to, offer);
    const response = await this.#send(binding.socket, invite, options.onProvisional, options.timeoutMs);
    if (response.status !== 200) throw new Error(`INVITE answered ${response.status} ${response.reason}`);
    const toWithTag = response.headers.get('To') ?? to;
    const sdp = Buffer.from(response.body).toString('utf8');
    binding.socket.write(serialize(request('ACK', 1, toWithTag, options.answer?.(sdp))));
    // A re-INVITE from the device (hold, re-homing after a reconnect) is answered with the caller's SDP.
    this.#callerSdp.set(callId, offer || (options.answer?.(sdp) ?? ''));
    let cseq = 2;
    // In-dialog requests go over the device's current flow, as RingCentral's edge does after re-homing.
    const flow = () => this.binding(username)?.socket ?? binding.socket;
    return {
      callId,
      answer: sdp,
      response,
      bye: () => this.#send(flow(), request('BYE', cseq++, toWithTag)),
      request: (method: string, body?: string) =>
        this.#send(flow(), request(method, cseq++, toWithTag, body)),
    };
  }

  close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    for (const p of this.#pending.values()) p.reject(new Error('PBX closed'));
    this.#pending.clear();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #send(
    socket: net.Socket,
    request: SipRequest,
    onProvisional?: (r: SipResponse) => void,
    timeoutMs = 10_000,
  ): Promise<SipResponse> {
    const branch = request.headers.topVia()?.params.get('branch') ?? '';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(branch);
        reject(new Error(`no final response to ${request.method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(branch, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
        onProvisional,
      });
      socket.write(serialize(request));
    });
  }

  #accept(socket: net.Socket): void {
    this.#sockets.add(socket);
    const framer = new StreamFramer();
    socket.on('data', (chunk) => {
      for (const event of framer.push(chunk)) {
        if (event.type === 'ping') socket.write('\r\n');
        else if (event.type === 'error') socket.destroy();
        else if (event.type === 'message') {
          const parsed = parseMessage(event.bytes);
          if (parsed.ok) this.#onMessage(socket, parsed.message);
        }
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.#sockets.delete(socket));
  }

  #onMessage(socket: net.Socket, message: SipRequest | SipResponse): void {
    if (message.type === 'response') {
      const branch = message.headers.topVia()?.params.get('branch') ?? '';
      if (branch.startsWith(RELAY_BRANCH)) {
        this.#relayResponse(socket, message);
        return;
      }
      const pending = this.#pending.get(branch);
      if (!pending) return;
      if (message.status < 200) pending.onProvisional?.(message);
      else {
        this.#pending.delete(branch);
        pending.resolve(message);
      }
      return;
    }
    this.emit('request', message);
    this.#received.push(message);
    if (this.#received.length > 200) this.#received.shift();
    if (message.method === 'REGISTER') {
      this.#register(socket, message);
      return;
    }
    if (this.#relay(socket, message)) return;
    const callerSdp = this.#callerSdp.get(message.headers.callId() ?? '');
    if (message.method === 'INVITE' && callerSdp !== undefined) {
      // A re-INVITE for one of our calls: the caller's side is unchanged.
      const ok = this.reinviteStatus === 200;
      socket.write(
        serialize(
          createResponse(message, this.reinviteStatus, undefined, {
            toTag: generateTag(),
            ...(ok && { body: Buffer.from(callerSdp), contentType: 'application/sdp' }),
          }),
        ),
      );
      return;
    }
    if (message.method !== 'ACK')
      socket.write(serialize(createResponse(message, 200, undefined, { toTag: generateTag() })));
  }

  /**
   * A request between two devices: a new INVITE is challenged (407, like
   * RingCentral), then relayed to its callee's flow; everything else of a
   * relayed Call-ID goes to the other flow. Returns false for requests that
   * are not the relay's (the PBX's own calls, out-of-dialog requests).
   */
  #relay(socket: net.Socket, request: SipRequest): boolean {
    const callId = request.headers.callId() ?? '';
    const leg = this.#relayed.get(callId);
    const initial = request.method === 'INVITE' && !(request.headers.to()?.params.has('tag') ?? false);
    if (!leg && !initial) return false;
    if (leg) {
      const other = leg.caller === socket ? leg.callee : leg.caller;
      if (request.method === 'CANCEL' || (initial && leg.caller === socket)) {
        this.#forward(other, request, callId);
        return true;
      }
      this.#forward(other, request, callId);
      if (request.method === 'BYE') setTimeout(() => this.#relayed.delete(callId), 5000).unref();
      return true;
    }
    const caller = this.#userOf(socket);
    if (!caller) {
      socket.write(serialize(createResponse(request, 403, 'Forbidden', { toTag: generateTag() })));
      return true;
    }
    const auth = request.headers.get('Proxy-Authorization');
    if (!auth || !this.#verify(auth, caller, request)) {
      const challenge = `Digest realm="${this.realm}", nonce="${randomBytes(12).toString('hex')}", algorithm=MD5`;
      socket.write(
        serialize(
          createResponse(request, 407, undefined, {
            toTag: generateTag(),
            headers: [['Proxy-Authenticate', challenge]],
          }),
        ),
      );
      return true;
    }
    const uri = /^sips?:([^@;>]+)@/i.exec(request.uri);
    const callee = uri?.[1] ? this.binding(uri[1]) : undefined;
    const scripted = uri?.[1] ? this.calleeStatus.get(uri[1]) : undefined;
    if (scripted !== undefined || !callee) {
      const status = scripted ?? 404;
      socket.write(serialize(createResponse(request, status, undefined, { toTag: generateTag() })));
      return true;
    }
    this.#relayed.set(callId, { caller: socket, callee: callee.socket });
    // The callee's registered Contact becomes the Request-URI (RFC 3261 16.5).
    request.uri = callee.contact;
    this.#forward(callee.socket, request, callId, true);
    return true;
  }

  /** Forwards a request: our Via on top (and, for the dialog-creating INVITE, Record-Route). */
  #forward(to: net.Socket, request: SipRequest, callId: string, recordRoute = false): void {
    const { host, port } = this.address;
    const headers = request.headers.clone();
    headers.delete('Proxy-Authorization');
    // RFC 3261 16.12: a Route naming us is ours to remove (loose routing).
    const routes = headers.getAll('Route').filter((r) => !r.includes(`${host}:${port}`));
    headers.delete('Route');
    for (const r of routes) headers.append('Route', r);
    headers.prepend(
      'Via',
      `SIP/2.0/TCP ${host}:${port};branch=${RELAY_BRANCH}${++this.#relayBranch}-${callId.length}`,
    );
    if (recordRoute) headers.prepend('Record-Route', `<sip:${host}:${port};transport=tcp;lr>`);
    to.write(serialize({ ...request, headers }));
  }

  /** A response to a relayed request: our Via off, back to the other flow. */
  #relayResponse(socket: net.Socket, response: SipResponse): void {
    const callId = response.headers.callId() ?? '';
    const leg = this.#relayed.get(callId);
    if (!leg) return;
    const other = leg.caller === socket ? leg.callee : leg.caller;
    const headers = response.headers.clone();
    const vias = headers.getAll('Via');
    headers.delete('Via');
    for (const v of vias.slice(1)) headers.append('Via', v);
    other.write(serialize({ ...response, headers }));
    const method = response.headers.cseq()?.method;
    if (method === 'INVITE' && response.status >= 300)
      setTimeout(() => this.#relayed.delete(callId), 5000).unref();
  }

  #userOf(socket: net.Socket): PbxUser | undefined {
    for (const b of this.#bindings.values()) {
      if (b.socket === socket) return this.#options.users.find((u) => u.username === b.username);
    }
    return undefined;
  }

  #register(socket: net.Socket, request: SipRequest): void {
    const to = request.headers.to();
    const username = to && 'user' in to.uri ? (to.uri.user ?? '') : '';
    const user = this.#options.users.find((u) => u.username === username);
    this.#registerCounts.set(username, this.registerCount(username) + 1);
    const reply = (status: number, headers: [string, string][] = [], reason?: string) => {
      socket.write(serialize(createResponse(request, status, reason, { toTag: generateTag(), headers })));
      this.emit('register', {
        username,
        expires: requestedExpires(request),
        status,
        instance: instanceOf(request),
      });
    };
    const authorization = request.headers.get('Authorization');
    if (!user) {
      reply(404, [], 'Not Found');
      return;
    }
    if (!authorization || !this.#verify(authorization, user, request)) {
      reply(401, [
        [
          'WWW-Authenticate',
          `Digest realm="${this.realm}", nonce="${randomBytes(12).toString('hex')}", algorithm=MD5`,
        ],
      ]);
      return;
    }
    const requested = requestedExpires(request);
    const min = this.#options.minExpires ?? 0;
    if (requested > 0 && requested < min) {
      reply(423, [['Min-Expires', String(min)]]);
      return;
    }
    const granted = Math.min(requested, this.#options.maxExpires ?? 3600);
    const contact = request.headers.nameAddrs('Contact')?.[0];
    if (granted === 0) {
      this.#bindings.delete(username);
      reply(200);
      return;
    }
    const contactUri = request.headers.get('Contact')?.match(/<([^>]+)>/)?.[1] ?? `sip:${username}@invalid`;
    this.#bindings.set(username, {
      username,
      contact: contactUri,
      instance: instanceOf(request),
      expires: granted,
      socket,
    });
    // Like Kamailio and RingCentral: the grant goes in the Contact's expires param.
    const contactValue = contact ? `${request.headers.get('Contact')};expires=${granted}` : '';
    // Like RingCentral's edge: outbound supported (RFC 5626 6), so the device keeps its flow-only Contact.
    reply(
      200,
      contactValue
        ? [
            ['Contact', contactValue],
            ['Require', 'outbound'],
          ]
        : [['Require', 'outbound']],
    );
  }

  #verify(authorization: string, user: PbxUser, request: SipRequest): boolean {
    if (this.rejectUsers.has(user.username)) return false;
    const space = authorization.indexOf(' ');
    const params = parseAuthParams(authorization.slice(space + 1));
    const get = (k: string) => {
      const v = params.get(k);
      return v === undefined ? undefined : v;
    };
    const nonce = get('nonce');
    const uri = get('uri');
    const response = get('response');
    if (get('username') !== user.authorizationId || !nonce || !uri || !response) return false;
    const expected = computeDigestResponse({
      algorithm: 'MD5',
      username: user.authorizationId,
      realm: this.realm,
      password: user.password,
      method: request.method,
      uri,
      nonce,
    });
    return expected === response.toLowerCase();
  }
}

/** Branches of the Vias the relay adds (RFC 3261 magic cookie first). */
const RELAY_BRANCH = 'z9hG4bK-pbxrelay-';

function requestedExpires(request: SipRequest): number {
  const contact = request.headers.nameAddrs('Contact')?.[0];
  const param = contact?.params.get('expires');
  const raw = param ?? request.headers.get('Expires') ?? '3600';
  return parseBoundedInt(raw.trim(), 0xffffffff) ?? 3600;
}

function instanceOf(request: SipRequest): string | undefined {
  const value = request.headers.nameAddrs('Contact')?.[0]?.params.get('+sip.instance');
  return value ? unquoteString(value).replace(/^<|>$/g, '') : undefined;
}
