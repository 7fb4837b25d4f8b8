/** The pure SIP message layer: types, headers, URIs, parser, serializer, builders. */

export {
  type CreateResponseOptions,
  createErrorResponse,
  createResponse,
  generateBranch,
  generateCallId,
  generateTag,
  MAX_REASON_LENGTH,
  reasonPhrase,
} from './build.js';
export { canonicalHeaderName, Headers, isListHeader, splitHeaderList } from './headers.js';
export {
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_HEADER_BYTES,
  type ParseLimits,
  type ParseResult,
  parseMessage,
} from './parse.js';
export { serialize } from './serialize.js';
export type {
  CSeq,
  NameAddr,
  OtherUri,
  SipMessage,
  SipRequest,
  SipResponse,
  SipUri,
  Uri,
  Via,
} from './types.js';
export {
  formatNameAddr,
  formatUri,
  formatVia,
  isSipUri,
  isToken,
  MAX_CSEQ,
  parseBoundedInt,
  parseCSeq,
  parseNameAddr,
  parseParams,
  parseUri,
  parseVia,
  quoteString,
  unescapeUriComponent,
  unquoteString,
} from './uri.js';
