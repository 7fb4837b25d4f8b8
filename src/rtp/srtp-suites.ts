/**
 * The SRTP crypto-suites we speak (RFC 4568 6.2) and their key sizes, apart
 * from the cryptography itself (rtp/srtp.ts, which loads werift-rtp), so SDP
 * negotiation can name and size keys without loading a cipher.
 */
import { randomBytes } from 'node:crypto';

/** The SDES crypto-suites we implement, in our order of preference (the longer tag first). */
export const SRTP_SUITES = ['AES_CM_128_HMAC_SHA1_80', 'AES_CM_128_HMAC_SHA1_32'] as const;
export type SrtpSuite = (typeof SRTP_SUITES)[number];

/** RFC 4568 6.2.1: 128-bit master key and 112-bit master salt, sent as one key||salt. */
export const SRTP_MASTER_KEY_LENGTH = 16;
export const SRTP_MASTER_SALT_LENGTH = 14;
export const SRTP_KEY_SALT_LENGTH = SRTP_MASTER_KEY_LENGTH + SRTP_MASTER_SALT_LENGTH;

export function isSrtpSuite(value: unknown): value is SrtpSuite {
  return typeof value === 'string' && (SRTP_SUITES as readonly string[]).includes(value);
}

/** SRTP authentication tag length in octets (RFC 4568 6.2.1, 6.2.2). */
export function srtpTagLength(suite: SrtpSuite): number {
  return suite === 'AES_CM_128_HMAC_SHA1_32' ? 4 : 10;
}

/**
 * A fresh master key and salt for one call (RFC 4568 6.1: from a
 * cryptographically strong source, never reused across calls).
 */
export function generateKeySalt(): Buffer {
  return randomBytes(SRTP_KEY_SALT_LENGTH);
}
