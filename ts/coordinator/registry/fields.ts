// The checks of a registry command's fields that more than one command makes.

/** Fields are a command's fields, not yet checked. */
export type Fields = Record<string, unknown>

/** isObj tells whether `v` is a plain object (not null, not an array). */
export const isObj = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v)

/** isId tells whether `v` is a whole number of 0 or more (an id, or a time in ms). */
export const isId = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0

/** isTags tells whether `v` maps names of 1 to 256 characters to strings of up to 1,024. */
export const isTags = (v: unknown): v is Record<string, string> =>
  isObj(v) &&
  Object.entries(v).every(
    ([k, x]) => k.length > 0 && k.length <= 256 && typeof x === 'string' && x.length <= 1024,
  )

/** isStrings tells whether `v` is an array of strings. */
export const isStrings = (v: unknown): v is string[] =>
  Array.isArray(v) && v.every((t) => typeof t === 'string')
