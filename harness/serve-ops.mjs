// @ts-check
// The child side of the harness's IPC (harness/child-client.mjs is the parent's): each
// message names an operation of `ops`; its result (or its error's code and message) goes back
// with the message's id.

/**
 * Ops are the operations a child process serves: each takes the message's fields.
 * @typedef {Record<string, (args: any) => Promise<unknown>>} Ops
 */

/**
 * serveOps answers the parent's messages with the operations of `ops`.
 * @param {Ops} ops
 * @returns {void}
 */
export function serveOps(ops) {
  process.on('message', (/** @type {{ id: number, op: string }} */ m) => {
    const send = (/** @type {unknown} */ x) => process.connected && process.send?.(x)
    ops[m.op](m)
      .then((value) => send({ id: m.id, ok: true, value }))
      .catch((e) => send({ id: m.id, ok: false, value: { code: e.code, message: e.message } }))
  })
}
