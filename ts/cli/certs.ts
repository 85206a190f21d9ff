#!/usr/bin/env node
// zongzi-certs: certificates for a first cluster. Makes a cluster CA (or signs with an
// existing one) and, for every host, the three files its `tls` option names.
//
//   zongzi-certs --out ./certs --hosts 10.0.0.1,10.0.0.2,10.0.0.3 [--days 825]
//   zongzi-certs --out ./certs --ca ./certs --hosts 10.0.0.4    (one more host, same CA)
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

import {
  createCertificateAuthority,
  createHostCertificate,
  type Pem,
  writeHostFiles,
} from '../binding/certificates'

const USAGE =
  'usage: zongzi-certs --out DIR --hosts NAME[,NAME…] [--ca DIR] [--days N]\n' +
  '  NAME: the IP address or DNS name peers reach a host by (one certificate each)\n' +
  '  --ca: sign with the CA in DIR (ca.pem, ca.key) instead of making a new one'

function main(argv: string[]): void {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' },
      hosts: { type: 'string' },
      ca: { type: 'string' },
      days: { type: 'string' },
    },
  })
  const names = (values.hosts ?? '').split(',').filter((n) => n !== '')
  const days = values.days === undefined ? undefined : Number(values.days)
  if (!values.out || names.length === 0 || (days !== undefined && !Number.isInteger(days))) {
    throw new Error(USAGE)
  }
  const ca: Pem = values.ca
    ? {
        cert: readFileSync(join(values.ca, 'ca.pem'), 'utf8'),
        key: readFileSync(join(values.ca, 'ca.key'), 'utf8'),
      }
    : createCertificateAuthority()
  mkdirSync(values.out, { recursive: true })
  if (!values.ca) {
    const key = join(values.out, 'ca.key')
    if (existsSync(key)) throw new Error(`${key} exists; sign with it using --ca ${values.out}`)
    writeFileSync(join(values.out, 'ca.pem'), ca.cert)
    writeFileSync(key, ca.key, { mode: 0o600 })
    chmodSync(key, 0o600)
  }
  for (const name of names) {
    const dir = join(values.out, name)
    writeHostFiles(dir, ca, createHostCertificate(ca, [name], { validDays: days }))
    console.log(`${name}: ${dir}/{ca.pem,host.pem,host.key}`)
  }
}

try {
  main(process.argv.slice(2))
} catch (e) {
  console.error((e as Error).message)
  process.exitCode = 2
}
