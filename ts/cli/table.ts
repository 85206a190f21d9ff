// table: rows as a plain text table with a header, columns padded to their widest cell.

/** table lays out `rows` under `head`, two spaces between columns, one line per row. */
export function table(head: string[], rows: Array<Array<string | number>>): string {
  const cells = [head, ...rows.map((r) => r.map((c) => clean(String(c))))]
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)))
  return cells
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

/** clean keeps a cell on its line and out of the terminal's control: no control characters. */
function clean(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: they are what is removed
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?')
}
