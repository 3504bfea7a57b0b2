// Image transformation through the unmodified clients, against storage serve on the file and
// s3 backends: storage-js's `transform` option on getPublicUrl, createSignedUrl and download
// (the three ways an app asks for a thumbnail), at the server's root and at <url>/storage/v1,
// and supabase-js's createClient(url, key).storage once. The URLs the clients build are
// fetched as a browser or an <img> would; the answers are checked by status, headers and the
// dimensions and format read from the image bytes (PNG, JPEG and WebP headers parsed here).

import assert from 'node:assert/strict'
import { deflateSync, crc32 } from 'node:zlib'
import { after, before, describe, test as nodeTest } from 'node:test'

import { createClient } from '@supabase/supabase-js'
import WebSocket from 'ws'

import { bytesOf, startStorage } from './harness.js'

const TEST_TIMEOUT = 60_000
const HOOK_TIMEOUT = 120_000 // starting the server: initdb, migrations, versitygw
const test = (name, fn) => nodeTest(name, { timeout: TEST_TIMEOUT }, fn)

/** Asserts a { data, error } result succeeded and returns data. */
function ok(result, what = 'call') {
  assert.equal(result.error, null, `${what} failed: ${JSON.stringify(result.error)} ${result.error?.message ?? ''}`)
  return result.data
}

// ---------------------------------------------------------------------------------------------
// Images

/** A w×h RGBA PNG: the left half opaque red, the right half opaque blue (or transparent). */
function redBluePNG(w, h, { transparentRight = false } = {}) {
  const row = Buffer.alloc(1 + 4 * w) // filter byte 0 (none), then the pixels
  for (let x = 0; x < w; x++) {
    const px = x < w / 2 ? [255, 0, 0, 255] : transparentRight ? [0, 0, 0, 0] : [0, 0, 255, 255]
    row.set(px, 1 + 4 * x)
  }
  const raw = Buffer.concat(Array.from({ length: h }, () => row))
  const chunk = (type, data) => {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(data.length)
    const crc = Buffer.alloc(4)
    crc.writeUInt32BE(crc32(Buffer.concat([Buffer.from(type, 'ascii'), data])))
    return Buffer.concat([len, Buffer.from(type, 'ascii'), data, crc])
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(w, 0)
  ihdr.writeUInt32BE(h, 4)
  ihdr[8] = 8 // bit depth
  ihdr[9] = 6 // RGBA; compression, filter, interlace 0
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ])
}

/** The format and dimensions an image's header declares (PNG, JPEG, WebP); throws otherwise. */
function imageSize(buf) {
  if (buf.length >= 24 && buf.readUInt32BE(0) === 0x89504e47 && buf.toString('ascii', 12, 16) === 'IHDR') {
    return { format: 'png', width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) }
  }
  if (buf.length >= 4 && buf[0] === 0xff && buf[1] === 0xd8) {
    // Walk the segments to the first start-of-frame (SOF0–SOF15 but DHT, JPG, DAC).
    let i = 2
    while (i + 9 < buf.length) {
      assert.equal(buf[i], 0xff, `JPEG marker expected at ${i}`)
      const marker = buf[i + 1]
      if (marker === 0xff) {
        i++ // fill byte
        continue
      }
      if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
        return { format: 'jpeg', height: buf.readUInt16BE(i + 5), width: buf.readUInt16BE(i + 7) }
      }
      i += 2 + buf.readUInt16BE(i + 2)
    }
    throw new Error('JPEG without a frame header')
  }
  if (buf.length >= 30 && buf.toString('ascii', 0, 4) === 'RIFF' && buf.toString('ascii', 8, 12) === 'WEBP') {
    switch (buf.toString('ascii', 12, 16)) {
      case 'VP8 ': // lossy: frame tag (3), start code (3), 14-bit width and height
        return { format: 'webp', width: buf.readUInt16LE(26) & 0x3fff, height: buf.readUInt16LE(28) & 0x3fff }
      case 'VP8L': {
        // lossless: signature 0x2f, then 14 bits width-1, 14 bits height-1
        const b = buf.readUInt32LE(21)
        return { format: 'webp', width: (b & 0x3fff) + 1, height: ((b >>> 14) & 0x3fff) + 1 }
      }
      case 'VP8X': // extended: 24-bit canvas width-1 and height-1
        return { format: 'webp', width: buf.readUIntLE(24, 3) + 1, height: buf.readUIntLE(27, 3) + 1 }
    }
  }
  throw new Error(`not a PNG, JPEG or WebP: ${buf.subarray(0, 16).toString('hex')}`)
}

/** Fetches url (no Authorization, as an <img> or a shared link does) and returns status, headers and bytes. */
async function fetchImage(url, headers = {}) {
  const res = await fetch(url, { headers })
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) }
}

/** Asserts a 200 image response of that Content-Type and size. */
function isImage(res, contentType, width, height) {
  assert.equal(res.status, 200, `status ${res.status}: ${res.body.subarray(0, 200).toString()}`)
  assert.equal(res.headers.get('content-type'), contentType)
  assert.equal(res.headers.get('content-length'), String(res.body.length))
  assert.deepEqual(imageSize(res.body), { format: contentType.slice('image/'.length), width, height })
}

// ---------------------------------------------------------------------------------------------

const PNG = redBluePNG(400, 200)
const ALPHA = redBluePNG(400, 200, { transparentRight: true })

/**
 * The storage-js cases with the clients' base at srv.url + prefix. Each run uses buckets of its
 * own (suffix), so both prefixes share one server.
 */
function storageJsCases(getSrv, prefix, suffix) {
  describe(`storage-js transform (base ${prefix || '/'})`, () => {
    let srv, api, service, anon
    const pub = `pics${suffix}`
    const priv = `priv${suffix}`

    before(async () => {
      srv = getSrv()
      api = srv.url + prefix
      service = srv.client(srv.serviceKey, api)
      anon = srv.client(srv.anonKey, api)
      ok(await service.createBucket(pub, { public: true }))
      ok(await service.createBucket(priv))
      for (const b of [pub, priv]) {
        ok(await service.from(b).upload('cats/tom.png', PNG, { contentType: 'image/png', cacheControl: '3600' }))
      }
      ok(await service.from(pub).upload('cats/a b.png', PNG, { contentType: 'image/png' }))
      ok(await service.from(pub).upload('cats/alpha.png', ALPHA, { contentType: 'image/png' }))
      ok(await service.from(pub).upload('cats/raw.bin', PNG, { contentType: 'application/octet-stream' }))
      ok(await service.from(priv).upload('notes.txt', 'not an image', { contentType: 'text/plain' }))
    }, { timeout: HOOK_TIMEOUT })

    test('getPublicUrl with transform: a /render/image/public URL that serves the resized image', async () => {
      const { publicUrl } = service.from(pub).getPublicUrl('cats/tom.png', { transform: { width: 100, height: 100, resize: 'contain' } }).data
      assert.equal(publicUrl, `${api}/render/image/public/${pub}/cats/tom.png?width=100&height=100&resize=contain`)
      const res = await fetchImage(publicUrl)
      isImage(res, 'image/png', 100, 50) // contain: letterboxed, no padding
      assert.equal(res.headers.get('x-transformations'), 'height:100,width:100,resizing_type:fit')
      assert.equal(res.headers.get('cache-control'), 'max-age=3600')
      const original = await fetch(service.from(pub).getPublicUrl('cats/tom.png').data.publicUrl)
      assert.equal(original.status, 200)
      assert.equal(res.headers.get('etag'), original.headers.get('etag'), "a variant has its source's ETag")

      isImage(await fetchImage(service.from(pub).getPublicUrl('cats/tom.png', { transform: { width: 100, height: 100 } }).data.publicUrl), 'image/png', 100, 100)
      isImage(await fetchImage(service.from(pub).getPublicUrl('cats/tom.png', { transform: { width: 100, height: 100, resize: 'fill' } }).data.publicUrl), 'image/png', 100, 100)
      isImage(await fetchImage(service.from(pub).getPublicUrl('cats/tom.png', { transform: { height: 50 } }).data.publicUrl), 'image/png', 100, 50)
      // A key with a space (encodeURI'd by the client).
      const spaced = service.from(pub).getPublicUrl('cats/a b.png', { transform: { width: 40 } }).data.publicUrl
      assert.equal(spaced, `${api}/render/image/public/${pub}/cats/a%20b.png?width=40`)
      isImage(await fetchImage(spaced), 'image/png', 40, 20)
    })

    test('getPublicUrl: the format follows Accept unless format is origin; quality; download', async () => {
      const url = (transform, opts = {}) => service.from(pub).getPublicUrl('cats/tom.png', { transform, ...opts }).data.publicUrl
      const webp = await fetchImage(url({ width: 120 }), { Accept: 'image/avif,image/webp,image/*,*/*;q=0.8' })
      isImage(webp, 'image/webp', 120, 60)
      assert.equal(webp.headers.get('vary'), 'Accept')
      const origin = await fetchImage(url({ width: 120, format: 'origin' }), { Accept: 'image/avif,image/webp,*/*' })
      isImage(origin, 'image/png', 120, 60)
      assert.equal(origin.headers.get('vary'), null)
      const q = await fetchImage(url({ width: 120, quality: 50 }), { Accept: 'image/webp' })
      isImage(q, 'image/webp', 120, 60)
      assert.equal(q.headers.get('x-transformations'), 'width:120,resizing_type:fill,quality:50')
      // A source whose declared type is not an image format comes out as JPEG.
      isImage(await fetchImage(service.from(pub).getPublicUrl('cats/raw.bin', { transform: { width: 80 } }).data.publicUrl), 'image/jpeg', 80, 40)
      // Transparency is kept in WebP.
      isImage(await fetchImage(service.from(pub).getPublicUrl('cats/alpha.png', { transform: { width: 80 } }).data.publicUrl, { Accept: 'image/webp' }), 'image/webp', 80, 40)

      const dl = await fetchImage(url({ width: 10 }, { download: true }))
      isImage(dl, 'image/png', 10, 5)
      assert.equal(dl.headers.get('content-disposition'), 'attachment;')
      const named = await fetchImage(url({ width: 10 }, { download: 'thumb.png' }))
      assert.equal(named.headers.get('content-disposition'), "attachment; filename=thumb.png; filename*=UTF-8''thumb.png")
    })

    test('getPublicUrl of a private bucket: Bucket not found', async () => {
      const res = await fetch(service.from(priv).getPublicUrl('cats/tom.png', { transform: { width: 10 } }).data.publicUrl)
      assert.equal(res.status, 400)
      assert.deepEqual(await res.json(), { statusCode: '404', code: 'NoSuchBucket', error: 'Bucket not found', message: 'Bucket not found' })
    })

    test('createSignedUrl with transform: a /render/image/sign URL, fetched without auth', async () => {
      const t0 = Math.floor(Date.now() / 1000)
      const { signedUrl } = ok(await service.from(priv).createSignedUrl('cats/tom.png', 60, { transform: { width: 50, height: 50, resize: 'fill' } }))
      assert.ok(signedUrl.startsWith(`${api}/render/image/sign/${priv}/cats/tom.png?token=`), signedUrl)
      const res = await fetchImage(signedUrl)
      isImage(res, 'image/png', 50, 50) // fill: distorted to the box
      assert.equal(res.headers.get('x-transformations'), 'height:50,width:50,resizing_type:force')
      assert.equal(res.headers.get('cache-control'), null)
      const expires = Date.parse(res.headers.get('expires')) / 1000
      assert.ok(expires >= t0 + 60 && expires <= t0 + 70, `Expires ${res.headers.get('expires')}`)

      // The transformation is the token's: another one in the query is ignored.
      isImage(await fetchImage(`${signedUrl}&width=5`), 'image/png', 50, 50)

      const { signedUrl: dlUrl } = ok(await service.from(priv).createSignedUrl('cats/tom.png', 60, { transform: { width: 20 }, download: 'small.png' }))
      const dl = await fetchImage(dlUrl)
      isImage(dl, 'image/png', 20, 10)
      assert.equal(dl.headers.get('content-disposition'), "attachment; filename=small.png; filename*=UTF-8''small.png")

      // format origin: the source's format whatever the client accepts.
      const { signedUrl: originUrl } = ok(await service.from(priv).createSignedUrl('cats/tom.png', 60, { transform: { width: 30, format: 'origin' } }))
      isImage(await fetchImage(originUrl, { Accept: 'image/webp' }), 'image/png', 30, 15)

      // Without a transform: the plain signed URL, the original bytes.
      const { signedUrl: plain } = ok(await service.from(priv).createSignedUrl('cats/tom.png', 60))
      assert.ok(plain.startsWith(`${api}/object/sign/${priv}/cats/tom.png?token=`), plain)
      assert.ok((await fetchImage(plain)).body.equals(PNG))
    })

    test('download with transform: /render/image/authenticated with the caller’s JWT', async () => {
      const blob = ok(await service.from(priv).download('cats/tom.png', { transform: { width: 40 } }))
      assert.equal(blob.type, 'image/png')
      assert.deepEqual(imageSize(await bytesOf(blob)), { format: 'png', width: 40, height: 20 })
      const cover = ok(await service.from(priv).download('cats/tom.png', { transform: { width: 60, height: 60, resize: 'cover' } }))
      assert.deepEqual(imageSize(await bytesOf(cover)), { format: 'png', width: 60, height: 60 })
      // Without a transform the original bytes.
      assert.ok((await bytesOf(ok(await service.from(priv).download('cats/tom.png')))).equals(PNG))

      // anon has no SELECT policy on the private bucket: not found, as a plain download.
      const denied = await anon.from(priv).download('cats/tom.png', { transform: { width: 40 } })
      assert.equal(denied.data, null)
      assert.equal(denied.error?.message, 'Object not found')
      assert.equal(denied.error?.statusCode, '404')
      // A text object cannot be rendered.
      const text = await service.from(priv).download('notes.txt', { transform: { width: 40 } })
      assert.equal(text.data, null)
      assert.equal(text.error?.message, 'The source image is invalid or unsupported for rendering')
      assert.equal(text.error?.statusCode, '400')
    })
  })
}

/** supabase-js as an app creates it: storage at <url>/storage/v1. */
function supabaseCases(getSrv) {
  describe('supabase-js transform (createClient(url, key).storage)', () => {
    let srv, supabase
    before(async () => {
      srv = getSrv()
      supabase = createClient(srv.url, srv.serviceKey, {
        auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
        realtime: { transport: WebSocket }, // Node 20 has no WebSocket; nothing opens one
      })
      ok(await supabase.storage.createBucket('avatars', { public: true }))
      ok(await supabase.storage.from('avatars').upload('u/me.png', PNG, { contentType: 'image/png' }))
    }, { timeout: HOOK_TIMEOUT })

    test('getPublicUrl, createSignedUrl and download with transform', async () => {
      const bucket = supabase.storage.from('avatars')
      const { publicUrl } = bucket.getPublicUrl('u/me.png', { transform: { width: 64, height: 64 } }).data
      assert.equal(publicUrl, `${srv.url}/storage/v1/render/image/public/avatars/u/me.png?width=64&height=64`)
      isImage(await fetchImage(publicUrl), 'image/png', 64, 64)
      const { signedUrl } = ok(await bucket.createSignedUrl('u/me.png', 60, { transform: { width: 64, height: 64, resize: 'contain' } }))
      assert.ok(signedUrl.startsWith(`${srv.url}/storage/v1/render/image/sign/avatars/u/me.png?token=`), signedUrl)
      isImage(await fetchImage(signedUrl), 'image/png', 64, 32)
      const blob = ok(await bucket.download('u/me.png', { transform: { height: 16 } }))
      assert.deepEqual(imageSize(await bytesOf(blob)), { format: 'png', width: 32, height: 16 })
    })
  })
}

for (const backend of ['file', 's3']) {
  describe(`image transformation against storage serve (${backend} backend)`, () => {
    let srv
    before(async () => {
      srv = await startStorage({ backend })
    }, { timeout: HOOK_TIMEOUT })
    after(async () => {
      await srv?.stop()
    }, { timeout: HOOK_TIMEOUT })

    storageJsCases(() => srv, '', '')
    if (backend === 'file') {
      storageJsCases(() => srv, '/storage/v1', '-v1')
      supabaseCases(() => srv)
    }
  })
}
