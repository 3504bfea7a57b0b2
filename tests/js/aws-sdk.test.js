// The S3 protocol from the AWS SDK for JavaScript v3: the unmodified @aws-sdk/client-s3 and
// @aws-sdk/lib-storage (pinned in package.json) with their defaults, against `storage serve` on
// each blob backend, at both endpoints an app configures (<url>/s3, and <url>/storage/v1/s3
// where Supabase's gateway serves it), path-style, signed with the server-wide key pair
// (S3_PROTOCOL_ACCESS_KEY_ID/_SECRET) or, in session-token mode, with the tenant id, the anon
// key and a user's JWT under RLS.
//
// Every request the SDK sends is recorded by a middleware of our own at the last step before the
// wire (after signing and the checksum middleware), with its answer, so the tests assert the
// conversation (operations, part sizes, the payload hash and aws-chunked headers the SDK chose,
// statuses, and that nothing was retried) besides the outcome: the bytes (SHA-256), ETags,
// listings, the rows' owners (psql).
//
// lib-storage's Upload cuts its input into Buffers, and for a Buffer the SDK signs the payload's
// SHA-256 and sends its CRC32 as an x-amz-checksum-crc32 header; it sends aws-chunked bodies
// (STREAMING-UNSIGNED-PAYLOAD-TRAILER with an x-amz-checksum-crc32 trailer) for stream bodies,
// i.e. PutObject and UploadPart given a Readable. Both paths are exercised with the SDK's
// defaults: the 200 MiB through Upload, streams through PutObject and UploadPart.

import assert from 'node:assert/strict'
import { createCipheriv, createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { after, before, describe, test as nodeTest } from 'node:test'

import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'

import { startStorage, uuid } from './harness.js'

// The SDK's defaults whatever the developer's environment says: the SDK reads AWS_* variables
// and the shared config file (AWS_REQUEST_CHECKSUM_CALCULATION=when_required, for one, turns the
// aws-chunked bodies off), so the test process drops them (the servers it starts inherit that).
for (const name of Object.keys(process.env)) if (name.startsWith('AWS_')) delete process.env[name]
process.env.AWS_CONFIG_FILE = process.env.AWS_SHARED_CREDENTIALS_FILE = '/dev/null'

const MiB = 1 << 20
const KEY_ID = 'aws-sdk-test-key'
const SECRET = 'aws-sdk-test-secret'
const REGION = 'us-east-1'

// Bounds, so a wedged server fails the run instead of hanging it. The 200 MiB round trip takes
// a few seconds on an idle 2-core machine.
const TEST_TIMEOUT = 120_000
const HOOK_TIMEOUT = 120_000 // starting the server: initdb, migrations, versitygw
const test = (name, fn) => nodeTest(name, { timeout: TEST_TIMEOUT }, fn)

const md5 = (b) => createHash('md5').update(b).digest('hex')
const sha256 = (b) => createHash('sha256').update(b).digest('hex')

/**
 * An S3Client as an app configures one for Supabase Storage (endpoint, region, path style,
 * credentials; everything else the SDK's defaults), plus `requests`: every request it sent, in
 * the order the answers came, as { op, method, path, query, length, sha256, encoding, trailer,
 * decodedLength, crc32, status }. Retries pass through the recorder too, so a request the SDK
 * had to repeat shows up twice.
 */
function s3Client(endpoint, credentials) {
  const client = new S3Client({ endpoint, region: REGION, forcePathStyle: true, credentials })
  const requests = []
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const h = args.request.headers
      const e = {
        op: context.commandName.replace(/Command$/, ''),
        method: args.request.method,
        path: args.request.path,
        query: { ...args.request.query },
        length: h['content-length'],
        sha256: h['x-amz-content-sha256'],
        encoding: h['content-encoding'],
        trailer: h['x-amz-trailer'],
        decodedLength: h['x-amz-decoded-content-length'],
        crc32: h['x-amz-checksum-crc32'],
      }
      try {
        const out = await next(args)
        e.status = out.response.statusCode
        return out
      } catch (err) {
        e.status = err.$metadata?.httpStatusCode ?? err.$response?.statusCode
        throw err
      } finally {
        requests.push(e)
      }
    },
    { step: 'deserialize', name: 'recordRequests', priority: 'high' },
  )
  client.requests = requests
  return client
}

/** Asserts promise rejects with the S3 error of this Code (the SDK's name), HTTP status and Message. */
async function refused(promise, { code, status, message }) {
  await assert.rejects(promise, (err) => {
    assert.deepEqual({ code: err.name, status: err.$metadata?.httpStatusCode, message: err.message }, { code, status, message })
    return true
  })
}

/** The SHA-256 (hex) and length of a GetObject body, read as a stream. */
async function digestBody(body) {
  const h = createHash('sha256')
  let n = 0
  for await (const b of body) {
    h.update(b)
    n += b.length
  }
  return { sha256: h.digest('hex'), length: n }
}

/**
 * A deterministic stream of size pseudo-random bytes (the AES-128-CTR keystream of seed, pushed
 * in pieces of at most `piece` bytes), generated as it is read: nothing holds the whole. Its
 * `sums` fill in as it is read: the SHA-256 of everything, and the MD5 of every partSize-sized
 * part (to predict a multipart ETag).
 */
function keystream(size, seed, { piece = MiB, partSize = 16 * MiB } = {}) {
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, seed), Buffer.alloc(16))
  const zeros = Buffer.alloc(piece)
  const whole = createHash('sha256')
  const partMD5s = []
  let part = createHash('md5')
  let inPart = 0
  let left = size
  const sums = { sha256: undefined, partMD5s }
  const stream = new Readable({
    read() {
      if (left === 0) {
        if (inPart > 0) partMD5s.push(part.digest())
        sums.sha256 = whole.digest('hex')
        this.push(null)
        return
      }
      const n = Math.min(left, piece, partSize - inPart)
      left -= n
      const b = cipher.update(zeros.subarray(0, n))
      whole.update(b)
      part.update(b)
      if ((inPart += n) === partSize) {
        partMD5s.push(part.digest())
        part = createHash('md5')
        inPart = 0
      }
      this.push(b)
    },
  })
  stream.sums = sums
  return stream
}

/** The first n bytes of keystream(…, seed), as one Buffer (for small sizes). */
function keystreamBytes(n, seed) {
  return createCipheriv('aes-128-ctr', Buffer.alloc(16, seed), Buffer.alloc(16)).update(Buffer.alloc(n))
}

/** The ETag of a multipart object: the MD5 of the parts' MD5s, then "-" and the part count. */
function multipartETag(partMD5s) {
  return `"${md5(Buffer.concat(partMD5s))}-${partMD5s.length}"`
}

const SIGNED_HASH = /^[0-9a-f]{64}$/
const EMPTY_SHA256 = sha256('')
const CRC32_B64 = /^[A-Za-z0-9+/]{6}==$/

for (const backend of ['file', 's3']) {
  describe(`@aws-sdk/client-s3 and lib-storage against storage serve (${backend} backend)`, () => {
    let srv

    before(async () => {
      srv = await startStorage({ backend, env: { S3_PROTOCOL_ACCESS_KEY_ID: KEY_ID, S3_PROTOCOL_ACCESS_KEY_SECRET: SECRET } })
    }, { timeout: HOOK_TIMEOUT })
    after(async () => {
      await srv?.stop()
    }, { timeout: HOOK_TIMEOUT })

    const keyPair = (prefix) => s3Client(`${srv.url}${prefix}`, { accessKeyId: KEY_ID, secretAccessKey: SECRET })

    // The 200 MiB goes through one endpoint per backend (the two crossed), the rest through both.
    const bigPrefix = backend === 'file' ? '/s3' : '/storage/v1/s3'

    test(`200 MiB through lib-storage's Upload (16 MiB parts, 8 at a time) at ${bigPrefix}, and back`, async () => {
      const c = keyPair(bigPrefix)
      const bucket = 'big'
      await c.send(new CreateBucketCommand({ Bucket: bucket }))
      const size = 200 * MiB
      const body = keystream(size, 1)
      const upload = new Upload({ client: c, params: { Bucket: bucket, Key: 'dir/200 MiB.bin', Body: body }, partSize: 16 * MiB, queueSize: 8 })
      const done = await upload.done()
      const etag = multipartETag(body.sums.partMD5s)
      assert.equal(body.sums.partMD5s.length, 13)
      assert.equal(done.ETag, etag)
      assert.equal(done.Bucket, bucket)
      assert.equal(done.Key, 'dir/200 MiB.bin')

      // The conversation: one create, 13 parts of 16 MiB (the last 8 MiB), each a signed
      // payload with its CRC32 in a header, one complete; all answered 200, none repeated.
      const path = `${bigPrefix}/${bucket}/dir/200%20MiB.bin`
      const [create, ...rest] = c.requests.slice(1) // [0] is CreateBucket
      const complete = rest.pop()
      assert.deepEqual(
        { op: create.op, method: create.method, path: create.path, query: create.query, status: create.status },
        { op: 'CreateMultipartUpload', method: 'POST', path, query: { uploads: '' }, status: 200 },
      )
      const uploadId = complete.query.uploadId
      assert.ok(uploadId)
      const parts = rest.sort((a, b) => Number(a.query.partNumber) - Number(b.query.partNumber))
      assert.deepEqual(
        parts.map((p) => ({ op: p.op, method: p.method, path: p.path, query: p.query, length: p.length, encoding: p.encoding, status: p.status })),
        Array.from({ length: 13 }, (_, i) => ({
          op: 'UploadPart',
          method: 'PUT',
          path,
          query: { 'x-id': 'UploadPart', partNumber: String(i + 1), uploadId },
          length: String(i < 12 ? 16 * MiB : 8 * MiB),
          encoding: undefined,
          status: 200,
        })),
      )
      for (const p of parts) {
        assert.match(p.sha256, SIGNED_HASH)
        assert.match(p.crc32, CRC32_B64)
      }
      assert.deepEqual(
        { op: complete.op, method: complete.method, path: complete.path, query: complete.query, status: complete.status },
        { op: 'CompleteMultipartUpload', method: 'POST', path, query: { uploadId }, status: 200 },
      )

      const got = await c.send(new GetObjectCommand({ Bucket: bucket, Key: 'dir/200 MiB.bin' }))
      assert.equal(got.ContentLength, size)
      assert.equal(got.ETag, etag)
      assert.deepEqual(await digestBody(got.Body), { sha256: body.sums.sha256, length: size })
    })

    for (const prefix of ['/s3', '/storage/v1/s3']) {
      const tag = prefix === '/s3' ? 'root' : 'gateway' // bucket names per endpoint

      test(`PutObject, GetObject, ListObjectsV2, DeleteObject at ${prefix}`, async () => {
        const c = keyPair(prefix)
        const bucket = `small-${tag}`
        await c.send(new CreateBucketCommand({ Bucket: bucket }))
        const key = "notes/a b (1)!'*,;=@&$+.txt"
        const text = 'hello from the AWS SDK\n'
        const put = await c.send(
          new PutObjectCommand({ Bucket: bucket, Key: key, Body: text, ContentType: 'text/plain', CacheControl: 'max-age=60', Metadata: { origin: 'aws-sdk' } }),
        )
        assert.equal(put.ETag, `"${md5(text)}"`)
        await c.send(new PutObjectCommand({ Bucket: bucket, Key: 'notes/empty', Body: '' }))

        const got = await c.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
        assert.deepEqual(
          { body: await got.Body.transformToString(), type: got.ContentType, length: got.ContentLength, etag: got.ETag, cache: got.CacheControl, meta: got.Metadata },
          { body: text, type: 'text/plain', length: text.length, etag: `"${md5(text)}"`, cache: 'max-age=60', meta: { origin: 'aws-sdk' } },
        )

        const list = await c.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'notes/' }))
        assert.deepEqual(
          { keyCount: list.KeyCount, truncated: list.IsTruncated, contents: list.Contents.map((o) => ({ key: o.Key, size: o.Size, etag: o.ETag })) },
          {
            keyCount: 2,
            truncated: false,
            contents: [
              { key, size: text.length, etag: `"${md5(text)}"` },
              { key: 'notes/empty', size: 0, etag: `"${md5('')}"` },
            ],
          },
        )

        const del = await c.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }))
        assert.equal(del.$metadata.httpStatusCode, 204)
        await refused(c.send(new GetObjectCommand({ Bucket: bucket, Key: key })), { code: 'NoSuchKey', status: 404, message: 'Object not found' })
        const after = await c.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'notes/' }))
        assert.deepEqual(after.Contents.map((o) => o.Key), ['notes/empty'])

        // Every request went once and was answered as asserted above: no retries hid a failure.
        assert.deepEqual(
          c.requests.map((r) => [r.op, r.status]),
          [
            ['CreateBucket', 200],
            ['PutObject', 200],
            ['PutObject', 200],
            ['GetObject', 200],
            ['ListObjectsV2', 200],
            ['DeleteObject', 204],
            ['GetObject', 404],
            ['ListObjectsV2', 200],
          ],
        )
        for (const r of c.requests) assert.ok(r.path.startsWith(`${prefix}/${bucket}`), r.path)
      })

      test(`aws-chunked bodies with CRC32 trailers: PutObject and UploadPart from streams at ${prefix}`, async () => {
        const c = keyPair(prefix)
        const bucket = `chunked-${tag}`
        await c.send(new CreateBucketCommand({ Bucket: bucket }))

        // PutObject: 9 MiB + 7 bytes, read in pieces of 3 MiB - 1 (aws-chunked chunks follow them).
        const size = 9 * MiB + 7
        const body = keystream(size, 2, { piece: 3 * MiB - 1, partSize: size })
        await c.send(new PutObjectCommand({ Bucket: bucket, Key: 'streamed.bin', Body: body, ContentLength: size }))
        const got = await c.send(new GetObjectCommand({ Bucket: bucket, Key: 'streamed.bin' }))
        assert.equal(got.ETag, `"${body.sums.partMD5s[0].toString('hex')}"`)
        assert.deepEqual(await digestBody(got.Body), { sha256: body.sums.sha256, length: size })

        // A multipart upload whose parts are streams: 5 MiB, then 1 KiB + 3.
        const key = 'parts/streamed parts.bin'
        const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: 'application/x-test' }))
        const sizes = [5 * MiB, 1024 + 3]
        const partStreams = sizes.map((n, i) => keystream(n, 3 + i, { piece: 256 * 1024, partSize: n }))
        const etags = []
        for (const [i, s] of partStreams.entries()) {
          const r = await c.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: s, ContentLength: sizes[i] }))
          assert.equal(r.ETag, `"${s.sums.partMD5s[0].toString('hex')}"`)
          etags.push(r.ETag)
        }
        const done = await c.send(
          new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }),
        )
        const etag = multipartETag(partStreams.map((s) => s.sums.partMD5s[0]))
        assert.equal(done.ETag, etag)
        const whole = await c.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
        assert.deepEqual({ etag: whole.ETag, type: whole.ContentType, length: whole.ContentLength }, { etag, type: 'application/x-test', length: sizes[0] + sizes[1] })
        const want = sha256(Buffer.concat(sizes.map((n, i) => keystreamBytes(n, 3 + i))))
        assert.deepEqual(await digestBody(whole.Body), { sha256: want, length: sizes[0] + sizes[1] })

        // What the SDK sent for the streams: aws-chunked, unsigned payload with a CRC32
        // trailer, the decoded length declared; every request once. Payload hashes are shown
        // as 'empty' (the SHA-256 of nothing), 'signed' (of a body), or as sent.
        const hash = (h) => (h === EMPTY_SHA256 ? 'empty' : SIGNED_HASH.test(h) ? 'signed' : h)
        const streamed = (op, length) => ({
          op,
          encoding: 'aws-chunked',
          sha256: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
          trailer: 'x-amz-checksum-crc32',
          decodedLength: String(length),
          length: undefined, // chunked transfer coding
          crc32: undefined, // in the trailer
          status: 200,
        })
        const plain = (op, sha256 = 'empty', length = undefined) => ({ op, encoding: undefined, sha256, trailer: undefined, decodedLength: undefined, length, crc32: undefined, status: 200 })
        assert.deepEqual(
          c.requests.map((r) => ({ op: r.op, encoding: r.encoding, sha256: hash(r.sha256), trailer: r.trailer, decodedLength: r.decodedLength, length: r.length && 'sent', crc32: r.crc32, status: r.status })),
          [
            plain('CreateBucket'),
            streamed('PutObject', size),
            plain('GetObject'),
            plain('CreateMultipartUpload'),
            streamed('UploadPart', sizes[0]),
            streamed('UploadPart', sizes[1]),
            plain('CompleteMultipartUpload', 'signed', 'sent'),
            plain('GetObject'),
          ],
        )
      })

      test(`session token (storage-single-tenant, anon key, a user's JWT) under RLS at ${prefix}`, async () => {
        const bucket = `users-${tag}`
        await keyPair(prefix).send(new CreateBucketCommand({ Bucket: bucket }))
        await srv.sql(`
          create policy ${tag}_own_read on storage.objects for select to authenticated
            using (bucket_id = '${bucket}' and (storage.foldername(name))[1] = (select auth.uid())::text);
          create policy ${tag}_own_insert on storage.objects for insert to authenticated
            with check (bucket_id = '${bucket}' and (storage.foldername(name))[1] = (select auth.uid())::text);
          create policy ${tag}_own_delete on storage.objects for delete to authenticated
            using (bucket_id = '${bucket}' and owner_id = (select auth.uid())::text);
        `)
        const A = uuid()
        const B = uuid()
        const session = (sub) =>
          s3Client(`${srv.url}${prefix}`, { accessKeyId: 'storage-single-tenant', secretAccessKey: srv.anonKey, sessionToken: srv.userToken(sub) })
        const a = session(A)
        const b = session(B)

        await a.send(new PutObjectCommand({ Bucket: bucket, Key: `${A}/note.txt`, Body: 'mine', ContentType: 'text/plain' }))
        // A multipart upload as the user too (lib-storage, two parts of 5 MiB and 1 MiB).
        const big = keystream(6 * MiB, 4, { partSize: 5 * MiB })
        const done = await new Upload({ client: a, params: { Bucket: bucket, Key: `${A}/six.bin`, Body: big }, partSize: 5 * MiB }).done()
        assert.equal(done.ETag, multipartETag(big.sums.partMD5s))

        const rows = await srv.sql(`select name, owner_id from storage.objects where bucket_id = '${bucket}' order by name`)
        assert.deepEqual(rows, [
          [`${A}/note.txt`, A],
          [`${A}/six.bin`, A],
        ])
        assert.equal(await (await a.send(new GetObjectCommand({ Bucket: bucket, Key: `${A}/note.txt` }))).Body.transformToString(), 'mine')
        const six = await a.send(new GetObjectCommand({ Bucket: bucket, Key: `${A}/six.bin` }))
        assert.deepEqual(await digestBody(six.Body), { sha256: big.sums.sha256, length: 6 * MiB })
        const listA = await a.send(new ListObjectsV2Command({ Bucket: bucket }))
        assert.deepEqual(listA.Contents.map((o) => [o.Key, o.Size]), [
          [`${A}/note.txt`, 4],
          [`${A}/six.bin`, 6 * MiB],
        ])

        // B: sees none of A's objects, cannot write into A's folder nor delete A's object.
        const listB = await b.send(new ListObjectsV2Command({ Bucket: bucket }))
        assert.equal(listB.KeyCount, 0)
        assert.equal(listB.Contents, undefined)
        await refused(b.send(new GetObjectCommand({ Bucket: bucket, Key: `${A}/note.txt` })), { code: 'NoSuchKey', status: 404, message: 'Object not found' })
        await refused(b.send(new PutObjectCommand({ Bucket: bucket, Key: `${A}/intruder.txt`, Body: 'x' })), {
          code: 'AccessDenied',
          status: 403,
          message: 'new row violates row-level security policy',
        })
        await refused(b.send(new DeleteObjectCommand({ Bucket: bucket, Key: `${A}/note.txt` })), { code: 'AccessDenied', status: 403, message: 'Access denied' })

        // A deletes its own.
        const del = await a.send(new DeleteObjectCommand({ Bucket: bucket, Key: `${A}/note.txt` }))
        assert.equal(del.$metadata.httpStatusCode, 204)
        assert.deepEqual(await srv.sql(`select name from storage.objects where bucket_id = '${bucket}' order by name`), [[`${A}/six.bin`]])

        // A wrong secret is refused with the session variant of the message.
        const wrong = s3Client(`${srv.url}${prefix}`, { accessKeyId: 'storage-single-tenant', secretAccessKey: 'not-the-anon-key', sessionToken: srv.userToken(A) })
        await refused(wrong.send(new ListObjectsV2Command({ Bucket: bucket })), {
          code: 'SignatureDoesNotMatch',
          status: 403,
          message:
            'The request signature we calculated does not match the signature you provided, Check your credentials. The session token should be a valid JWT token',
        })
        assert.deepEqual(
          b.requests.map((r) => [r.op, r.status]),
          [
            ['ListObjectsV2', 200],
            ['GetObject', 404],
            ['PutObject', 403],
            ['DeleteObject', 403],
          ],
        )
      })
    }
  })
}
