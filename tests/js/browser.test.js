// storage-js in a real browser: headless Chromium loads a page from one loopback origin, the
// page loads storage-js's browser (UMD) build and talks to `storage serve` on another origin
// (another port), so every call goes through CORS (preflights included). The page writes its
// verdict into <pre id="result">; Chromium's --dump-dom hands us the DOM.
//
// Chromium is required when STORAGE_BROWSER_TEST=1 (the Makefile's test/js sets it): then a
// missing Chromium fails the test. Otherwise the test is skipped with a message (chromium.js).

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test as nodeTest } from 'node:test'
import { createRequire } from 'node:module'

import { chromium, chromiumMissing, chromiumSkip as skip, dumpDOM, dumpResult, serveFile, startPageServer } from './chromium.js'
import { startStorage } from './harness.js'

const require = createRequire(import.meta.url)
const UMD = join(require.resolve('@supabase/storage-js/package.json'), '..', 'dist', 'umd', 'supabase.js')
const VERSION = require('@supabase/storage-js/package.json').version

// Bounds: Chromium is killed after 65 s (dumpResult), a test fails after 90 s, a hook after 120 s.
const test = (name, fn) => nodeTest(name, { timeout: 90_000 }, fn)
const HOOK = { timeout: 120_000 }

// The in-page program: everything an app does with storage-js in a browser, each step checked.
// It runs as a classic script after the UMD bundle defined window.supabase.
const PAGE_SCRIPT = String.raw`
const CFG = JSON.parse(document.getElementById('cfg').textContent)
const out = document.getElementById('result')
const done = []
function check(cond, what, detail) {
  if (!cond) throw new Error(what + (detail === undefined ? '' : ': ' + (detail && detail.message ? detail.message + ' ' + JSON.stringify(detail) : JSON.stringify(detail))))
  done.push(what)
}
function same(a, b) {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
async function hex(buf) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf))
  return Array.from(d, (x) => x.toString(16).padStart(2, '0')).join('')
}
async function full() {
  const { StorageClient, StorageApiError } = window.supabase
  const storage = new StorageClient(CFG.url, { Authorization: 'Bearer ' + CFG.token })
  const files = storage.from(CFG.bucket)
  const bytes = new Uint8Array(300000)
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + (i >> 8)) & 255
  const dir = 'browser'

  let r = await files.upload(dir + '/blob.bin', new Blob([bytes], { type: 'application/octet-stream' }), { metadata: { from: 'browser' } })
  check(!r.error && r.data.fullPath === CFG.bucket + '/' + dir + '/blob.bin', 'upload Blob (multipart)', r.error || r.data)

  r = await files.upload(dir + '/raw.bin', bytes, { contentType: 'application/octet-stream', metadata: { raw: true } })
  check(!r.error, 'upload Uint8Array (raw, x-metadata)', r.error)

  r = await files.upload(dir + '/hello.txt', 'hello from the browser')
  check(!r.error, 'upload string', r.error)

  for (const p of ['blob.bin', 'raw.bin']) {
    const d = await files.download(dir + '/' + p)
    check(!d.error && d.data instanceof Blob, 'download ' + p, d.error)
    const got = new Uint8Array(await d.data.arrayBuffer())
    check(same(got, bytes), 'bytes equal ' + p, { got: got.length, want: bytes.length })
  }
  const s = await files.download(dir + '/raw.bin').asStream()
  check(!s.error, 'download as stream', s.error)
  check((await hex(await new Response(s.data).arrayBuffer())) === (await hex(bytes)), 'stream bytes equal')

  const t = await files.download(dir + '/hello.txt')
  check(!t.error && (await t.data.text()) === 'hello from the browser', 'download string', t.error)

  const info = await files.info(dir + '/blob.bin')
  check(!info.error && info.data.size === bytes.length && info.data.metadata.from === 'browser' && info.data.bucketId === CFG.bucket, 'info', info.error || info.data)

  r = await files.upload(dir + '/hello.txt', 'again')
  check(r.error instanceof StorageApiError && r.error.statusCode === '409' && r.error.message === 'The resource already exists', 'duplicate refused (409)', r.error)

  r = await files.upload(dir + '/hello.txt', 'upserted', { upsert: true })
  check(!r.error, 'upsert', r.error)
  r = await files.update(dir + '/hello.txt', new Blob(['updated'], { type: 'text/plain' }))
  check(!r.error, 'update', r.error)
  check((await (await files.download(dir + '/hello.txt')).data.text()) === 'updated', 'updated content')

  const missing = await files.download(dir + '/missing.bin')
  check(missing.error instanceof StorageApiError && missing.error.statusCode === '404' && missing.error.message === 'Object not found', 'missing object error readable cross-origin', missing.error)

  check((await files.exists(dir + '/raw.bin')).data === true, 'exists true')
  check((await files.exists(dir + '/missing.bin')).data === false, 'exists false')

  const pub = storage.from(CFG.publicBucket)
  r = await pub.upload('page.txt', new Blob(['public bytes'], { type: 'text/plain' }), { upsert: true })
  check(!r.error, 'upload to public bucket', r.error)
  const res = await fetch(pub.getPublicUrl('page.txt').data.publicUrl)
  check(res.status === 200 && (await res.text()) === 'public bytes', 'getPublicUrl fetch', res.status)
  check(/^"[0-9a-f]{32}"$/.test(res.headers.get('etag') || ''), 'ETag exposed', res.headers.get('etag'))
  const dl = await fetch(pub.getPublicUrl('page.txt', { download: 'x.txt' }).data.publicUrl)
  await dl.arrayBuffer()
  check((dl.headers.get('content-disposition') || '').startsWith('attachment;'), 'Content-Disposition exposed', dl.headers.get('content-disposition'))

  const rm = await files.remove([dir + '/blob.bin', dir + '/raw.bin', dir + '/hello.txt'])
  check(!rm.error && rm.data.length === 3, 'remove', rm.error || rm.data)

  const buckets = await storage.getBucket(CFG.bucket)
  check(!buckets.error && buckets.data.id === CFG.bucket, 'getBucket', buckets.error)
}
async function probe() {
  // one call only: for an origin the server does not allow, the browser must block it
  const { StorageClient } = window.supabase
  const storage = new StorageClient(CFG.url, { Authorization: 'Bearer ' + CFG.token })
  const r = await storage.from(CFG.bucket).download('browser/none.bin')
  check(r.error && r.error.name === 'StorageUnknownError', 'blocked by CORS', r.error ? { name: r.error.name, message: r.error.message } : 'no error')
}
;(CFG.mode === 'probe' ? probe() : full())
  .then(() => { out.textContent = 'OK storage-js ' + CFG.version + ': ' + done.join('; ') })
  .catch((e) => { out.textContent = 'FAIL after [' + done.join('; ') + ']: ' + (e && e.message ? e.message : String(e)) })
  .finally(() => fetch('/result', { method: 'POST', body: out.textContent }).catch(() => {}))
`

function page(cfg) {
  const json = JSON.stringify(cfg).replace(/</g, '\\u003c')
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>storage-js in a browser</title></head>
<body>
<pre id="result">PENDING</pre>
<script id="cfg" type="application/json">${json}</script>
<script src="/storage-js.umd.js"></script>
<script>${PAGE_SCRIPT}</script>
<script src="/hold.js"></script>
</body></html>`
}

/** A page server (chromium.js) whose page runs PAGE_SCRIPT with cfgFor(query), and serves the bundle. */
function storageJsPages(cfgFor, extra = {}) {
  return startPageServer((q) => page(cfgFor(q)), { '/storage-js.umd.js': serveFile(UMD, 'text/javascript; charset=utf-8'), ...extra })
}

describe('storage-js browser build in headless Chromium', { skip }, () => {
  test('headless Chromium is installed', () => {
    assert.ok(chromium, chromiumMissing)
  })
  if (!chromium) return

  describe('default CORS (every origin)', () => {
    let srv, pages
    before(async () => {
      srv = await startStorage({ backend: 'file' })
      const service = srv.client(srv.serviceKey)
      for (const [id, pub] of [['web', false], ['web-public', true]]) {
        const { error } = await service.createBucket(id, { public: pub })
        assert.equal(error, null)
      }
      // the page signs in as a user; these are the policies an app would have
      await srv.sql(`
        create policy web_all on storage.objects for all to authenticated
          using (bucket_id in ('web', 'web-public')) with check (bucket_id in ('web', 'web-public'));
        create policy web_buckets on storage.buckets for select to authenticated using (id in ('web', 'web-public'));
      `)
      const token = srv.userToken('5b0c2c57-0d6c-4a9e-9d4c-6a1b1e7d0a11')
      pages = await storageJsPages((q) => ({ url: srv.url, token, bucket: 'web', publicBucket: 'web-public', version: VERSION, mode: q.get('mode') || 'full' }))
    }, HOOK)
    after(async () => {
      await pages?.close()
      await srv?.stop()
    }, HOOK)

    test('upload, download, compare, info, refusals, public URL, remove — from another origin', async () => {
      assert.notEqual(new URL(pages.origin).port, new URL(srv.url).port)
      const result = await dumpResult(`${pages.origin}/`)
      if (process.env.STORAGE_TEST_VERBOSE) console.log(result)
      assert.match(result, /^OK /, `page reported: ${result}\n(posted: ${pages.results.join(' | ')})`)
      assert.match(result, /bytes equal blob\.bin/)
      assert.match(result, /bytes equal raw\.bin/)
    })
  })

  // A stored file never runs script in the storage origin (the server sends a sandbox policy
  // and nosniff with every download), yet works as an <img> on any site. The documents carry
  // a script that marks the DOM and reports to the page server; the same bytes served by the
  // page server, without the policy, show that the script does run where it may.
  describe('stored SVG and XHTML run no script in the storage origin', () => {
    let srv, pages
    const svg = (origin) => `<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30"><rect width="40" height="30" fill="red"/>` +
      `<script><![CDATA[document.documentElement.setAttribute('data-ran', 'yes'); fetch('${origin}/ran?svg&from=' + encodeURIComponent(location.origin), { method: 'POST', mode: 'no-cors' })]]></script></svg>`
    const xhtml = (origin) => `<html xmlns="http://www.w3.org/1999/xhtml"><head><title>x</title></head><body><pre id="result">NOT RUN</pre>` +
      `<script><![CDATA[document.getElementById('result').textContent = 'RAN'; fetch('${origin}/ran?xhtml&from=' + encodeURIComponent(location.origin), { method: 'POST', mode: 'no-cors' })]]></script></body></html>`
    // the reports of the scripts of documents served from the storage origin
    const ran = []
    const fromStorage = () => ran.filter((u) => new URL(u, 'http://x').searchParams.get('from') === new URL(srv.url).origin)
    before(async () => {
      pages = await storageJsPages(() => ({}), {
        '/evil.svg': (req, res) => {
          res.writeHead(200, { 'content-type': 'image/svg+xml' })
          res.end(svg(pages.origin))
        },
        '/evil.xhtml': (req, res) => {
          res.writeHead(200, { 'content-type': 'application/xhtml+xml' })
          res.end(xhtml(pages.origin))
        },
        '/img': (req, res, url) => {
          res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
          res.end(`<!doctype html><html><body><pre id="result">PENDING</pre><script>
const img = new Image()
const finish = (s) => { document.getElementById('result').textContent = s; fetch('/result', { method: 'POST', body: s }) }
img.onload = () => finish('loaded ' + img.naturalWidth + 'x' + img.naturalHeight)
img.onerror = () => finish('error')
img.src = ${JSON.stringify(url.searchParams.get('src')).replace(/</g, '\\u003c')}
</script><script src="/hold.js"></script></body></html>`)
        },
      })
      pages.onRan = (u) => ran.push(u)
      srv = await startStorage({ backend: 'file' })
      const service = srv.client(srv.serviceKey)
      assert.equal((await service.createBucket('site', { public: true })).error, null)
      for (const [name, body, type] of [['evil.svg', svg(pages.origin), 'image/svg+xml'], ['evil.xhtml', xhtml(pages.origin), 'application/xhtml+xml']]) {
        const { error } = await service.from('site').upload(name, new Blob([body], { type }), { contentType: type })
        assert.equal(error, null)
      }
    }, HOOK)
    after(async () => {
      await pages?.close()
      await srv?.stop()
    }, HOOK)

    test('the scripts run when served without the policy (the check works)', async () => {
      const { stdout } = await dumpDOM(`${pages.origin}/evil.svg`)
      assert.match(stdout, /^<svg[^>]*data-ran="yes"/, `the page server's SVG did not run its script:\n${stdout.slice(0, 2000)}`)
      assert.equal(await dumpResult(`${pages.origin}/evil.xhtml`), 'RAN')
    })

    test('navigating to the stored SVG shows it without running its script', async () => {
      const url = `${srv.url}/object/public/site/evil.svg`
      const { stdout, stderr } = await dumpDOM(url)
      assert.match(stdout, /^<svg[^>]*>/, `Chromium did not render the SVG:\n${stdout.slice(0, 2000)}\n${stderr}`)
      assert.doesNotMatch(stdout, /<svg[^>]*data-ran=/, 'the stored SVG ran its script in the storage origin')
      assert.deepEqual(fromStorage(), [], 'a stored document reported to the page server')
    })

    test('navigating to the stored XHTML runs no script', async () => {
      assert.equal(await dumpResult(`${srv.url}/object/public/site/evil.xhtml`), 'NOT RUN')
      assert.deepEqual(fromStorage(), [], 'a stored document reported to the page server')
    })

    test('the stored SVG still loads as an <img> on another site', async () => {
      const src = `${srv.url}/object/public/site/evil.svg`
      const result = await dumpResult(`${pages.origin}/img?src=${encodeURIComponent(src)}`)
      assert.equal(result, 'loaded 40x30')
    })
  })

  describe('CORS_ALLOWED_ORIGINS lists one origin', () => {
    let srv, allowed, other
    before(async () => {
      allowed = await storageJsPages(() => cfg('full'))
      other = await storageJsPages(() => cfg('probe'))
      srv = await startStorage({ backend: 'file', env: { CORS_ALLOWED_ORIGINS: allowed.origin } })
      const service = srv.client(srv.serviceKey)
      for (const [id, pub] of [['web', false], ['web-public', true]]) {
        const { error } = await service.createBucket(id, { public: pub })
        assert.equal(error, null)
      }
    }, HOOK)
    const cfg = (mode) => ({ url: srv.url, token: srv.serviceKey, bucket: 'web', publicBucket: 'web-public', version: VERSION, mode })
    after(async () => {
      await allowed?.close()
      await other?.close()
      await srv?.stop()
    }, HOOK)

    test('the listed origin works', async () => {
      const result = await dumpResult(`${allowed.origin}/`)
      assert.match(result, /^OK /, `page reported: ${result}`)
    })

    test('another origin is blocked by the browser', async () => {
      const result = await dumpResult(`${other.origin}/`)
      assert.match(result, /^OK .*blocked by CORS/, `page reported: ${result}`)
    })
  })
})
