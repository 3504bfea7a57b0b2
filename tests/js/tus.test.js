// Resumable uploads from a real TUS client: the unmodified tus-js-client (pinned in
// package.json) in Node, configured the way Supabase documents it (6 MiB chunks, data with the
// creation request, the retry delays, authorization and x-upsert headers, the metadata keys),
// against `storage serve` on each blob backend, through `<url>/storage/v1/upload/resumable`
// (where supabase-js users point it) and, on the file backend, the root shape as well.
//
// Every request the client sends is logged (onBeforeRequest / onAfterResponse: the client's
// own hooks), so the tests assert the exact conversation — methods, Upload-Offset sent and
// answered, statuses, bodies — besides the outcome: the stored bytes (SHA-256), the object's
// headers and metadata, its row (psql), and the files of the blob store.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import http from 'node:http'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test as nodeTest } from 'node:test'

import { DefaultHttpStack, Upload } from 'tus-js-client'

import { bytesOf, pseudoRandomBytes, startStorage } from './harness.js'

const MiB = 1 << 20
const CHUNK = 6 * MiB // what Supabase tells tus-js-client users to set, and not to change

// Bounds, so a wedged server fails the run instead of hanging it. A test takes seconds; a
// retry of the client's (its documented delays add up to 38 s) shows up as a slow test, and is
// also visible in the request logs the tests assert.
const TEST_TIMEOUT = 60_000
const HOOK_TIMEOUT = 120_000 // starting the server: initdb, migrations, versitygw
const test = (name, fn) => nodeTest(name, { timeout: TEST_TIMEOUT }, fn)

const sha256 = (b) => createHash('sha256').update(b).digest('hex')
const sqlString = (s) => `'${s.replace(/'/g, "''")}'`

/**
 * The options of Supabase's "Resumable uploads" guide: the endpoint under base (the server's URL
 * plus the prefix), the caller's token, x-upsert, the given metadata; `more` overrides or adds.
 */
function documented(base, token, metadata, more = {}) {
  return {
    endpoint: `${base}/upload/resumable`,
    retryDelays: [0, 3000, 5000, 10000, 20000],
    headers: { authorization: `Bearer ${token}`, 'x-upsert': 'true' },
    uploadDataDuringCreation: true,
    removeFingerprintOnSuccess: true,
    metadata,
    chunkSize: CHUNK,
    ...more,
  }
}

/**
 * Runs one tus.Upload until onSuccess, onError, or the abort that `abort` (a promise) asks for.
 * Resolves { upload, error, aborted, requests }: error is what onError received (null
 * otherwise), aborted whether the upload was aborted, requests every request the client sent,
 * in order, with its answer (status undefined for a request that got none).
 */
function runUpload(input, options, { abort } = {}) {
  return new Promise((resolve) => {
    const requests = []
    const entries = new WeakMap()
    let settled = false
    const finish = (r) => {
      if (settled) return
      settled = true
      resolve({ upload, requests, error: null, aborted: false, ...r })
    }
    const upload = new Upload(input, {
      ...options,
      onBeforeRequest: (req) => {
        const e = { method: req.getMethod(), url: req.getURL(), offset: req.getHeader('Upload-Offset') ?? null }
        entries.set(req, e)
        requests.push(e)
      },
      onAfterResponse: (req, res) => {
        Object.assign(entries.get(req), {
          status: res.getStatus(),
          uploadOffset: res.getHeader('Upload-Offset') ?? null,
          complete: res.getHeader('Tus-Complete') ?? null,
          location: res.getHeader('Location') ?? null,
          body: res.getBody(),
        })
      },
      onSuccess: () => finish({}),
      onError: (error) => finish({ error }),
    })
    abort?.then(() => {
      if (settled) return
      upload.abort()
      finish({ aborted: true })
    })
    upload.start()
  })
}

/**
 * tus-js-client's HTTP layer (its httpStack option) with a fault: the first PATCH at offset
 * `at` sends only the first `keep` bytes of its body; once those bytes are in the kernel (the
 * write's callback), onCut is called, and with drop the connection is closed right there (the
 * client sees a network error). Without drop the request hangs until the upload is aborted,
 * which closes it. Every other request goes through the client's own Node stack.
 */
function cuttingStack({ at, keep, onCut = () => {}, drop = false }) {
  const inner = new DefaultHttpStack()
  let done = false
  return {
    getName: () => 'CuttingStack',
    createRequest(method, url) {
      const req = inner.createRequest(method, url)
      const headers = {}
      const setHeader = req.setHeader.bind(req)
      req.setHeader = (k, v) => {
        headers[k] = v
        setHeader(k, v)
      }
      const send = req.send.bind(req)
      const abort = req.abort.bind(req)
      let cr = null
      req.send = (body) => {
        if (method !== 'PATCH' || headers['Upload-Offset'] !== String(at) || done) return send(body)
        done = true
        return new Promise((resolve, reject) => {
          cr = http.request(url, { method, headers: { ...headers, 'Content-Length': String(body.length) } })
          cr.on('error', reject)
          cr.on('response', (res) => reject(new Error(`the server answered ${res.statusCode} to a body it did not have`)))
          cr.write(body.subarray(0, keep), () => {
            onCut()
            if (drop) cr.destroy()
          })
        })
      }
      req.abort = () => {
        cr?.destroy()
        return abort()
      }
      return req
    },
  }
}

/** Polls check() (async) until it returns a value other than undefined; fails after timeoutMs with what. */
async function waitFor(check, what, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** The conversation of an upload of n bytes that went through without a hitch, as logged by runUpload. */
function smoothConversation(url, n) {
  const reqs = [{ method: 'POST', offset: null, status: 201, uploadOffset: String(Math.min(CHUNK, n)), complete: n <= CHUNK ? '1' : null }]
  for (let at = CHUNK; at < n; at += CHUNK) {
    const to = Math.min(at + CHUNK, n)
    reqs.push({ method: 'PATCH', url, offset: String(at), status: 204, uploadOffset: String(to), complete: to === n ? '1' : null })
  }
  return reqs
}

/** The fields of a logged request that smoothConversation describes. */
const conversation = (requests) =>
  requests.map(({ method, url, offset, status, uploadOffset, complete }) =>
    method === 'POST' ? { method, offset, status, uploadOffset, complete } : { method, url, offset, status, uploadOffset, complete },
  )

/** Bucket, object name and version of an upload URL (its last segment is base64url of "bucket/name/version"). */
function decodeUploadURL(url) {
  const id = Buffer.from(new URL(url).pathname.split('/').pop(), 'base64url').toString('utf8')
  const slash = id.lastIndexOf('/')
  const first = id.indexOf('/')
  return { bucket: id.slice(0, first), name: id.slice(first + 1, slash), version: id.slice(slash + 1) }
}

/** Every file of the server's blob store (path → size): for the s3 backend, versitygw's directory. */
function storedFiles(srv) {
  const root = srv.backend === 'file' ? join(srv.dir, 'data', 'blobs') : join(srv.dir, 's3root', srv.s3.bucket)
  const files = {}
  const walk = (dir) => {
    if (!existsSync(dir)) return
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else files[p.slice(root.length)] = statSync(p).size
    }
  }
  walk(root)
  return files
}

function ok(result, what = 'call') {
  assert.equal(result.error, null, `${what} failed: ${result.error?.message ?? ''}`)
  return result.data
}

/** Throws with the request log when the client reported an error. */
function succeeded(r) {
  // (not assert.equal: a DetailedError prints its whole request object)
  assert.ok(r.error === null, `the upload failed: ${r.error?.message}\nrequests: ${JSON.stringify(conversation(r.requests), null, 1)}`)
  assert.equal(r.aborted, false)
}

/** The TUS suite on one backend with the clients' base at the server's URL + prefix. */
function tusSuite(backend, prefix) {
  describe(`tus-js-client, ${backend} backend, base <url>${prefix}`, () => {
    let srv, base, service, files
    const bucket = `tus-${backend}`
    const userSub = '0e6a3c52-4f0e-4c59-9d0e-0d7b8f1c2a77'

    before(async () => {
      srv = await startStorage({ backend })
      base = srv.url + prefix
      service = srv.client(srv.serviceKey, base)
      ok(await service.createBucket(bucket, { public: false }), 'createBucket')
      files = service.from(bucket)
      // the signed-upload test's user may create objects in the bucket (no more)
      await srv.sql(`create policy tus_user_insert on storage.objects for insert to authenticated
                       with check (bucket_id = ${sqlString(bucket)})`)
    }, HOOK_TIMEOUT)
    after(async () => {
      await srv?.stop()
    }, HOOK_TIMEOUT)

    /** The object's row: version, owner_id ('<null>' for NULL), size, mimetype, cacheControl, user_metadata. */
    async function objectRow(name) {
      const rows = await srv.sql(`select version, coalesce(owner_id, '<null>'), metadata->>'size', metadata->>'mimetype',
                                         metadata->>'cacheControl', coalesce(user_metadata::text, '<null>')
                                  from storage.objects where bucket_id = ${sqlString(bucket)} and name = ${sqlString(name)}`)
      if (rows.length === 0) return null
      const [version, owner, size, mimetype, cacheControl, userMetadata] = rows[0]
      return { version, owner, size: Number(size), mimetype, cacheControl, userMetadata: userMetadata === '<null>' ? null : JSON.parse(userMetadata) }
    }

    const uploadsOf = async (b, name) =>
      (await srv.sql(`select version, upload_offset, coalesce(completed_at::text, '<null>') from storage.resumable_uploads
                      where bucket_id = ${sqlString(b)} and name = ${sqlString(name)} order by created_at`)).map(([version, offset, completed]) => ({
        version,
        offset: Number(offset),
        completed: completed !== '<null>',
      }))

    test('50 MiB in 6 MiB chunks with metadata: stored bytes, Content-Type, Cache-Control, user metadata', async () => {
      const name = 'videos/fifty MiB.mp4'
      const bytes = pseudoRandomBytes(50 * MiB, 50)
      const userMetadata = { camera: 'tus-js-client', takes: 3, nested: { ok: true } }
      const r = await runUpload(
        bytes,
        documented(base, srv.serviceKey, {
          bucketName: bucket,
          objectName: name,
          contentType: 'video/mp4',
          cacheControl: '3600',
          metadata: JSON.stringify(userMetadata),
        }),
      )
      succeeded(r)
      const url = r.upload.url
      assert.ok(url.startsWith(`${base}/upload/resumable/`), `upload URL ${url} is not under ${base}/upload/resumable/`)
      const id = decodeUploadURL(url)
      assert.deepEqual({ bucket: id.bucket, name: id.name }, { bucket, name })
      // POST with the first 6 MiB, then one PATCH per chunk, the last one completing
      assert.deepEqual(conversation(r.requests), smoothConversation(url, bytes.length))
      assert.equal(r.requests[0].location, url)

      const downloaded = await bytesOf(ok(await files.download(name), 'download'))
      assert.equal(downloaded.length, bytes.length)
      assert.equal(sha256(downloaded), sha256(bytes))

      const head = await fetch(`${base}/object/authenticated/${bucket}/${encodeURIComponent(name).replace(/%2F/g, '/')}`, {
        method: 'HEAD',
        headers: { authorization: `Bearer ${srv.serviceKey}` },
      })
      assert.equal(head.status, 200)
      assert.equal(head.headers.get('content-type'), 'video/mp4')
      assert.equal(head.headers.get('cache-control'), 'max-age=3600')
      assert.equal(head.headers.get('content-length'), String(bytes.length))

      const info = ok(await files.info(name), 'info')
      assert.deepEqual(
        { size: info.size, contentType: info.contentType, cacheControl: info.cacheControl, metadata: info.metadata },
        { size: bytes.length, contentType: 'video/mp4', cacheControl: 'max-age=3600', metadata: userMetadata },
      )
      // the object is the upload's version; a service key has no sub, so no owner
      assert.deepEqual(await objectRow(name), {
        version: id.version,
        owner: '<null>',
        size: bytes.length,
        mimetype: 'video/mp4',
        cacheControl: 'max-age=3600',
        userMetadata,
      })
      assert.deepEqual(await uploadsOf(bucket, name), [{ version: id.version, offset: bytes.length, completed: true }])
    })

    test('cut off in the middle of a chunk, resumed by a new client from the upload URL', async () => {
      const name = 'resume/take (2).bin'
      const bytes = pseudoRandomBytes(20 * MiB + 12_345, 20)
      const opts = documented(base, srv.serviceKey, { bucketName: bucket, objectName: name, contentType: 'application/octet-stream' })
      // The third chunk's PATCH (offset 12 MiB) sends 2.5 MiB of its body, then the upload is
      // aborted: its connection closes mid-body, 14.5 MiB into the file.
      const at = 2 * CHUNK
      const keep = 2.5 * MiB
      let onCut
      const cut = new Promise((resolve) => (onCut = resolve))
      const first = await runUpload(bytes, { ...opts, httpStack: cuttingStack({ at, keep, onCut }) }, { abort: cut })
      assert.ok(first.error === null, `before the cut: ${first.error?.message}`)
      assert.equal(first.aborted, true)
      const url = first.upload.url
      const smooth = smoothConversation(url, bytes.length)
      assert.deepEqual(conversation(first.requests), [...smooth.slice(0, 2), { method: 'PATCH', url, offset: String(at), status: undefined, uploadOffset: undefined, complete: undefined }])

      // What the server received of the cut chunk is kept: it records it once it sees the
      // connection close (there is no answer to wait for: the client is gone).
      const { version } = decodeUploadURL(url)
      const recorded = await waitFor(async () => {
        const [u] = await uploadsOf(bucket, name)
        return u.offset !== at ? u.offset : undefined
      }, 'the server to record the cut PATCH')
      assert.equal(recorded, at + keep)

      // A new client for the same file, given the upload URL (what an app keeps to resume
      // later): HEAD, then the rest from the offset HEAD reported, in the middle of a chunk.
      const second = await runUpload(bytes, { ...opts, uploadUrl: url })
      succeeded(second)
      assert.equal(second.upload.url, url)
      assert.deepEqual(conversation(second.requests), [
        { method: 'HEAD', url, offset: null, status: 200, uploadOffset: String(at + keep), complete: null },
        { method: 'PATCH', url, offset: String(at + keep), status: 204, uploadOffset: String(bytes.length), complete: '1' },
      ])

      assert.equal(sha256(await bytesOf(ok(await files.download(name), 'download'))), sha256(bytes))
      assert.equal((await objectRow(name)).version, version)
      assert.deepEqual(await uploadsOf(bucket, name), [{ version, offset: bytes.length, completed: true }])
    })

    test('connection lost in the middle of a chunk: the client retries at once and continues from HEAD', async () => {
      const name = 'resume/retried.bin'
      const bytes = pseudoRandomBytes(14 * MiB + 777, 14)
      // The second chunk's PATCH (offset 6 MiB) loses its connection 4 MiB into its body; the
      // client's first retry delay is 0, so its HEAD races the server noticing the loss. Either
      // HEAD already reports the bytes kept (10 MiB) or it reports 6 MiB and the PATCH from there
      // is refused (409: the server has more by then), and the client retries from a new HEAD.
      const at = CHUNK
      const keep = 4 * MiB
      const r = await runUpload(
        bytes,
        documented(base, srv.serviceKey, { bucketName: bucket, objectName: name }, { httpStack: cuttingStack({ at, keep, drop: true }) }),
      )
      succeeded(r)
      const url = r.upload.url
      const log = conversation(r.requests)
      if (process.env.STORAGE_TEST_VERBOSE) console.log(`${backend}${prefix}, retried:`, log)
      assert.deepEqual(log.slice(0, 2), [
        ...smoothConversation(url, bytes.length).slice(0, 1),
        { method: 'PATCH', url, offset: String(at), status: undefined, uploadOffset: undefined, complete: undefined },
      ])
      assert.deepEqual({ ...log[2], uploadOffset: undefined }, { method: 'HEAD', url, offset: null, status: 200, uploadOffset: undefined, complete: null })
      assert.ok([String(at), String(at + keep)].includes(log[2].uploadOffset), `HEAD after the loss reported ${log[2].uploadOffset}`)
      assert.ok(!r.requests.slice(1).some((q) => q.method === 'POST'), 'the client created a new upload')
      for (const q of r.requests.slice(1)) {
        if (q.method === 'PATCH') assert.ok(Number(q.offset) >= at, `a PATCH went back to ${q.offset}`)
        if (q.status !== undefined) assert.ok([200, 204, 409].includes(q.status), `answered ${q.status}: ${q.body}`)
      }
      // From the offset the server has, each PATCH continues: the rest of the file in chunks.
      const resumed = r.requests.findLastIndex((q) => q.method === 'HEAD')
      assert.deepEqual(log[resumed], { method: 'HEAD', url, offset: null, status: 200, uploadOffset: String(at + keep), complete: null })
      const rest = []
      for (let o = at + keep; o < bytes.length; o += CHUNK) {
        const to = Math.min(o + CHUNK, bytes.length)
        rest.push({ method: 'PATCH', url, offset: String(o), status: 204, uploadOffset: String(to), complete: to === bytes.length ? '1' : null })
      }
      assert.deepEqual(log.slice(resumed + 1), rest)
      assert.equal(sha256(await bytesOf(ok(await files.download(name), 'download'))), sha256(bytes))
    })

    test('refused: a missing bucket (404) stores nothing', async () => {
      const before = storedFiles(srv)
      const r = await runUpload(
        pseudoRandomBytes(MiB + 7, 404),
        documented(base, srv.serviceKey, { bucketName: 'no-such-bucket', objectName: 'x.bin', contentType: 'application/octet-stream' }),
      )
      assert.ok(r.error, 'the upload succeeded')
      // 404 is not retried: onError has the server's answer to the one POST
      assert.equal(r.error.originalResponse?.getStatus(), 404, r.error.message)
      assert.equal(r.error.originalResponse.getBody(), 'Bucket not found')
      assert.equal(r.error.originalRequest.getMethod(), 'POST')
      assert.deepEqual(
        r.requests.map((q) => [q.method, q.status, q.body, q.location]),
        [['POST', 404, 'Bucket not found', null]],
      )
      assert.deepEqual(await uploadsOf('no-such-bucket', 'x.bin'), [])
      assert.deepEqual(storedFiles(srv), before)
    })

    test('refused: an existing key without x-upsert (409) stores nothing and keeps the object', async () => {
      const name = 'taken.txt'
      ok(await files.upload(name, 'the original', { contentType: 'text/plain' }), 'upload')
      const original = await objectRow(name)
      const before = storedFiles(srv)
      const opts = documented(base, srv.serviceKey, { bucketName: bucket, objectName: name, contentType: 'text/plain' })
      delete opts.headers['x-upsert']
      // tus-js-client retries a 409 (meant for offset conflicts) with its retry delays; one
      // immediate retry shows the refusal is stable without waiting out the documented delays.
      opts.retryDelays = [0]
      const r = await runUpload(pseudoRandomBytes(MiB + 9, 409), opts)
      assert.ok(r.error, 'the upload succeeded')
      assert.equal(r.error.originalResponse?.getStatus(), 409, r.error.message)
      assert.equal(r.error.originalResponse.getBody(), 'The resource already exists')
      assert.deepEqual(
        r.requests.map((q) => [q.method, q.status, q.body, q.location]),
        [
          ['POST', 409, 'The resource already exists', null],
          ['POST', 409, 'The resource already exists', null],
        ],
      )
      assert.equal(await (ok(await files.download(name), 'download')).text(), 'the original')
      assert.deepEqual(await objectRow(name), original)
      assert.deepEqual(await uploadsOf(bucket, name), [])
      assert.deepEqual(storedFiles(srv), before)
    })

    test('signed upload: a createSignedUploadUrl token as x-signature, no Authorization', async () => {
      const name = `signed/${userSub}/clip.bin`
      const user = srv.client(srv.userToken(userSub), base).from(bucket)
      const { token } = ok(await user.createSignedUploadUrl(name), 'createSignedUploadUrl')
      const bytes = pseudoRandomBytes(8 * MiB + 99, 8)
      const r = await runUpload(bytes, {
        endpoint: `${base}/upload/resumable/sign`,
        retryDelays: [0, 3000, 5000, 10000, 20000],
        headers: { 'x-signature': token },
        uploadDataDuringCreation: true,
        removeFingerprintOnSuccess: true,
        metadata: { bucketName: bucket, objectName: name, contentType: 'application/octet-stream', cacheControl: '60' },
        chunkSize: CHUNK,
      })
      succeeded(r)
      const url = r.upload.url
      assert.ok(url.startsWith(`${base}/upload/resumable/sign/`), `upload URL ${url} is not under ${base}/upload/resumable/sign/`)
      assert.deepEqual(conversation(r.requests), smoothConversation(url, bytes.length))
      assert.equal(sha256(await bytesOf(ok(await files.download(name), 'download'))), sha256(bytes))
      // the object belongs to the user who signed the URL
      assert.deepEqual(await objectRow(name), {
        version: decodeUploadURL(url).version,
        owner: userSub,
        size: bytes.length,
        mimetype: 'application/octet-stream',
        cacheControl: 'max-age=60',
        userMetadata: null,
      })
    })
  })
}

tusSuite('file', '/storage/v1')
tusSuite('file', '')
tusSuite('s3', '/storage/v1')
