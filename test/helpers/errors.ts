/** Test helper for the one error taxonomy. */
import { isSoftphoneError, type SoftphoneError } from '../../src/errors.js';

/** The SoftphoneError `promise` rejects with; anything else (or a resolution) fails the test. */
export async function failure(promise: Promise<unknown>): Promise<SoftphoneError> {
  try {
    await promise;
  } catch (err) {
    if (isSoftphoneError(err)) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}
