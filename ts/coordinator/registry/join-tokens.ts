// Join tokens: what a host that is not an initial peer shows to be let into the cluster. A
// token is signed with the cluster's join key (kept in the registry), names when it expires
// and which tags the joining host must carry, and admits one host only: the registry decides.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

/** What a join token says; the signature covers all of it. */
export interface JoinClaims {
  /** Random id: the registry records the host each id admitted. */
  id: string
  /** Milliseconds since the epoch after which the token admits nobody. */
  expires: number
  /** Tags the joining host must have (all of them). */
  tags: Record<string, string>
}

const PREFIX = 'zzjoin1'
/** MAX_TOKEN is the longest token (in characters) that is read at all. */
const MAX_TOKEN = 4096

/** newJoinKey makes a random key to sign join tokens with (hex). */
export function newJoinKey(): string {
  return randomBytes(32).toString('hex')
}

/** isJoinKey tells whether `k` has the shape of a join key. */
export function isJoinKey(k: unknown): k is string {
  return typeof k === 'string' && /^[0-9a-f]{64}$/.test(k)
}

const sign = (key: string, body: string) =>
  createHmac('sha256', Buffer.from(key, 'hex')).update(body).digest()

/** signJoinToken makes a token of `claims` signed with `key`. */
export function signJoinToken(key: string, claims: JoinClaims): string {
  const body = Buffer.from(JSON.stringify(claims)).toString('base64url')
  return `${PREFIX}.${body}.${sign(key, body).toString('base64url')}`
}

/**
 * readJoinToken checks a token's signature with `key` and returns its claims, or a reason it
 * admits nobody (not its expiry, which the caller checks against its own clock).
 */
export function readJoinToken(key: string, token: unknown): JoinClaims | string {
  if (!isJoinKey(key)) return 'this cluster has no join key'
  if (typeof token !== 'string' || token.length === 0) return 'a join token is required'
  if (token.length > MAX_TOKEN) return 'the join token is malformed'
  const parts = token.split('.')
  if (parts.length !== 3 || parts[0] !== PREFIX) return 'the join token is malformed'
  const [, body, mac] = parts
  const want = sign(key, body)
  const got = Buffer.from(mac, 'base64url')
  if (got.length !== want.length || !timingSafeEqual(got, want))
    return 'the join token is not signed by this cluster'
  let claims: unknown
  try {
    claims = JSON.parse(Buffer.from(body, 'base64url').toString())
  } catch {
    return 'the join token is malformed'
  }
  const c = claims as Partial<JoinClaims> | null
  const tags = c?.tags
  const tagsOk =
    typeof tags === 'object' &&
    tags !== null &&
    !Array.isArray(tags) &&
    Object.values(tags).every((v) => typeof v === 'string')
  if (typeof c?.id !== 'string' || !Number.isSafeInteger(c.expires) || !tagsOk)
    return 'the join token is malformed'
  return { id: c.id, expires: c.expires as number, tags: tags as Record<string, string> }
}

/** newTokenId makes a random token id. */
export function newTokenId(): string {
  return randomBytes(12).toString('base64url')
}
