// Verifies a version's registry signatures with the pinned npm CLI's own code (its bundled
// pacote), the way `npm audit signatures` does once it has the registry's keys.
// usage: node verify_signatures.js <registry URL> <spec> <keys.json> <cache dir>
// prints {"ok": true, "signatures": [...]} or {"ok": false, "code": ..., "message": ...}
'use strict'
const fs = require('fs')
const path = require('path')

const root = path.resolve(__dirname, '..', '..', '.tools', 'npm', 'node_modules', 'npm', 'node_modules')
const pacote = require(path.join(root, 'pacote'))

async function main () {
  const [registry, spec, keysFile, cache] = process.argv.slice(2)
  const { keys } = JSON.parse(fs.readFileSync(keysFile, 'utf8'))
  // As lib/utils/verify-signatures.js does with the body of /-/npm/v1/keys.
  const registryKeys = keys.map(key => ({
    ...key,
    pemkey: `-----BEGIN PUBLIC KEY-----\n${key.key}\n-----END PUBLIC KEY-----`,
  }))
  const parsed = new URL(registry)
  const regKey = `//${parsed.host}${parsed.pathname}`
  try {
    const manifest = await pacote.manifest(spec, {
      registry,
      cache,
      preferOnline: true,
      verifySignatures: true,
      [`${regKey}:_keys`]: registryKeys,
    })
    console.log(JSON.stringify({ ok: true, signatures: manifest._signatures || null, time: manifest._time }))
  } catch (err) {
    console.log(JSON.stringify({ ok: false, code: err.code, message: err.message }))
  }
}

main()
