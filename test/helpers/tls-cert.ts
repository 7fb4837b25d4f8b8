/**
 * A self-signed certificate for TLS tests against a local server: subject
 * CN=localhost with subjectAltName DNS:localhost and IP:127.0.0.1, so both a
 * `servername: 'localhost'` check and a check against the IP literal pass
 * once the certificate itself is trusted (e.g. passed as the only CA).
 *
 * Generated once per process and cached: key generation is the slow part.
 * node-forge hands a synchronous RSA request to Node's native
 * `crypto.generateKeyPairSync` when it can, so 2048 bits (which every OpenSSL
 * security level accepts) costs milliseconds, not seconds.
 *
 * node-forge ships no type declarations and @types/node-forge is not
 * installed, so the few calls used here are typed locally and the module is
 * loaded with createRequire (it is CommonJS anyway).
 */
import { createRequire } from 'node:module';

export interface TestCertificate {
  /** The certificate, PEM; trust it with `ca` / `tlsCa`. */
  cert: string;
  /** The RSA private key, PEM (PKCS#1). */
  key: string;
}

/** The slice of node-forge's API this helper uses. */
interface ForgeCertificate {
  publicKey: unknown;
  serialNumber: string;
  validity: { notBefore: Date; notAfter: Date };
  setSubject(attrs: ForgeAttribute[]): void;
  setIssuer(attrs: ForgeAttribute[]): void;
  setExtensions(extensions: Array<Record<string, unknown>>): void;
  sign(privateKey: unknown, md: unknown): void;
}

interface ForgeAttribute {
  name: string;
  value: string;
}

interface Forge {
  pki: {
    rsa: {
      generateKeyPair(options: { bits: number; e: number }): { publicKey: unknown; privateKey: unknown };
    };
    createCertificate(): ForgeCertificate;
    certificateToPem(cert: ForgeCertificate): string;
    privateKeyToPem(key: unknown): string;
  };
  md: { sha256: { create(): unknown } };
}

const forge = createRequire(import.meta.url)('node-forge') as Forge;

/** GeneralName tags of subjectAltName (RFC 5280 4.2.1.6). */
const SAN_DNS = 2;
const SAN_IP = 7;

let cached: TestCertificate | undefined;

/** The process-wide self-signed certificate for localhost / 127.0.0.1. */
export function localhostCertificate(): TestCertificate {
  cached ??= generate();
  return cached;
}

function generate(): TestCertificate {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  // A positive serial (leading byte < 0x80), random so that two test runs never
  // present different certificates with the same issuer and serial.
  cert.serialNumber = '01' + Math.floor(Math.random() * 0xffffffff).toString(16);
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 24 * 3600 * 1000);
  cert.validity.notAfter = new Date(now + 7 * 24 * 3600 * 1000);
  const subject: ForgeAttribute[] = [
    { name: 'commonName', value: 'localhost' },
    { name: 'organizationName', value: 'rc-softphone tests' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    // Self-signed and used as its own trust anchor: mark it a CA that may sign certificates.
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: [
        { type: SAN_DNS, value: 'localhost' },
        { type: SAN_IP, ip: '127.0.0.1' },
      ],
    },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: forge.pki.privateKeyToPem(keys.privateKey) };
}
