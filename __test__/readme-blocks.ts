// The code blocks of a Markdown file, with the heading they stand under and whether they are
// marked partial, so that tests can type-check and run what a README shows.

/** Block is one fenced code block. */
export interface Block {
  /** The fence's language (`ts`, `js`, `rust`, `sh`, …); empty when it names none. */
  lang: string
  /** The block's text, ending with a newline. */
  code: string
  /** The line of the opening fence, from 1. */
  line: number
  /** The nearest heading above the block, without its `#` marks. */
  heading: string
  /**
   * Whether the block is deliberately incomplete (it names other machines, or needs context
   * to run): marked by a `<!-- partial … -->` comment on the line before its fence.
   */
  partial: boolean
}

/** PARTIAL opens the comment that marks the block after it as partial. */
export const PARTIAL = '<!-- partial'

/** codeBlocks returns the fenced code blocks of `markdown`, in order. */
export function codeBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n')
  const blocks: Block[] = []
  let heading = ''
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)/.exec(lines[i])
    if (!open) {
      if (lines[i].startsWith('#')) heading = lines[i].replace(/^#+\s*/, '')
      continue
    }
    const end = lines.findIndex((l, j) => j > i && l.trimEnd() === '```')
    if (end < 0) throw new Error(`the code block at line ${i + 1} is not closed`)
    blocks.push({
      lang: open[1],
      code: `${lines.slice(i + 1, end).join('\n')}\n`,
      line: i + 1,
      heading,
      partial: i > 0 && lines[i - 1].startsWith(PARTIAL),
    })
    i = end
  }
  return blocks
}
