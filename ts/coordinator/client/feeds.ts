// Feeds: a client's watch that outlives the host serving it. When another host's replica
// stops serving a watch (it stopped, its connection broke or went silent past the bus's
// keepalive), the watch resumes on a replica that has applied everything the shard had
// committed, so that it never goes back to a state older than one it delivered.
import { ZongziError } from '../../binding/errors'
import { readMayRetry } from './retry'
import type { Target } from './targets'

/** FeedRoute is how a resumable watch finds, opens and gives up on its replicas. */
export interface FeedRoute {
  /** first is the target of the first subscription. */
  first(): Promise<Target>
  /**
   * resume finds a target again after a failure: one whose replica has applied the shard's
   * commit index as of now (a read index), and so every state delivered so far.
   */
  resume(): Promise<Target>
  /** open subscribes on a target. */
  open(t: Target): AsyncIterable<Buffer>
  /** failed hears that a target stopped serving the watch. */
  failed(t: Target, e: unknown): void
}

/**
 * mayResume tells whether a watch may resume after a failure of the host that served it: any
 * failure a read may retry after, and the host's end of the call (cancelled there, not by
 * the caller). A failure of the call itself (no watch in the state machine, a refusal) ends
 * the watch.
 */
export function mayResume(e: unknown): boolean {
  return readMayRetry(e) || (e instanceof ZongziError && e.code === 'ERR_ABORTED')
}

/**
 * resumable yields a watch's answers across failures of the hosts serving it, until `signal`
 * aborts, the state machine's watch ends, or a failure that may not resume (finding the first
 * target, and a local replica's failures, among them); `resume`'s failure (no replica within
 * the timeout) ends it too. Answers after a resume may repeat the last one delivered.
 */
export async function* resumable(route: FeedRoute, signal?: AbortSignal): AsyncIterable<Buffer> {
  let t = await route.first()
  for (;;) {
    try {
      for await (const b of route.open(t)) yield b
      return // the state machine's watch ended
    } catch (e) {
      if (signal?.aborted) return
      if (t.local || !mayResume(e)) throw e
      route.failed(t, e)
    }
    try {
      t = await route.resume()
    } catch (e) {
      if (signal?.aborted) return
      throw e
    }
  }
}
