// How bus failures cross between hosts: a ZongziError's code travels in the call's metadata,
// and a failure without one is classified by what it proves about delivery.
import * as grpc from '@grpc/grpc-js'

import { ZongziError, type ErrorCode } from '../binding/errors'

const TO_STATUS: Partial<Record<ErrorCode, grpc.status>> = {
  ERR_SHARD_NOT_FOUND: grpc.status.NOT_FOUND,
  ERR_TIMEOUT: grpc.status.DEADLINE_EXCEEDED,
  ERR_INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  ERR_PAYLOAD_TOO_LARGE: grpc.status.RESOURCE_EXHAUSTED,
  ERR_CLOSED: grpc.status.UNAVAILABLE,
  ERR_UNAVAILABLE: grpc.status.UNAVAILABLE,
  ERR_CLUSTER_MISMATCH: grpc.status.FAILED_PRECONDITION,
  ERR_UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  ERR_SESSION_EXPIRED: grpc.status.FAILED_PRECONDITION,
  ERR_NO_LEADER: grpc.status.UNAVAILABLE,
  ERR_BUSY: grpc.status.RESOURCE_EXHAUSTED,
  ERR_LEADER_CHANGED: grpc.status.UNAVAILABLE,
  ERR_ABORTED: grpc.status.CANCELLED,
  ERR_UNSUPPORTED_VERSION: grpc.status.FAILED_PRECONDITION,
}

/** Longest error message sent back over the bus, in characters. */
const MAX_DETAILS = 1024

/** toServiceError turns a handler's failure into a gRPC status carrying its code. */
export function toServiceError(e: unknown): Partial<grpc.ServiceError> {
  const z =
    e instanceof ZongziError
      ? e
      : new ZongziError('ERR_INTERNAL', e instanceof Error ? e.message : String(e))
  const metadata = new grpc.Metadata()
  metadata.set('zongzi-code', z.code)
  // The message travels as a URI-encoded trailer: a long one (made of a caller's input, say)
  // would overflow the client's header limit and break the whole connection.
  const long = z.message.length > MAX_DETAILS
  const details = long ? `${z.message.slice(0, MAX_DETAILS)}…` : z.message
  return { code: TO_STATUS[z.code] ?? grpc.status.UNKNOWN, details, metadata }
}

/** fromServiceError turns a gRPC failure into a ZongziError, keeping the remote code. */
export function fromServiceError(e: grpc.ServiceError): ZongziError {
  const remote = e.metadata?.get('zongzi-code')[0]
  if (typeof remote === 'string')
    return new ZongziError(remote as ErrorCode, e.details || e.message, { cause: e })
  // Without the remote's own code, the call failed in transport. Only a connection that never
  // formed proves the request was not delivered; anything else leaves the outcome unknown.
  const neverSent =
    e.code === grpc.status.UNAVAILABLE &&
    /no connection established|ECONNREFUSED|failed to connect/i.test(e.details ?? '')
  // A message too large to send, or to receive, is refused before the request is served;
  // an answer too large for the server to send comes after it was served.
  const answerTooLarge = /^Sent message larger than max/.test(e.details ?? '')
  const code: ErrorCode =
    e.code === grpc.status.DEADLINE_EXCEEDED
      ? 'ERR_TIMEOUT'
      : e.code === grpc.status.CANCELLED
        ? 'ERR_ABORTED'
        : e.code === grpc.status.RESOURCE_EXHAUSTED && !answerTooLarge
          ? 'ERR_PAYLOAD_TOO_LARGE'
          : neverSent
            ? 'ERR_UNAVAILABLE'
            : 'ERR_OUTCOME_UNKNOWN'
  return new ZongziError(code, e.details || e.message, { cause: e })
}
