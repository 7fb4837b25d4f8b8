export {
  type AnswerAcceptance,
  acceptAnswer,
  type Codec,
  createOffer,
  type LocalMedia,
  localAddressProblem,
  type MediaDirection,
  type NegotiatedMedia,
  type NegotiationResult,
  negotiateAnswer,
  type SdpFailure,
} from './negotiate.js';
