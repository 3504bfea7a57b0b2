// The storage-js conformance suite: every client method the server implements, called exactly
// as an application calls it, against `storage serve` on one blob backend. file.test.js and
// s3.test.js run it once per backend at the root shape (<url>/bucket, as the reference serves
// it); prefix.test.js runs it with the client's base at <url>/storage/v1, the shape Supabase's
// gateway and supabase-js use.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { after, before, describe, test as nodeTest } from 'node:test'

import { StorageApiError } from '@supabase/storage-js'

import { bytesOf, pseudoRandomBytes, signJWT, startStorage, uuid } from './harness.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/
const GLOBAL_LIMIT = 20_000_000 // UPLOAD_FILE_SIZE_LIMIT the server is started with

// Bounds, so a wedged server fails the run instead of hanging it (a whole backend takes seconds).
const TEST_TIMEOUT = 60_000
const HOOK_TIMEOUT = 120_000 // starting the server: initdb, migrations, versitygw
const test = (name, fn) => nodeTest(name, { timeout: TEST_TIMEOUT }, fn)

/** Asserts a { data, error } result succeeded and returns data. */
function ok(result, what = 'call') {
  assert.equal(result.error, null, `${what} failed: ${JSON.stringify(result.error)} ${result.error?.message ?? ''}`)
  return result.data
}

/**
 * Asserts a { data, error } result is the refusal the client reports: error.message,
 * error.statusCode (the body's string), error.status (the HTTP status), and error.code if given.
 */
function refused(result, { message, statusCode, status = 400, code }) {
  assert.equal(result.data, null, `expected a refusal, got data ${JSON.stringify(result.data)}`)
  const e = result.error
  assert.ok(e, 'expected an error')
  assert.ok(e instanceof StorageApiError, `expected StorageApiError, got ${e?.name}: ${e?.message}`)
  const got = { message: e.message, statusCode: e.statusCode, status: e.status }
  const want = { message, statusCode, status }
  if (code !== undefined) {
    got.code = e.code
    want.code = code
  }
  assert.deepEqual(got, want)
  return e
}

const md5 = (b) => createHash('md5').update(b).digest('hex')
const sha256 = (b) => createHash('sha256').update(b).digest('hex')

async function readStream(stream) {
  const chunks = []
  for await (const c of stream) chunks.push(Buffer.from(c))
  return Buffer.concat(chunks)
}

/** A web ReadableStream over buf in chunks of size n (a chunked request body: no Content-Length). */
function webStream(buf, n = 64 << 10) {
  let off = 0
  return new ReadableStream({
    pull(controller) {
      if (off >= buf.length) return controller.close()
      controller.enqueue(new Uint8Array(buf.subarray(off, off + n)))
      off += n
    },
  })
}

/** Runs the suite on backend with the clients' base URL at the server's URL + prefix. */
export function conformance(backend, { prefix = '' } = {}) {
  describe(`storage-js against storage serve (${backend} backend${prefix ? `, base ${prefix}` : ''})`, () => {
    let srv // the running server
    let api // the base URL the clients are constructed with: srv.url + prefix
    let service // StorageClient with the service_role key
    let anon // StorageClient with the anon key
    const client = (key) => srv.client(key, api)

    before(async () => {
      srv = await startStorage({ backend, env: { UPLOAD_FILE_SIZE_LIMIT: String(GLOBAL_LIMIT) } })
      api = srv.url + prefix
      service = client(srv.serviceKey)
      anon = client(srv.anonKey)
    }, { timeout: HOOK_TIMEOUT })
    after(async () => {
      await srv?.stop()
    }, { timeout: HOOK_TIMEOUT })

    // -----------------------------------------------------------------------------------------
    describe('buckets', () => {
      test('createBucket (private) and getBucket', async () => {
        assert.deepEqual(ok(await service.createBucket('docs')), { name: 'docs' })
        const b = ok(await service.getBucket('docs'))
        assert.deepEqual(Object.keys(b).sort(), ['allowed_mime_types', 'created_at', 'file_size_limit', 'id', 'name', 'owner', 'public', 'updated_at'])
        assert.equal(b.id, 'docs')
        assert.equal(b.name, 'docs')
        assert.equal(b.public, false)
        assert.equal(b.owner, '') // created with the service key: no sub
        assert.equal(b.file_size_limit, null)
        assert.equal(b.allowed_mime_types, null)
        assert.match(b.created_at, TIMESTAMP)
        assert.match(b.updated_at, TIMESTAMP)
      })

      test('createBucket public with fileSizeLimit "1MB" and allowedMimeTypes', async () => {
        ok(await service.createBucket('media', { public: true, fileSizeLimit: '1MB', allowedMimeTypes: ['image/*', 'text/plain'] }))
        const b = ok(await service.getBucket('media'))
        assert.equal(b.public, true)
        assert.equal(b.file_size_limit, 1_000_000)
        assert.deepEqual(b.allowed_mime_types, ['image/*', 'text/plain'])
      })

      test('createBucket with a numeric fileSizeLimit and "1024KB" (3 significant digits)', async () => {
        ok(await service.createBucket('sized-a', { public: false, fileSizeLimit: 2048 }))
        ok(await service.createBucket('sized-b', { public: false, fileSizeLimit: '1024KB' }))
        assert.equal(ok(await service.getBucket('sized-a')).file_size_limit, 2048)
        assert.equal(ok(await service.getBucket('sized-b')).file_size_limit, 1_020_000)
      })

      test('createBucket refusals: duplicate 409, invalid name 400, limit over the global one 413, bad MIME 415', async () => {
        refused(await service.createBucket('docs'), { message: 'The resource already exists', statusCode: '409', code: 'BucketAlreadyExists' })
        refused(await service.createBucket('a/b'), { message: 'Bucket name invalid', statusCode: '400', code: 'InvalidBucketName' })
        refused(await service.createBucket('too-big', { public: false, fileSizeLimit: '30MB' }), { message: 'The object exceeded the maximum allowed size', statusCode: '413', code: 'EntityTooLarge' })
        refused(await service.createBucket('bad-mime', { public: false, allowedMimeTypes: ['notamime'] }), { message: 'mime type notamime is not supported', statusCode: '415', code: 'InvalidMimeType' })
        refused(await service.getBucket('too-big'), { message: 'Bucket not found', statusCode: '404', code: 'NoSuchBucket' })
      })

      test('listBuckets returns every bucket with type STANDARD', async () => {
        const list = ok(await service.listBuckets())
        const names = list.map((b) => b.name)
        for (const n of ['docs', 'media', 'sized-a', 'sized-b']) assert.ok(names.includes(n), `${n} missing from ${names}`)
        for (const b of list) {
          assert.deepEqual(Object.keys(b).sort(), ['allowed_mime_types', 'created_at', 'file_size_limit', 'id', 'name', 'owner', 'public', 'type', 'updated_at'])
          assert.equal(b.type, 'STANDARD')
          assert.equal(b.id, b.name)
        }
        const media = list.find((b) => b.name === 'media')
        assert.equal(media.public, true)
        assert.equal(media.file_size_limit, 1_000_000)
      })

      test('listBuckets options: search, sortColumn/sortOrder, limit/offset', async () => {
        assert.deepEqual(ok(await service.listBuckets({ search: 'SIZED' })).map((b) => b.name).sort(), ['sized-a', 'sized-b'])
        assert.deepEqual(ok(await service.listBuckets({ search: 'nothing-like-this' })), [])
        const asc = ok(await service.listBuckets({ sortColumn: 'name', sortOrder: 'asc' })).map((b) => b.name)
        assert.deepEqual(asc, [...asc].sort())
        const desc = ok(await service.listBuckets({ sortColumn: 'name', sortOrder: 'desc' })).map((b) => b.name)
        assert.deepEqual(desc, [...asc].reverse())
        const page = ok(await service.listBuckets({ sortColumn: 'name', sortOrder: 'asc', limit: 2, offset: 1 })).map((b) => b.name)
        assert.deepEqual(page, asc.slice(1, 3))
        const newest = ok(await service.listBuckets({ sortColumn: 'created_at', sortOrder: 'desc', limit: 1 }))
        assert.equal(newest.length, 1)
      })

      test('updateBucket changes and clears settings', async () => {
        assert.deepEqual(ok(await service.updateBucket('docs', { public: true, fileSizeLimit: '2MB', allowedMimeTypes: ['text/plain'] })), { message: 'Successfully updated' })
        let b = ok(await service.getBucket('docs'))
        assert.equal(b.public, true)
        assert.equal(b.file_size_limit, 2_000_000)
        assert.deepEqual(b.allowed_mime_types, ['text/plain'])
        ok(await service.updateBucket('docs', { public: false, fileSizeLimit: null, allowedMimeTypes: null }))
        b = ok(await service.getBucket('docs'))
        assert.equal(b.public, false)
        assert.equal(b.file_size_limit, null)
        assert.equal(b.allowed_mime_types, null)
        refused(await service.updateBucket('no-such-bucket', { public: true }), { message: 'Bucket not found', statusCode: '404', code: 'NoSuchBucket' })
      })

      test('getBucket of a missing bucket: 404 Bucket not found', async () => {
        refused(await service.getBucket('no-such-bucket'), { message: 'Bucket not found', statusCode: '404', code: 'NoSuchBucket' })
      })

      test('emptyBucket, then deleteBucket (refused while not empty)', async () => {
        ok(await service.createBucket('trash'))
        ok(await service.from('trash').upload('a.txt', 'a'))
        ok(await service.from('trash').upload('f/b.txt', 'b'))
        refused(await service.deleteBucket('trash'), { message: 'The bucket you tried to delete is not empty', statusCode: '409', code: 'ResourceNotEmpty' })
        assert.deepEqual(ok(await service.emptyBucket('trash')), { message: 'Empty bucket has been queued. Completion may take up to an hour.' })
        // Empty may be asynchronous (it is in the reference): wait for it, bounded.
        const deadline = Date.now() + 10_000
        while ((await service.from('trash').exists('a.txt')).data || (await service.from('trash').exists('f/b.txt')).data) {
          assert.ok(Date.now() < deadline, 'emptyBucket left objects behind for 10 s')
          await new Promise((r) => setTimeout(r, 100))
        }
        assert.deepEqual(ok(await service.deleteBucket('trash')), { message: 'Successfully deleted' })
        refused(await service.getBucket('trash'), { message: 'Bucket not found', statusCode: '404' })
      })

      test('emptyBucket / deleteBucket of a missing bucket: 404', async () => {
        refused(await service.emptyBucket('no-such-bucket'), { message: 'Bucket not found', statusCode: '404' })
        refused(await service.deleteBucket('no-such-bucket'), { message: 'Bucket not found', statusCode: '404' })
      })

      test('emptyBucket needs the service role: HTTP 403 for a user token', async () => {
        const user = client(srv.userToken(uuid()))
        refused(await user.emptyBucket('docs'), { message: 'Access denied: Invalid role', statusCode: '403', status: 403 })
      })

      test('anon key without bucket policies: list is empty, get is 404, create is 403', async () => {
        assert.deepEqual(ok(await anon.listBuckets()), [])
        refused(await anon.getBucket('docs'), { message: 'Bucket not found', statusCode: '404' })
        refused(await anon.createBucket('anon-bucket'), { message: 'new row violates row-level security policy', statusCode: '403', code: 'AccessDenied' })
      })

      test('bad tokens: invalid JWT, expired JWT, wrong secret', async () => {
        const garbage = client('not-a-jwt')
        const e1 = refused(await garbage.listBuckets(), { message: 'Invalid Compact JWS', statusCode: '403', code: 'AccessDenied' })
        assert.equal(e1.status, 400)
        const expired = client(srv.userToken(uuid(), { exp: Math.floor(Date.now() / 1000) - 60 }))
        refused(await expired.listBuckets(), { message: '"exp" claim timestamp check failed', statusCode: '403', code: 'AccessDenied' })
        const forged = client(signJWT({ role: 'service_role' }, 'not-the-secret'))
        refused(await forged.listBuckets(), { message: 'signature verification failed', statusCode: '403', code: 'AccessDenied' })
      })
    })

    // -----------------------------------------------------------------------------------------
    describe('objects', () => {
      const B = 'objects'
      let files // service.from(B)
      before(async () => {
        ok(await service.createBucket(B))
        files = service.from(B)
      })

      test('upload a string (raw body, default content type), download it', async () => {
        const up = ok(await files.upload('hello.txt', 'hello, world'))
        assert.equal(up.path, 'hello.txt')
        assert.equal(up.fullPath, `${B}/hello.txt`)
        assert.match(up.id, UUID)
        const blob = ok(await files.download('hello.txt'))
        assert.ok(blob instanceof Blob)
        assert.equal(await blob.text(), 'hello, world')
        assert.equal(blob.type, 'text/plain;charset=utf-8') // the Blob constructor lower-cases the type
        assert.equal(ok(await files.info('hello.txt')).contentType, 'text/plain;charset=UTF-8')
      })

      test('upload a Buffer and a Uint8Array and an ArrayBuffer with contentType', async () => {
        const buf = pseudoRandomBytes(10_000, 7)
        ok(await files.upload('bin/buffer.bin', buf, { contentType: 'application/octet-stream' }))
        ok(await files.upload('bin/u8.bin', new Uint8Array(buf), { contentType: 'application/x-custom' }))
        ok(await files.upload('bin/ab.bin', buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length), { contentType: 'application/octet-stream' }))
        for (const [p, type] of [
          ['bin/buffer.bin', 'application/octet-stream'],
          ['bin/u8.bin', 'application/x-custom'],
          ['bin/ab.bin', 'application/octet-stream'],
        ]) {
          const blob = ok(await files.download(p))
          assert.equal(blob.type, type, p)
          assert.ok((await bytesOf(blob)).equals(buf), `${p}: bytes differ`)
        }
      })

      test('upload a Blob (multipart) with metadata; info returns the metadata', async () => {
        const bytes = pseudoRandomBytes(5_000, 3)
        const meta = { owner: 'alice', tags: ['x', 'y'], nested: { n: 1 } }
        ok(await files.upload('blob/pic.png', new Blob([bytes], { type: 'image/png' }), { metadata: meta, cacheControl: '120' }))
        const info = ok(await files.info('blob/pic.png'))
        assert.deepEqual(info.metadata, meta)
        assert.equal(info.contentType, 'image/png')
        assert.equal(info.cacheControl, 'max-age=120')
        assert.equal(info.size, bytes.length)
        assert.ok((await bytesOf(ok(await files.download('blob/pic.png')))).equals(bytes))
      })

      test('upload a File (multipart) keeps the part type, not the contentType option', async () => {
        const f = new File(['<svg/>'], 'x.svg', { type: 'image/svg+xml' })
        ok(await files.upload('blob/x.svg', f, { contentType: 'text/plain' }))
        assert.equal(ok(await files.info('blob/x.svg')).contentType, 'image/svg+xml')
      })

      test('upload raw with metadata (x-metadata) and cacheControl', async () => {
        ok(await files.upload('raw-meta.json', '{"k":1}', { contentType: 'application/json', metadata: { source: 'raw', n: 2 }, cacheControl: '60' }))
        const info = ok(await files.info('raw-meta.json'))
        assert.deepEqual(info.metadata, { source: 'raw', n: 2 })
        assert.equal(info.contentType, 'application/json')
        assert.equal(info.cacheControl, 'max-age=60')
      })

      test('upload a web ReadableStream (chunked, duplex half)', async () => {
        const bytes = pseudoRandomBytes(300_000, 11)
        ok(await files.upload('stream/web.bin', webStream(bytes), { contentType: 'application/octet-stream' }))
        assert.ok((await bytesOf(ok(await files.download('stream/web.bin')))).equals(bytes))
        assert.equal(ok(await files.info('stream/web.bin')).size, bytes.length)
      })

      test('upload a Node Readable stream (chunked, duplex half)', async () => {
        const bytes = pseudoRandomBytes(200_000, 13)
        const chunks = []
        for (let i = 0; i < bytes.length; i += 50_000) chunks.push(bytes.subarray(i, i + 50_000))
        ok(await files.upload('stream/node.bin', Readable.from(chunks), { contentType: 'application/octet-stream' }))
        assert.ok((await bytesOf(ok(await files.download('stream/node.bin')))).equals(bytes))
      })

      test('a few MiB: upload, download as Blob and as stream', async () => {
        const bytes = pseudoRandomBytes(6 << 20, 17)
        ok(await files.upload('big/six.bin', bytes, { contentType: 'application/octet-stream' }))
        const blob = ok(await files.download('big/six.bin'))
        assert.equal(blob.size, bytes.length)
        assert.equal(sha256(await bytesOf(blob)), sha256(bytes))
        const stream = ok(await files.download('big/six.bin').asStream())
        assert.equal(sha256(await readStream(stream)), sha256(bytes))
        // and streamed up (chunked) too
        ok(await files.upload('big/six-streamed.bin', webStream(bytes, 1 << 20), { contentType: 'application/octet-stream' }))
        assert.equal(sha256(await bytesOf(ok(await files.download('big/six-streamed.bin')))), sha256(bytes))
      })

      test('info: the camelCased fields storage-js returns', async () => {
        const body = 'info body'
        const up = ok(await files.upload('info/one.txt', body))
        const info = ok(await files.info('info/one.txt'))
        assert.deepEqual(Object.keys(info).sort(), ['bucketId', 'cacheControl', 'contentType', 'createdAt', 'etag', 'id', 'lastModified', 'metadata', 'name', 'size', 'version'])
        assert.equal(info.id, up.id)
        assert.equal(info.name, 'info/one.txt')
        assert.equal(info.bucketId, B)
        assert.equal(info.size, Buffer.byteLength(body))
        assert.equal(info.contentType, 'text/plain;charset=UTF-8')
        assert.equal(info.cacheControl, 'max-age=3600')
        assert.equal(info.etag, `"${md5(body)}"`)
        assert.deepEqual(info.metadata, {}) // no user metadata sent
        assert.equal(typeof info.version, 'string')
        assert.ok(info.version.length > 0)
        assert.match(info.createdAt, TIMESTAMP)
        assert.match(info.lastModified, TIMESTAMP)
      })

      test('exists: true, false, and a missing bucket throws', async () => {
        ok(await files.upload('exists/yes.txt', 'y'))
        assert.deepEqual(await files.exists('exists/yes.txt'), { data: true, error: null })
        const no = await files.exists('exists/no.txt')
        assert.equal(no.data, false)
        assert.equal(no.error.code, 'NoSuchKey')
        // storage-js 2.119.0: anything but NoSuchKey is thrown
        await assert.rejects(service.from('no-such-bucket').exists('x'), (e) => e instanceof StorageApiError && e.code === 'NoSuchBucket')
      })

      test('upsert: false refuses an existing key (409, content unchanged), true replaces it and keeps the id', async () => {
        const first = ok(await files.upload('upsert/a.txt', 'first'))
        refused(await files.upload('upsert/a.txt', 'second'), { message: 'The resource already exists', statusCode: '409', code: 'KeyAlreadyExists' })
        refused(await files.upload('upsert/a.txt', 'second', { upsert: false }), { message: 'The resource already exists', statusCode: '409' })
        assert.equal(await ok(await files.download('upsert/a.txt')).text(), 'first')
        const created = ok(await files.info('upsert/a.txt')).createdAt
        const second = ok(await files.upload('upsert/a.txt', 'second', { upsert: true }))
        assert.equal(second.id, first.id)
        assert.equal(await ok(await files.download('upsert/a.txt')).text(), 'second')
        const info = ok(await files.info('upsert/a.txt'))
        assert.equal(info.createdAt, created)
        assert.equal(info.etag, `"${md5('second')}"`)
        // a Blob (multipart) upsert too
        ok(await files.upload('upsert/a.txt', new Blob(['third'], { type: 'text/plain' }), { upsert: true }))
        assert.equal(await ok(await files.download('upsert/a.txt')).text(), 'third')
      })

      test('update replaces the content and keeps the id; on a missing key it creates', async () => {
        const up = ok(await files.upload('update/u.txt', 'v1'))
        const upd = ok(await files.update('update/u.txt', 'version two', { contentType: 'text/markdown', metadata: { v: 2 } }))
        assert.equal(upd.id, up.id)
        assert.equal(upd.fullPath, `${B}/update/u.txt`)
        assert.equal(await ok(await files.download('update/u.txt')).text(), 'version two')
        const info = ok(await files.info('update/u.txt'))
        assert.equal(info.contentType, 'text/markdown')
        assert.deepEqual(info.metadata, { v: 2 })
        ok(await files.update('update/u.txt', new Blob(['blob v3'], { type: 'text/plain' })))
        assert.equal(await ok(await files.download('update/u.txt')).text(), 'blob v3')
        assert.deepEqual(ok(await files.info('update/u.txt')).metadata, {}) // replaced wholesale
        ok(await files.update('update/new.txt', 'created by PUT'))
        assert.equal(await ok(await files.download('update/new.txt')).text(), 'created by PUT')
      })

      test('remove: several paths at once, missing ones skipped, names are not prefixes', async () => {
        ok(await files.upload('rm/a.txt', 'a'))
        ok(await files.upload('rm/b.txt', 'b'))
        ok(await files.upload('rm/keep/c.txt', 'c'))
        const removed = ok(await files.remove(['rm/a.txt', 'rm/b.txt', 'rm/missing.txt', 'rm/keep']))
        assert.deepEqual(removed.map((o) => o.name).sort(), ['rm/a.txt', 'rm/b.txt'])
        for (const o of removed) {
          assert.deepEqual(Object.keys(o).sort(), ['bucket_id', 'created_at', 'id', 'last_accessed_at', 'metadata', 'name', 'owner', 'owner_id', 'updated_at', 'user_metadata', 'version'])
          assert.equal(o.bucket_id, B)
          assert.equal(o.owner, '') // uploaded with the service key: no sub
          assert.equal(o.metadata.size, 1)
          assert.deepEqual(o.user_metadata, {})
          assert.match(o.id, UUID)
        }
        assert.equal((await files.exists('rm/a.txt')).data, false)
        assert.equal((await files.exists('rm/b.txt')).data, false)
        assert.equal((await files.exists('rm/keep/c.txt')).data, true)
        assert.deepEqual(ok(await service.from('no-such-bucket').remove(['x'])), [])
      })

      test('missing object / bucket: download, info, upload report 404', async () => {
        refused(await files.download('nope.txt'), { message: 'Object not found', statusCode: '404', code: 'NoSuchKey' })
        refused(await files.download('nope.txt').asStream(), { message: 'Object not found', statusCode: '404', code: 'NoSuchKey' })
        refused(await files.info('nope.txt'), { message: 'Object not found', statusCode: '404', code: 'NoSuchKey' })
        const nb = service.from('no-such-bucket')
        refused(await nb.download('x.txt'), { message: 'Bucket not found', statusCode: '404', code: 'NoSuchBucket' })
        refused(await nb.info('x.txt'), { message: 'Bucket not found', statusCode: '404', code: 'NoSuchBucket' })
        refused(await nb.upload('x.txt', 'x'), { message: 'Bucket not found', statusCode: '404', code: 'NoSuchBucket' })
        refused(await nb.upload('x.txt', new Blob(['x'])), { message: 'Bucket not found', statusCode: '404', code: 'NoSuchBucket' })
      })

      test('keys with spaces and punctuation round-trip; invalid keys are refused', async () => {
        const key = "odd/a b@+$,;=!'()*&.txt"
        ok(await files.upload(key, 'odd'))
        assert.equal(await ok(await files.download(key)).text(), 'odd')
        assert.equal(ok(await files.info(key)).name, key)
        assert.equal((await files.exists(key)).data, true)
        assert.deepEqual(ok(await files.remove([key])).map((o) => o.name), [key])
        refused(await files.upload('café.txt', 'x'), { message: 'Invalid key: café.txt', statusCode: '400', code: 'InvalidKey' })
        // storage-js strips leading/trailing slashes and collapses repeats on upload
        const up = ok(await files.upload('/slashes//x.txt/', 'x'))
        assert.equal(up.path, 'slashes/x.txt')
        assert.equal(await ok(await files.download('slashes/x.txt')).text(), 'x')
      })

      test('text/html is served as text/plain', async () => {
        ok(await files.upload('page.html', '<b>hi</b>', { contentType: 'text/html' }))
        const blob = ok(await files.download('page.html'))
        assert.match(blob.type, /^text\/plain/)
        assert.equal(ok(await files.info('page.html')).contentType, 'text/html')
      })

      test('zero-byte uploads and .emptyFolderPlaceholder (as the dashboard creates folders)', async () => {
        ok(await files.upload('empty/zero.txt', ''))
        assert.equal(ok(await files.info('empty/zero.txt')).size, 0)
        assert.equal(await ok(await files.download('empty/zero.txt')).text(), '')
        ok(await files.upload('empty/.emptyFolderPlaceholder', new Blob([])))
        assert.equal((await files.exists('empty/.emptyFolderPlaceholder')).data, true)
      })

      test('download options the server ignores (cacheNonce) still download', async () => {
        assert.equal(await ok(await files.download('hello.txt', { cacheNonce: 'n1' })).text(), 'hello, world')
      })

      test('the bytes are in the configured blob store', async () => {
        // Over STORAGE_INLINE_MAX (64 KiB by default): smaller objects live in PostgreSQL.
        const bytes = Buffer.from(`marker ${backend} ${uuid()} ${'.'.repeat(65 << 10)}`)
        ok(await files.upload('where/marker.txt', bytes))
        const roots = { file: join(srv.dir, 'data', 'blobs'), s3: join(srv.dir, 's3root', srv.s3?.bucket ?? '') }
        const found = (dir) => {
          for (const e of readdirSync(dir, { withFileTypes: true })) {
            const p = join(dir, e.name)
            if (e.isDirectory() ? found(p) : e.isFile() && statSync(p).size === bytes.length && readFileSync(p).equals(bytes)) return true
          }
          return false
        }
        assert.ok(found(roots[backend]), `marker not found under ${roots[backend]}`)
        const other = backend === 'file' ? join(srv.dir, 's3root') : join(srv.dir, 'data', 'blobs')
        assert.ok(!existsSync(other) || !found(other), `marker also under ${other}`)
      })

      test('throwOnError: refusals throw StorageApiError', async () => {
        const strict = client(srv.serviceKey).from(B).throwOnError()
        await assert.rejects(strict.download('nope.txt'), (e) => e instanceof StorageApiError && e.statusCode === '404' && e.status === 400)
        await assert.rejects(strict.upload('hello.txt', 'again'), (e) => e instanceof StorageApiError && e.statusCode === '409')
      })
    })

    // -----------------------------------------------------------------------------------------
    describe('public URLs', () => {
      before(async () => {
        ok(await service.createBucket('pub', { public: true }))
        ok(await service.createBucket('priv'))
      })

      test('getPublicUrl of a public bucket: fetched without auth gives the bytes', async () => {
        const bytes = pseudoRandomBytes(70_000, 5)
        ok(await service.from('pub').upload('img/p.png', new Blob([bytes], { type: 'image/png' })))
        const { data } = service.from('pub').getPublicUrl('img/p.png')
        assert.equal(data.publicUrl, `${api}/object/public/pub/img/p.png`)
        const res = await fetch(data.publicUrl)
        assert.equal(res.status, 200)
        assert.equal(res.headers.get('content-type'), 'image/png')
        assert.equal(res.headers.get('content-length'), String(bytes.length))
        assert.equal(res.headers.get('etag'), `"${md5(bytes)}"`)
        assert.ok(Buffer.from(await res.arrayBuffer()).equals(bytes))
      })

      test('getPublicUrl with download: Content-Disposition attachment', async () => {
        ok(await service.from('pub').upload('doc.txt', 'doc'))
        let res = await fetch(service.from('pub').getPublicUrl('doc.txt', { download: true }).data.publicUrl)
        assert.equal(res.status, 200)
        assert.equal(res.headers.get('content-disposition'), 'attachment;')
        await res.arrayBuffer()
        res = await fetch(service.from('pub').getPublicUrl('doc.txt', { download: 'my file.txt' }).data.publicUrl)
        assert.equal(res.status, 200)
        assert.equal(res.headers.get('content-disposition'), "attachment; filename=my%20file.txt; filename*=UTF-8''my%20file.txt")
        assert.equal(await res.text(), 'doc')
      })

      test('getPublicUrl of a private bucket: Bucket not found', async () => {
        ok(await service.from('priv').upload('secret.txt', 'secret'))
        const res = await fetch(service.from('priv').getPublicUrl('secret.txt').data.publicUrl)
        assert.equal(res.status, 400)
        assert.deepEqual(await res.json(), { statusCode: '404', code: 'NoSuchBucket', error: 'Bucket not found', message: 'Bucket not found' })
        const missing = await fetch(service.from('pub').getPublicUrl('missing.txt').data.publicUrl)
        assert.equal(missing.status, 400)
        assert.deepEqual(await missing.json(), { statusCode: '404', code: 'NoSuchKey', error: 'not_found', message: 'Object not found' })
      })
    })

    // -----------------------------------------------------------------------------------------
    describe('signed URLs and signed uploads', () => {
      const S = 'signing'
      let files
      before(async () => {
        ok(await service.createBucket(S))
        files = service.from(S)
        ok(await files.upload('dl/report.bin', pseudoRandomBytes(40_000, 31), { contentType: 'application/pdf' }))
        ok(await files.upload('dl/two words.txt', 'two words'))
      })

      test('createSignedUrl: fetched without auth gives the bytes; download option sets Content-Disposition', async () => {
        const { signedUrl } = ok(await files.createSignedUrl('dl/report.bin', 60))
        assert.ok(signedUrl.startsWith(`${api}/object/sign/${S}/dl/report.bin?token=`), signedUrl)
        const res = await fetch(signedUrl)
        assert.equal(res.status, 200)
        assert.equal(res.headers.get('content-type'), 'application/pdf')
        assert.ok(res.headers.get('expires'), 'a signed download carries Expires')
        assert.ok(Buffer.from(await res.arrayBuffer()).equals(pseudoRandomBytes(40_000, 31)))
        const named = ok(await files.createSignedUrl('dl/two words.txt', 60, { download: 'my copy.txt' })).signedUrl
        const res2 = await fetch(named)
        assert.equal(res2.status, 200)
        assert.equal(res2.headers.get('content-disposition'), "attachment; filename=my%20copy.txt; filename*=UTF-8''my%20copy.txt")
        assert.equal(await res2.text(), 'two words')
        const plain = ok(await files.createSignedUrl('dl/two words.txt', 60, { download: true })).signedUrl
        const res3 = await fetch(plain)
        assert.equal(res3.headers.get('content-disposition'), 'attachment;')
        await res3.arrayBuffer()
      })

      test('createSignedUrl refusals: missing object 404, a tampered token 400', async () => {
        refused(await files.createSignedUrl('dl/missing.bin', 60), { message: 'Object not found', statusCode: '404', code: 'NoSuchKey' })
        refused(await service.from('no-such-bucket').createSignedUrl('x', 60), { message: 'Object not found', statusCode: '404' })
        const { signedUrl } = ok(await files.createSignedUrl('dl/report.bin', 60))
        const u = new URL(signedUrl)
        u.pathname = u.pathname.replace('report.bin', 'other.bin')
        const res = await fetch(u)
        assert.equal(res.status, 400)
        const body = await res.json()
        assert.equal(body.statusCode, '400')
        assert.equal(body.error, 'InvalidSignature')
        const bad = new URL(signedUrl)
        bad.searchParams.set('token', bad.searchParams.get('token').slice(0, -4) + 'AAAA')
        const res2 = await fetch(bad)
        assert.equal(res2.status, 400)
        assert.equal((await res2.json()).error, 'InvalidJWT')
      })

      test('createSignedUrls: one entry per path, errors inline', async () => {
        const list = ok(await files.createSignedUrls(['dl/report.bin', 'dl/missing.bin', 'dl/two words.txt'], 120))
        assert.equal(list.length, 3)
        assert.deepEqual(list.map((e) => e.path), ['dl/report.bin', 'dl/missing.bin', 'dl/two words.txt'])
        assert.equal(list[0].error, null)
        assert.ok(list[0].signedUrl.startsWith(`${api}/object/sign/${S}/dl/report.bin?token=`))
        assert.deepEqual(
          { error: list[1].error, signedURL: list[1].signedURL, signedUrl: list[1].signedUrl },
          { error: 'Either the object does not exist or you do not have access to it', signedURL: null, signedUrl: null },
        )
        const res = await fetch(list[2].signedUrl)
        assert.equal(res.status, 200)
        assert.equal(await res.text(), 'two words')
      })

      test('createSignedUploadUrl + uploadToSignedUrl (no privileges needed to upload)', async () => {
        const signed = ok(await files.createSignedUploadUrl('up/new.bin'))
        assert.equal(signed.path, 'up/new.bin')
        assert.ok(signed.token)
        assert.ok(signed.signedUrl.startsWith(`${api}/object/upload/sign/${S}/up/new.bin?token=`))
        assert.equal((await files.exists('up/new.bin')).data, false)
        const bytes = pseudoRandomBytes(100_000, 37)
        const up = ok(await anon.from(S).uploadToSignedUrl('up/new.bin', signed.token, new Blob([bytes], { type: 'application/octet-stream' }), { metadata: { via: 'signed' } }))
        assert.deepEqual(up, { path: 'up/new.bin', fullPath: `${S}/up/new.bin` })
        assert.ok((await bytesOf(ok(await files.download('up/new.bin')))).equals(bytes))
        assert.deepEqual(ok(await files.info('up/new.bin')).metadata, { via: 'signed' })
        // raw and streamed bodies too
        const s2 = ok(await files.createSignedUploadUrl('up/raw.txt'))
        ok(await anon.from(S).uploadToSignedUrl('up/raw.txt', s2.token, 'raw signed', { contentType: 'text/plain' }))
        assert.equal(await ok(await files.download('up/raw.txt')).text(), 'raw signed')
        const s3 = ok(await files.createSignedUploadUrl('up/stream.bin'))
        ok(await anon.from(S).uploadToSignedUrl('up/stream.bin', s3.token, webStream(bytes, 10_000), { contentType: 'application/octet-stream' }))
        assert.ok((await bytesOf(ok(await files.download('up/stream.bin')))).equals(bytes))
      })

      test('signed upload onto an existing key: 409 unless upsert', async () => {
        refused(await files.createSignedUploadUrl('dl/two words.txt'), { message: 'The resource already exists', statusCode: '409' })
        const { token } = ok(await files.createSignedUploadUrl('dl/two words.txt', { upsert: true }))
        ok(await anon.from(S).uploadToSignedUrl('dl/two words.txt', token, 'replaced'))
        assert.equal(await ok(await files.download('dl/two words.txt')).text(), 'replaced')
        // a signed non-upsert URL whose key appeared meanwhile
        const late = ok(await files.createSignedUploadUrl('up/late.txt'))
        ok(await files.upload('up/late.txt', 'first'))
        refused(await anon.from(S).uploadToSignedUrl('up/late.txt', late.token, 'second'), { message: 'The resource already exists', statusCode: '409' })
        assert.equal(await ok(await files.download('up/late.txt')).text(), 'first')
      })

      test('a download token does not upload, an upload token does not download', async () => {
        const { signedUrl } = ok(await files.createSignedUrl('dl/report.bin', 60))
        const dlToken = new URL(signedUrl).searchParams.get('token')
        const e = refused(await anon.from(S).uploadToSignedUrl('dl/report.bin', dlToken, 'x'), { message: 'Token is not scoped for upload', statusCode: '400' })
        assert.equal(e.code, 'InvalidSignature')
        const { token } = ok(await files.createSignedUploadUrl('up/scoped.txt'))
        const res = await fetch(`${api}/object/sign/${S}/up/scoped.txt?token=${token}`)
        assert.equal(res.status, 400)
        assert.equal((await res.json()).error, 'InvalidSignature')
      })
    })

    // -----------------------------------------------------------------------------------------
    describe('refusals as the client reports them', () => {
      before(async () => {
        ok(await service.createBucket('small', { public: false, fileSizeLimit: '1KB' }))
        ok(await service.createBucket('pngs', { public: false, allowedMimeTypes: ['image/png'] }))
        ok(await service.createBucket('guarded'))
        ok(await service.from('guarded').upload('there.txt', 'there'))
      })

      const TOO_LARGE = { message: 'The object exceeded the maximum allowed size', statusCode: '413', code: 'EntityTooLarge' }

      test('413 over a bucket limit: string, Buffer, Blob (multipart), stream (chunked)', async () => {
        const small = service.from('small')
        ok(await small.upload('fits.txt', 'x'.repeat(1000)))
        refused(await small.upload('s.txt', 'x'.repeat(1001)), TOO_LARGE)
        refused(await small.upload('b.bin', Buffer.alloc(5000)), TOO_LARGE)
        refused(await small.upload('blob.bin', new Blob([Buffer.alloc(1001)])), TOO_LARGE)
        refused(await small.upload('stream.bin', webStream(Buffer.alloc(50_000), 1000)), TOO_LARGE)
        for (const p of ['s.txt', 'b.bin', 'blob.bin', 'stream.bin']) assert.equal((await small.exists(p)).data, false, p)
      })

      test('413 over the global UPLOAD_FILE_SIZE_LIMIT', async () => {
        refused(await service.from('objects').upload('huge.bin', webStream(Buffer.alloc(GLOBAL_LIMIT + 1), 1 << 20)), TOO_LARGE)
      })

      test('415 MIME refused; an allowed type passes', async () => {
        const pngs = service.from('pngs')
        refused(await pngs.upload('a.txt', 'text'), { message: 'mime type text/plain;charset=UTF-8 is not supported', statusCode: '415', code: 'InvalidMimeType' })
        refused(await pngs.upload('a.jpg', new Blob(['jpg'], { type: 'image/jpeg' })), { message: 'mime type image/jpeg is not supported', statusCode: '415', code: 'InvalidMimeType' })
        ok(await pngs.upload('a.png', new Blob(['png'], { type: 'image/png' })))
        ok(await pngs.upload('b.png', Buffer.from('png'), { contentType: 'image/png' }))
      })

      test('403 RLS: anon key, no policy', async () => {
        const g = anon.from('guarded')
        const RLS = { message: 'new row violates row-level security policy', statusCode: '403', code: 'AccessDenied' }
        refused(await g.upload('anon.txt', 'x'), RLS)
        refused(await g.upload('anon.bin', new Blob(['x'])), RLS)
        refused(await g.upload('anon.bin', webStream(Buffer.alloc(10))), RLS)
        refused(await g.update('there.txt', 'overwritten'), RLS)
        // reads of a private bucket: the row is hidden, never a 403
        refused(await g.download('there.txt'), { message: 'Object not found', statusCode: '404', code: 'NoSuchKey' })
        refused(await g.info('there.txt'), { message: 'Object not found', statusCode: '404', code: 'NoSuchKey' })
        assert.equal((await g.exists('there.txt')).data, false)
        // delete: hidden rows are skipped
        assert.deepEqual(ok(await g.remove(['there.txt'])), [])
        assert.equal(await ok(await service.from('guarded').download('there.txt')).text(), 'there')
      })

      test('404 missing object and bucket', async () => {
        refused(await service.from('guarded').download('missing.txt'), { message: 'Object not found', statusCode: '404', code: 'NoSuchKey' })
        refused(await service.from('missing-bucket').download('x'), { message: 'Bucket not found', statusCode: '404', code: 'NoSuchBucket' })
      })
    })

    // -----------------------------------------------------------------------------------------
    describe('list and listV2', () => {
      const L = 'listing'
      let files
      before(async () => {
        ok(await service.createBucket(L))
        ok(await service.createBucket('list')) // a bucket named like the route must not catch list()
        ok(await service.createBucket('list-v2'))
        files = service.from(L)
        for (const p of ['folder/a.txt', 'folder/b.txt', 'folder/deep/c.txt', 'top.txt']) ok(await files.upload(p, p))
      })

      test('list: immediate children, folders without id, search, paging; never an upload', async () => {
        const root = ok(await files.list())
        assert.deepEqual(root.map((e) => e.name), ['folder', 'top.txt'])
        assert.equal(root[0].id, null)
        assert.equal(root[0].metadata, null)
        assert.match(root[1].id, UUID)
        assert.equal(root[1].metadata.size, 'top.txt'.length)
        assert.deepEqual(ok(await files.list('folder')).map((e) => e.name), ['a.txt', 'b.txt', 'deep'])
        assert.deepEqual(ok(await files.list('folder', { search: 'a' })).map((e) => e.name), ['a.txt'])
        assert.deepEqual(ok(await files.list('folder', { limit: 1, offset: 1 })).map((e) => e.name), ['b.txt'])
        assert.deepEqual(await srv.sql(`select name from storage.objects where bucket_id in ('list', 'list-v2')`), [])
      })

      test('listV2: flat and delimited listings, cursor pages', async () => {
        const flat = ok(await files.listV2({ prefix: 'folder/' }))
        assert.deepEqual(flat.objects.map((o) => o.name), ['folder/a.txt', 'folder/b.txt', 'folder/deep/c.txt'])
        assert.deepEqual(flat.folders, [])
        assert.equal(flat.hasNext, false)
        assert.ok(!('nextCursor' in flat))
        const delim = ok(await files.listV2({ prefix: 'folder/', with_delimiter: true }))
        assert.deepEqual(delim.folders.map((f) => f.name), ['folder/deep/'])
        assert.deepEqual(delim.objects.map((o) => o.name), ['folder/a.txt', 'folder/b.txt'])
        const p1 = ok(await files.listV2({ prefix: 'folder/', limit: 2 }))
        assert.equal(p1.hasNext, true)
        assert.equal(p1.objects.length, 2)
        const p2 = ok(await files.listV2({ prefix: 'folder/', limit: 2, cursor: p1.nextCursor }))
        assert.deepEqual(p2.objects.map((o) => o.name), ['folder/deep/c.txt'])
        assert.equal(p2.hasNext, false)
        assert.deepEqual(await srv.sql(`select name from storage.objects where bucket_id in ('list', 'list-v2')`), [])
      })
    })

    // -----------------------------------------------------------------------------------------
    describe('move and copy', () => {
      const M = 'moving'
      let files
      before(async () => {
        ok(await service.createBucket(M))
        ok(await service.createBucket('moved-to'))
        files = service.from(M)
        for (const p of ['mv/src.txt', 'mv/taken.txt', 'cp/src.txt', 'cp/taken.txt']) ok(await files.upload(p, p))
      })

      test('move: within and across buckets; onto an existing key 409; missing source 404', async () => {
        const id = ok(await files.info('mv/src.txt')).id
        assert.deepEqual(ok(await files.move('mv/src.txt', 'mv/dst.txt')), { message: 'Successfully moved' })
        assert.equal((await files.exists('mv/src.txt')).data, false)
        assert.equal(await ok(await files.download('mv/dst.txt')).text(), 'mv/src.txt')
        assert.equal(ok(await files.info('mv/dst.txt')).id, id)
        refused(await files.move('mv/dst.txt', 'mv/taken.txt'), { message: 'The resource already exists', statusCode: '409' })
        ok(await files.move('mv/dst.txt', 'from-moving.txt', { destinationBucket: 'moved-to' }))
        assert.equal(await ok(await service.from('moved-to').download('from-moving.txt')).text(), 'mv/src.txt')
        refused(await files.move('mv/nope.txt', 'mv/x.txt'), { message: 'Object not found', statusCode: '404' })
      })

      test('copy: within and across buckets; onto an existing key 409; metadata options', async () => {
        assert.deepEqual(ok(await files.copy('cp/src.txt', 'cp/dst.txt')), { path: `${M}/cp/dst.txt` })
        assert.equal(await ok(await files.download('cp/src.txt')).text(), 'cp/src.txt')
        assert.equal(await ok(await files.download('cp/dst.txt')).text(), 'cp/src.txt')
        refused(await files.copy('cp/src.txt', 'cp/taken.txt'), { message: 'The resource already exists', statusCode: '409' })
        assert.deepEqual(ok(await files.copy('cp/src.txt', 'copied.txt', { destinationBucket: 'moved-to' })), { path: 'moved-to/copied.txt' })
        assert.equal(await ok(await service.from('moved-to').download('copied.txt')).text(), 'cp/src.txt')
        ok(await files.copy('cp/src.txt', 'cp/meta.txt', { copyMetadata: false, metadata: { cacheControl: 'max-age=77' } }))
        assert.equal(ok(await files.info('cp/meta.txt')).cacheControl, 'max-age=77')
      })
    })

    // -----------------------------------------------------------------------------------------
    describe('RLS policies created in SQL', () => {
      const A = uuid()
      const B = uuid()
      let userA, userB

      before(async () => {
        ok(await service.createBucket('avatars'))
        ok(await service.createBucket('members'))
        ok(await service.createBucket('assets', { public: true }))
        await srv.sql(`
          -- spec §5.5: a folder per user in 'avatars'
          create policy avatars_owner_read on storage.objects for select to authenticated
            using (bucket_id = 'avatars' and (storage.foldername(name))[1] = (select auth.uid())::text);
          create policy avatars_owner_insert on storage.objects for insert to authenticated
            with check (bucket_id = 'avatars' and (storage.foldername(name))[1] = (select auth.uid())::text);
          create policy avatars_owner_update on storage.objects for update to authenticated
            using (owner_id = (select auth.uid())::text);
          create policy avatars_owner_delete on storage.objects for delete to authenticated
            using (owner_id = (select auth.uid())::text);
          -- 'members': any signed-in user reads and writes, anon nothing
          create policy members_read on storage.objects for select to authenticated using (bucket_id = 'members');
          create policy members_insert on storage.objects for insert to authenticated with check (bucket_id = 'members');
          -- buckets: signed-in users create buckets and see their own
          create policy buckets_own_read on storage.buckets for select to authenticated
            using (owner_id = (select auth.uid())::text);
          create policy buckets_create on storage.buckets for insert to authenticated with check (true);
        `)
        userA = client(srv.userToken(A))
        userB = client(srv.userToken(B))
      })

      test('folder per user: A writes and reads A/…, not B/…', async () => {
        const a = userA.from('avatars')
        const png = pseudoRandomBytes(3000, 21)
        const up = ok(await a.upload(`${A}/avatar.png`, new Blob([png], { type: 'image/png' })))
        assert.equal(up.fullPath, `avatars/${A}/avatar.png`)
        assert.ok((await bytesOf(ok(await a.download(`${A}/avatar.png`)))).equals(png))
        assert.equal(ok(await a.info(`${A}/avatar.png`)).size, png.length)
        const [[owner, ownerId]] = await srv.sql(`select coalesce(owner::text, ''), owner_id from storage.objects where bucket_id = 'avatars' and name = '${A}/avatar.png'`)
        assert.equal(owner, A)
        assert.equal(ownerId, A)
        refused(await a.upload(`${B}/intruder.png`, new Blob([png], { type: 'image/png' })), { message: 'new row violates row-level security policy', statusCode: '403', code: 'AccessDenied' })
        refused(await a.upload('no-folder.png', 'x'), { message: 'new row violates row-level security policy', statusCode: '403' })
      })

      test("folder per user: B's files are invisible to A", async () => {
        ok(await userB.from('avatars').upload(`${B}/b.txt`, 'bee'))
        assert.equal(await ok(await userB.from('avatars').download(`${B}/b.txt`)).text(), 'bee')
        const a = userA.from('avatars')
        refused(await a.download(`${B}/b.txt`), { message: 'Object not found', statusCode: '404', code: 'NoSuchKey' })
        refused(await a.info(`${B}/b.txt`), { message: 'Object not found', statusCode: '404', code: 'NoSuchKey' })
        assert.equal((await a.exists(`${B}/b.txt`)).data, false)
        // A's upsert or update over B's file is refused; B's file is untouched
        refused(await a.upload(`${B}/b.txt`, 'mine now', { upsert: true }), { message: 'new row violates row-level security policy', statusCode: '403' })
        refused(await a.update(`${B}/b.txt`, 'mine now'), { message: 'new row violates row-level security policy', statusCode: '403' })
        assert.deepEqual(ok(await a.remove([`${B}/b.txt`])), [])
        assert.equal(await ok(await userB.from('avatars').download(`${B}/b.txt`)).text(), 'bee')
      })

      test('folder per user: A upserts, updates and removes own files', async () => {
        const a = userA.from('avatars')
        const first = ok(await a.upload(`${A}/notes.txt`, 'one'))
        refused(await a.upload(`${A}/notes.txt`, 'two'), { message: 'The resource already exists', statusCode: '409' })
        assert.equal(ok(await a.upload(`${A}/notes.txt`, 'two', { upsert: true })).id, first.id)
        assert.equal(ok(await a.update(`${A}/notes.txt`, 'three')).id, first.id)
        assert.equal(await ok(await a.download(`${A}/notes.txt`)).text(), 'three')
        assert.deepEqual(ok(await a.remove([`${A}/notes.txt`])).map((o) => o.name), [`${A}/notes.txt`])
        assert.equal((await a.exists(`${A}/notes.txt`)).data, false)
      })

      test('folder per user: signed URLs follow the policies', async () => {
        const a = userA.from('avatars')
        ok(await a.upload(`${A}/signed.txt`, 'signed by A'))
        const res = await fetch(ok(await a.createSignedUrl(`${A}/signed.txt`, 60)).signedUrl)
        assert.equal(await res.text(), 'signed by A')
        refused(await a.createSignedUrl(`${B}/b.txt`, 60), { message: 'Object not found', statusCode: '404' })
        const many = ok(await a.createSignedUrls([`${A}/signed.txt`, `${B}/b.txt`], 60))
        assert.equal(many[0].error, null)
        assert.equal(many[1].signedUrl, null)
        // signing an upload needs the INSERT policy; the signed upload is then A's
        refused(await a.createSignedUploadUrl(`${B}/via-signed.txt`), { message: 'new row violates row-level security policy', statusCode: '403' })
        const { token } = ok(await a.createSignedUploadUrl(`${A}/via-signed.txt`))
        ok(await anon.from('avatars').uploadToSignedUrl(`${A}/via-signed.txt`, token, 'signed upload'))
        const [[ownerId]] = await srv.sql(`select owner_id from storage.objects where bucket_id = 'avatars' and name = '${A}/via-signed.txt'`)
        assert.equal(ownerId, A)
        assert.equal(await ok(await a.download(`${A}/via-signed.txt`)).text(), 'signed upload')
      })

      test('folder per user: anon can neither write nor read', async () => {
        const n = anon.from('avatars')
        refused(await n.upload(`${A}/anon.txt`, 'x'), { message: 'new row violates row-level security policy', statusCode: '403' })
        refused(await n.download(`${A}/avatar.png`), { message: 'Object not found', statusCode: '404' })
      })

      test('authenticated vs anon on a bucket with authenticated-only policies', async () => {
        const user = client(srv.userToken(uuid()))
        ok(await user.from('members').upload('m.txt', 'members only'))
        assert.equal(await ok(await userB.from('members').download('m.txt')).text(), 'members only')
        assert.equal((await userA.from('members').exists('m.txt')).data, true)
        refused(await anon.from('members').download('m.txt'), { message: 'Object not found', statusCode: '404' })
        assert.equal((await anon.from('members').exists('m.txt')).data, false)
        refused(await anon.from('members').upload('anon.txt', 'x'), { message: 'new row violates row-level security policy', statusCode: '403' })
        // The only UPDATE/DELETE policies are §5.5's owner ones (which name no bucket): another
        // member's upsert over the key is refused, and their remove skips it.
        refused(await userB.from('members').upload('m.txt', 'again', { upsert: true }), { message: 'new row violates row-level security policy', statusCode: '403' })
        assert.deepEqual(ok(await userB.from('members').remove(['m.txt'])), [])
        assert.equal(await ok(await user.from('members').download('m.txt')).text(), 'members only')
        // the owner may (owner_id policies)
        ok(await user.from('members').upload('m.txt', 'again', { upsert: true }))
        assert.deepEqual(ok(await user.from('members').remove(['m.txt'])).map((o) => o.name), ['m.txt'])
      })

      test('public bucket without a SELECT policy: public URL, anon info and download work; anon writes do not', async () => {
        const bytes = pseudoRandomBytes(4096, 9)
        ok(await service.from('assets').upload('logo.png', bytes, { contentType: 'image/png' }))
        const res = await fetch(anon.from('assets').getPublicUrl('logo.png').data.publicUrl)
        assert.equal(res.status, 200)
        assert.ok(Buffer.from(await res.arrayBuffer()).equals(bytes))
        // /object/info/public with the anon key
        const infoRes = await fetch(`${api}/object/info/public/assets/logo.png`, { headers: { Authorization: `Bearer ${srv.anonKey}` } })
        assert.equal(infoRes.status, 200)
        const info = await infoRes.json()
        assert.equal(info.name, 'logo.png')
        assert.equal(info.size, bytes.length)
        assert.equal(info.content_type, 'image/png')
        // storage-js info()/download()/exists() with the anon key (optional-auth routes)
        assert.equal(ok(await anon.from('assets').info('logo.png')).size, bytes.length)
        assert.ok((await bytesOf(ok(await anon.from('assets').download('logo.png')))).equals(bytes))
        assert.equal((await anon.from('assets').exists('logo.png')).data, true)
        assert.ok((await bytesOf(ok(await userA.from('assets').download('logo.png')))).equals(bytes))
        refused(await anon.from('assets').upload('anon.png', bytes, { contentType: 'image/png' }), { message: 'new row violates row-level security policy', statusCode: '403' })
        assert.deepEqual(ok(await anon.from('assets').remove(['logo.png'])), [])
      })

      test('bucket policies: users create buckets and list only their own; anon cannot create', async () => {
        assert.deepEqual(ok(await userA.createBucket('bucket-of-a')), { name: 'bucket-of-a' })
        const own = ok(await userA.listBuckets())
        assert.deepEqual(own.map((b) => b.name), ['bucket-of-a'])
        assert.equal(own[0].owner, A)
        assert.equal(ok(await userA.getBucket('bucket-of-a')).owner, A)
        assert.deepEqual(ok(await userB.listBuckets()), [])
        refused(await userB.getBucket('bucket-of-a'), { message: 'Bucket not found', statusCode: '404' })
        refused(await userB.updateBucket('bucket-of-a', { public: true }), { message: 'Bucket not found', statusCode: '404' })
        refused(await anon.createBucket('bucket-of-anon'), { message: 'new row violates row-level security policy', statusCode: '403' })
        assert.ok(ok(await service.listBuckets()).some((b) => b.name === 'bucket-of-a'))
      })
    })
  })
}
