/**
 * The TLS certificate `serve` presents: the operator's (a certificate and key
 * from files), or, with none given, a self-signed one made with node-forge
 * and kept in the state directory, so it stays the same across restarts (a
 * peer that pins its fingerprint keeps working). Its SHA-256 fingerprint is
 * what the operator gives RingCentral.
 *
 * The key file is written 0600 in a 0700 directory, atomically (temp file,
 * then rename); a stored pair that does not load, does not match, or runs
 * out within RENEW_BEFORE_MS is replaced (and the result says so).
 */
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import forge from 'node-forge';
import { describeError, ErrorCodes, SoftphoneError } from '../errors.js';

export interface ServeCertificate {
  cert: string;
  /** The private key, PEM. Secret: never logged. */
  key: string;
  /** SHA-256 of the certificate, colon-separated hex (what `openssl x509 -fingerprint -sha256` prints). */
  fingerprint: string;
  /** files: the operator's; stored: made earlier and reused; created: made now. */
  source: 'files' | 'stored' | 'created';
  certPath: string;
  keyPath: string;
  subject: string;
  validTo: Date;
  /** Why a stored certificate was replaced, when it was. */
  replaced?: string;
}

/** The state directory's file names. */
export const STATE_CERT_FILE = 'serve-cert.pem';
export const STATE_KEY_FILE = 'serve-key.pem';
/** A self-signed certificate is good for ten years: renewing would change the fingerprint peers pin. */
const VALIDITY_MS = 3650 * 24 * 3600 * 1000;
/** A stored certificate this close to its end is made again. */
const RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;

/** The operator's certificate and key; CONFIG_INVALID naming the option when they cannot be used. */
export function loadCertificateFiles(certPath: string, keyPath: string): ServeCertificate {
  const cert = readPem(certPath, 'tlsCert');
  const key = readPem(keyPath, 'tlsKey');
  const problem = pairProblem(cert, key);
  if (problem) {
    throw new SoftphoneError(
      ErrorCodes.CONFIG_INVALID,
      `tlsCert ${certPath} / tlsKey ${keyPath}: ${problem}`,
      {
        details: { option: problem.startsWith('the key') ? 'tlsKey' : 'tlsCert', reason: problem },
      },
    );
  }
  return describe(cert, key, 'files', certPath, keyPath);
}

/**
 * The self-signed certificate in `stateDir`: the stored one when it is still
 * good, else a new one (stored). `names` go into subjectAltName (host names
 * and IP addresses); the machine's host name is always there.
 */
export function stateCertificate(
  stateDir: string,
  options: { names?: readonly string[]; now?: number } = {},
): ServeCertificate {
  const certPath = path.join(stateDir, STATE_CERT_FILE);
  const keyPath = path.join(stateDir, STATE_KEY_FILE);
  const now = options.now ?? Date.now();
  let replaced: string | undefined;
  if (existsSync(certPath) || existsSync(keyPath)) {
    try {
      const cert = readFileSync(certPath, 'utf8');
      const key = readFileSync(keyPath, 'utf8');
      const problem = pairProblem(cert, key) ?? expiryProblem(cert, now);
      if (!problem) return describe(cert, key, 'stored', certPath, keyPath);
      replaced = problem;
    } catch (err) {
      replaced = `the stored pair could not be read (${describeError(err)})`;
    }
  }
  const made = selfSigned(options.names ?? [], now);
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    writeAtomic(keyPath, made.key, 0o600);
    writeAtomic(certPath, made.cert, 0o644);
  } catch (err) {
    throw new SoftphoneError(
      ErrorCodes.CONFIG_INVALID,
      `stateDir ${stateDir}: cannot keep the TLS certificate there (${describeError(err)})`,
      { cause: err, details: { option: 'stateDir', reason: describeError(err) } },
    );
  }
  const result = describe(made.cert, made.key, 'created', certPath, keyPath);
  if (replaced !== undefined) result.replaced = replaced;
  return result;
}

function readPem(file: string, option: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new SoftphoneError(ErrorCodes.CONFIG_INVALID, `${option} ${file}: ${describeError(err)}`, {
      cause: err,
      details: { option, reason: describeError(err) },
    });
  }
}

/** Why `cert` and `key` are not a usable pair, or undefined. */
function pairProblem(cert: string, key: string): string | undefined {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    return 'the certificate is not a PEM X.509 certificate';
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    return 'the key is not a PEM private key (an encrypted key is not supported)';
  }
  if (!x509.checkPrivateKey(privateKey)) return 'the key does not belong to the certificate';
  return undefined;
}

function expiryProblem(cert: string, now: number): string | undefined {
  const x509 = new X509Certificate(cert);
  const end = new Date(x509.validTo).getTime();
  if (end - now < RENEW_BEFORE_MS) return `the stored certificate ends ${x509.validTo}`;
  return undefined;
}

function describe(
  cert: string,
  key: string,
  source: ServeCertificate['source'],
  certPath: string,
  keyPath: string,
): ServeCertificate {
  const x509 = new X509Certificate(cert);
  return {
    cert,
    key,
    fingerprint: x509.fingerprint256,
    source,
    certPath,
    keyPath,
    subject: x509.subject,
    validTo: new Date(x509.validTo),
  };
}

/** GeneralName tags of subjectAltName (RFC 5280 4.2.1.6). */
const SAN_DNS = 2;
const SAN_IP = 7;

function selfSigned(names: readonly string[], now: number): { cert: string; key: string } {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  // RFC 5280 4.1.2.2: a positive serial of up to 20 octets, unique per certificate.
  cert.serialNumber = `01${randomBytes(15).toString('hex')}`;
  cert.validity.notBefore = new Date(now - 3600 * 1000);
  cert.validity.notAfter = new Date(now + VALIDITY_MS);
  const host = hostname() || 'localhost';
  const subject = [
    { name: 'commonName', value: host },
    { name: 'organizationName', value: 'rc-softphone serve' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  const altNames: { type: number; value?: string; ip?: string }[] = [];
  const seen = new Set<string>();
  for (const name of [host, 'localhost', ...names]) {
    if (seen.has(name) || name === '0.0.0.0' || name === '::') continue;
    seen.add(name);
    altNames.push(
      /^[\d.]+$/.test(name) || name.includes(':')
        ? { type: SAN_IP, ip: name }
        : { type: SAN_DNS, value: name },
    );
  }
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: forge.pki.privateKeyToPem(keys.privateKey) };
}

function writeAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, text, { mode, flag: 'wx' });
    chmodSync(tmp, mode); // exactly this mode, whatever the umask
    renameSync(tmp, file);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // never created
    }
    throw err;
  }
}
