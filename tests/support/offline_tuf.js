// Preloaded (node -r) into the pinned npm CLI so `npm audit signatures` can run without network:
// sigstore's TUF repository is unreachable here, and it holds no keys for a stagegate host anyway.
// This answers as that repository would for such a host (TUF_FIND_TARGET_ERROR), so the CLI takes
// its own fallback and fetches the keys from the registry's /-/npm/v1/keys. Nothing else changes.
'use strict'
const path = require('path')

const tufPath = require.resolve('@sigstore/tuf', {
  paths: [path.resolve(__dirname, '..', '..', '.tools', 'npm', 'node_modules', 'npm')],
})
const tuf = require(tufPath)
const notFound = () => Promise.reject(Object.assign(new Error('no such target'), { code: 'TUF_FIND_TARGET_ERROR' }))
require.cache[tufPath].exports = { ...tuf, initTUF: async () => ({ getTarget: notFound }) }
