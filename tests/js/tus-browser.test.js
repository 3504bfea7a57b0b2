// tus-js-client in a real browser: headless Chromium loads a page from one loopback origin; the
// page loads tus-js-client's browser bundle (dist/tus.js of the pinned package, window.tus) and
// uploads a File of a little over 8 MiB to `storage serve` on another origin, in two 6 MiB chunks,
// with the options Supabase documents, as a signed-in user. Every request is cross-origin (POST,
// HEAD and PATCH with custom headers: preflights), and the client only works if the server
// exposes Location and Upload-Offset to it. The page then downloads the object (CORS again) and
// compares the bytes, tries two uploads the server refuses, and reports what it saw; the test
// checks that and the stored object from Node. chromium.js has the page server and the Chromium run.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, test as nodeTest } from 'node:test'
import { createRequire } from 'node:module'

import { chromium, chromiumMissing, chromiumSkip as skip, dumpResult, serveFile, startPageServer } from './chromium.js'
import { bytesOf, pseudoRandomBytes, startStorage } from './harness.js'

const require = createRequire(import.meta.url)
const BUNDLE = join(require.resolve('tus-js-client/package.json'), '..', 'dist', 'tus.js')
const VERSION = require('tus-js-client/package.json').version

// Bounds: Chromium is killed after 65 s (dumpResult), a test fails after 90 s, a hook after 120 s.
const test = (name, fn) => nodeTest(name, { timeout: 90_000 }, fn)
const HOOK = { timeout: 120_000 }

const MiB = 1 << 20
const CHUNK = 6 * MiB
const SIZE = 8 * MiB + 4321 // two chunks: the POST carries the first, one PATCH the rest
const SEED = 86

// The in-page program. Its bytes are harness.js's pseudoRandomBytes(SIZE, SEED), computed the
// same way, so Node can check what was stored without the page sending it back.
const PAGE_SCRIPT = String.raw`
const CFG = JSON.parse(document.getElementById('cfg').textContent)
const out = document.getElementById('result')
function pseudoRandomBytes(n, seed) {
  const b = new Uint8Array(n)
  let x = seed >>> 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    b[i] = x & 0xff
  }
  return b
}
async function hex(buf) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf))
  return Array.from(d, (x) => x.toString(16).padStart(2, '0')).join('')
}
async function run() {
  const bytes = pseudoRandomBytes(CFG.size, CFG.seed)
  const file = new File([bytes], 'clip.bin', { type: 'application/octet-stream', lastModified: 1767225600000 })
  const requests = []
  const entries = new Map()
  const upload = await new Promise((resolve, reject) => {
    const up = new tus.Upload(file, {
      endpoint: CFG.endpoint,
      retryDelays: [0, 3000, 5000, 10000, 20000],
      headers: { authorization: 'Bearer ' + CFG.token, 'x-upsert': 'true' },
      uploadDataDuringCreation: true,
      removeFingerprintOnSuccess: true,
      metadata: { bucketName: CFG.bucket, objectName: CFG.name, contentType: 'application/octet-stream', cacheControl: '3600', metadata: JSON.stringify({ from: 'browser' }) },
      chunkSize: CFG.chunk,
      onBeforeRequest(req) {
        const e = { method: req.getMethod(), url: req.getURL(), offset: req.getHeader('Upload-Offset') ?? null }
        entries.set(req, e)
        requests.push(e)
      },
      onAfterResponse(req, res) {
        // null for a header the server does not expose to the page's origin
        Object.assign(entries.get(req), { status: res.getStatus(), uploadOffset: res.getHeader('Upload-Offset'), location: res.getHeader('Location'), body: res.getBody() })
      },
      onError: reject,
      onSuccess: () => resolve(up),
    })
    up.start()
  })
  const res = await fetch(CFG.download, { headers: { authorization: 'Bearer ' + CFG.token } })
  const got = new Uint8Array(await res.arrayBuffer())
  // Refusals reach the page as the server's answers, not as opaque network errors: error
  // responses carry CORS headers too (the JWT failure included, which is in the REST format).
  const refusals = []
  for (const [token, bucketName] of [[CFG.token, 'no-such-bucket'], ['not-a-jwt', CFG.bucket]]) {
    refusals.push(await new Promise((resolve) => {
      new tus.Upload(new Blob(['refused']), {
        endpoint: CFG.endpoint,
        retryDelays: [0, 3000, 5000, 10000, 20000],
        headers: { authorization: 'Bearer ' + token, 'x-upsert': 'true' },
        uploadDataDuringCreation: true,
        metadata: { bucketName, objectName: CFG.name + '.refused' },
        chunkSize: CFG.chunk,
        onError: (e) => resolve(e.originalResponse ? { status: e.originalResponse.getStatus(), body: e.originalResponse.getBody() } : { error: e.message }),
        onSuccess: () => resolve({ error: 'uploaded' }),
      }).start()
    }))
  }
  return {
    url: upload.url,
    requests,
    refusals,
    download: { status: res.status, contentType: res.headers.get('content-type'), cacheControl: res.headers.get('cache-control'), size: got.length, sha256: await hex(got) },
    source: { size: bytes.length, sha256: await hex(bytes) },
  }
}
run()
  .then((r) => { out.textContent = 'OK tus-js-client ' + CFG.version + ' ' + JSON.stringify(r) })
  .catch((e) => { out.textContent = 'FAIL ' + (e && e.message ? e.message : String(e)) })
  .finally(() => fetch('/result', { method: 'POST', body: out.textContent }).catch(() => {}))
`

function page(cfg) {
  const json = JSON.stringify(cfg).replace(/</g, '\\u003c')
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>tus-js-client in a browser</title></head>
<body>
<pre id="result">PENDING</pre>
<script id="cfg" type="application/json">${json}</script>
<script src="/tus.js"></script>
<script>${PAGE_SCRIPT}</script>
<script src="/hold.js"></script>
</body></html>`
}

const sha256 = (b) => createHash('sha256').update(b).digest('hex')

describe('tus-js-client browser build in headless Chromium', { skip }, () => {
  test('headless Chromium is installed', () => {
    assert.ok(chromium, chromiumMissing)
  })
  if (!chromium) return

  for (const backend of ['file', 's3']) {
    describe(`${backend} backend, endpoint <url>/storage/v1/upload/resumable`, () => {
      const bucket = 'web-tus'
      const sub = '3f1d2c4b-5a69-4e8d-9c1b-2a3b4c5d6e7f'
      const name = `${sub}/clip 8 MiB.bin`
      let srv, pages
      before(async () => {
        srv = await startStorage({ backend })
        assert.equal((await srv.client(srv.serviceKey).createBucket(bucket, { public: false })).error, null)
        // the page signs in as a user; the policies an app would have (upsert needs all of them)
        await srv.sql(`create policy web_tus on storage.objects for all to authenticated
                         using (bucket_id = '${bucket}') with check (bucket_id = '${bucket}')`)
        const base = `${srv.url}/storage/v1`
        pages = await startPageServer(
          () =>
            page({
              endpoint: `${base}/upload/resumable`,
              download: `${base}/object/authenticated/${bucket}/${name.split('/').map(encodeURIComponent).join('/')}`,
              token: srv.userToken(sub),
              bucket,
              name,
              size: SIZE,
              seed: SEED,
              chunk: CHUNK,
              version: VERSION,
            }),
          { '/tus.js': serveFile(BUNDLE, 'text/javascript; charset=utf-8') },
        )
      }, HOOK)
      after(async () => {
        await pages?.close()
        await srv?.stop()
      }, HOOK)

      test('a File in two 6 MiB chunks from another origin: uploaded, downloaded, bytes equal; refusals readable', async () => {
        assert.notEqual(new URL(pages.origin).port, new URL(srv.url).port)
        const result = await dumpResult(`${pages.origin}/`)
        if (process.env.STORAGE_TEST_VERBOSE) console.log(result)
        const m = result.match(/^OK tus-js-client (\S+) (.*)$/s)
        assert.ok(m, `page reported: ${result}\n(posted: ${pages.results.join(' | ')})`)
        assert.equal(m[1], VERSION)
        const r = JSON.parse(m[2])

        const base = `${srv.url}/storage/v1`
        assert.ok(r.url.startsWith(`${base}/upload/resumable/`), `upload URL ${r.url}`)
        // Location and Upload-Offset reached the page: the server exposes them cross-origin
        assert.deepEqual(r.requests, [
          { method: 'POST', url: `${base}/upload/resumable`, offset: null, status: 201, uploadOffset: String(CHUNK), location: r.url, body: '' },
          { method: 'PATCH', url: r.url, offset: String(CHUNK), status: 204, uploadOffset: String(SIZE), location: null, body: '' },
        ])
        assert.deepEqual(r.refusals, [
          { status: 404, body: 'Bucket not found' },
          { status: 400, body: JSON.stringify({ statusCode: '403', code: 'AccessDenied', error: 'Unauthorized', message: 'Invalid Compact JWS' }) },
        ])
        const source = pseudoRandomBytes(SIZE, SEED)
        assert.deepEqual(r.source, { size: SIZE, sha256: sha256(source) })
        assert.deepEqual(r.download, { status: 200, contentType: 'application/octet-stream', cacheControl: 'max-age=3600', size: SIZE, sha256: sha256(source) })

        // and from Node: the object is the user's, with the upload's version and metadata
        const version = Buffer.from(r.url.split('/').pop(), 'base64url').toString('utf8').split('/').pop()
        const rows = await srv.sql(`select version, owner_id, metadata->>'size', user_metadata->>'from' from storage.objects
                                    where bucket_id = '${bucket}' and name = '${name}'`)
        assert.deepEqual(rows, [[version, sub, String(SIZE), 'browser']])
        const { data, error } = await srv.client(srv.serviceKey).from(bucket).download(name)
        assert.equal(error, null)
        assert.equal(sha256(await bytesOf(data)), sha256(source))
      })
    })
  }
})
