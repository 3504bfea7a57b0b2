// The unmodified @supabase/supabase-js against storage serve, file and s3 backends: an app's
// createClient(url, key).storage, which addresses <url>/storage/v1/… (the path Supabase's
// gateway serves storage at). Buckets, uploads, listing, downloads, signed and public URLs,
// move and remove, as the service, as anon, and as signed-in users under RLS policies.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, test as nodeTest } from 'node:test'

import { createClient } from '@supabase/supabase-js'
import WebSocket from 'ws'

import { bytesOf, pseudoRandomBytes, startStorage, uuid } from './harness.js'

const TEST_TIMEOUT = 60_000
const HOOK_TIMEOUT = 120_000 // starting the server: initdb, migrations, versitygw
const test = (name, fn) => nodeTest(name, { timeout: TEST_TIMEOUT }, fn)

const md5 = (b) => createHash('md5').update(b).digest('hex')

/** Asserts a { data, error } result succeeded and returns data. */
function ok(result, what = 'call') {
  assert.equal(result.error, null, `${what} failed: ${JSON.stringify(result.error)} ${result.error?.message ?? ''}`)
  return result.data
}

/** Asserts a { data, error } result is the refusal with this message and body statusCode. */
function refused(result, { message, statusCode }) {
  assert.equal(result.data, null, `expected a refusal, got data ${JSON.stringify(result.data)}`)
  assert.ok(result.error, 'expected an error')
  assert.deepEqual({ message: result.error.message, statusCode: result.error.statusCode }, { message, statusCode })
}

/**
 * createClient as a server-side app calls it. Node 20 has no global WebSocket and supabase-js's
 * realtime client refuses to start without one, so it gets ws (nothing here opens a socket:
 * the storage server has no realtime). No session is kept or refreshed: the key, or the
 * caller's JWT, is the identity.
 */
function supabase(url, key, options = {}) {
  return createClient(url, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: WebSocket },
    ...options,
  })
}

for (const backend of ['file', 's3']) {
  describe(`supabase-js against storage serve (${backend} backend)`, () => {
    let srv
    let admin // the service_role key
    let anon // the anon key

    before(async () => {
      srv = await startStorage({ backend })
      admin = supabase(srv.url, srv.serviceKey)
      anon = supabase(srv.url, srv.anonKey)
    }, { timeout: HOOK_TIMEOUT })
    after(async () => {
      await srv?.stop()
    }, { timeout: HOOK_TIMEOUT })

    test('storage is addressed at <url>/storage/v1', () => {
      assert.equal(admin.storage.url, `${srv.url}/storage/v1`)
    })

    test('createBucket public and private, getBucket, listBuckets', async () => {
      assert.deepEqual(ok(await admin.storage.createBucket('docs')), { name: 'docs' })
      assert.deepEqual(ok(await admin.storage.createBucket('pics', { public: true })), { name: 'pics' })
      assert.equal(ok(await admin.storage.getBucket('docs')).public, false)
      assert.equal(ok(await admin.storage.getBucket('pics')).public, true)
      const list = ok(await admin.storage.listBuckets())
      assert.deepEqual(list.map((b) => `${b.name}:${b.public}`).sort(), ['docs:false', 'pics:true'])
    })

    test('upload with contentType and upsert, list, download the same bytes', async () => {
      const docs = admin.storage.from('docs')
      const first = pseudoRandomBytes(50_000, 1)
      const up = ok(await docs.upload('reports/q1.pdf', first, { contentType: 'application/pdf' }))
      assert.equal(up.path, 'reports/q1.pdf')
      assert.equal(up.fullPath, 'docs/reports/q1.pdf')
      refused(await docs.upload('reports/q1.pdf', first, { contentType: 'application/pdf' }), { message: 'The resource already exists', statusCode: '409' })
      const second = pseudoRandomBytes(70_000, 2)
      assert.equal(ok(await docs.upload('reports/q1.pdf', second, { contentType: 'application/pdf', upsert: true })).id, up.id)
      ok(await docs.upload('reports/q2.txt', 'quarter two', { contentType: 'text/plain' }))

      assert.deepEqual(ok(await docs.list('reports')).map((o) => o.name), ['q1.pdf', 'q2.txt'])
      assert.deepEqual(ok(await docs.list()).map((o) => `${o.name}:${o.id === null ? 'folder' : 'file'}`), ['reports:folder'])

      const blob = ok(await docs.download('reports/q1.pdf'))
      assert.equal(blob.type, 'application/pdf')
      assert.ok((await bytesOf(blob)).equals(second))
      assert.equal(await ok(await docs.download('reports/q2.txt')).text(), 'quarter two')
      const info = ok(await docs.info('reports/q1.pdf'))
      assert.equal(info.contentType, 'application/pdf')
      assert.equal(info.size, second.length)
      assert.equal(info.etag, `"${md5(second)}"`)
    })

    test('createSignedUrl: the URL keeps /storage/v1 and fetches the bytes without auth', async () => {
      const docs = admin.storage.from('docs')
      const bytes = pseudoRandomBytes(30_000, 3)
      ok(await docs.upload('signed/file.bin', bytes, { contentType: 'application/octet-stream' }))
      const { signedUrl } = ok(await docs.createSignedUrl('signed/file.bin', 60))
      assert.ok(signedUrl.startsWith(`${srv.url}/storage/v1/object/sign/docs/signed/file.bin?token=`), signedUrl)
      const res = await fetch(signedUrl)
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('content-type'), 'application/octet-stream')
      assert.ok(Buffer.from(await res.arrayBuffer()).equals(bytes))

      const [entry] = ok(await docs.createSignedUrls(['signed/file.bin'], 60))
      assert.equal(entry.error, null)
      assert.ok(entry.signedUrl.startsWith(`${srv.url}/storage/v1/object/sign/docs/signed/file.bin?token=`), entry.signedUrl)
      assert.ok(Buffer.from(await (await fetch(entry.signedUrl)).arrayBuffer()).equals(bytes))
    })

    test('createSignedUploadUrl + uploadToSignedUrl through the prefix', async () => {
      const docs = admin.storage.from('docs')
      const { signedUrl, token, path } = ok(await docs.createSignedUploadUrl('signed/upload.txt'))
      assert.ok(signedUrl.startsWith(`${srv.url}/storage/v1/object/upload/sign/docs/signed/upload.txt?token=`), signedUrl)
      ok(await anon.storage.from('docs').uploadToSignedUrl(path, token, 'uploaded by link', { contentType: 'text/plain' }))
      assert.equal(await ok(await docs.download('signed/upload.txt')).text(), 'uploaded by link')
    })

    test('getPublicUrl: fetched without auth from a public bucket; a private one says Bucket not found', async () => {
      const bytes = pseudoRandomBytes(20_000, 4)
      ok(await admin.storage.from('pics').upload('cats/tom.png', bytes, { contentType: 'image/png' }))
      const { publicUrl } = admin.storage.from('pics').getPublicUrl('cats/tom.png').data
      assert.equal(publicUrl, `${srv.url}/storage/v1/object/public/pics/cats/tom.png`)
      const res = await fetch(publicUrl)
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('content-type'), 'image/png')
      assert.ok(Buffer.from(await res.arrayBuffer()).equals(bytes))
      // anon reads a public bucket through the client too
      assert.ok((await bytesOf(ok(await anon.storage.from('pics').download('cats/tom.png')))).equals(bytes))

      const priv = await fetch(admin.storage.from('docs').getPublicUrl('reports/q2.txt').data.publicUrl)
      assert.equal(priv.status, 400)
      assert.deepEqual(await priv.json(), { statusCode: '404', code: 'NoSuchBucket', error: 'Bucket not found', message: 'Bucket not found' })
    })

    test('move, then remove', async () => {
      const docs = admin.storage.from('docs')
      ok(await docs.upload('tmp/a.txt', 'moving', { contentType: 'text/plain' }))
      assert.deepEqual(ok(await docs.move('tmp/a.txt', 'archive/a.txt')), { message: 'Successfully moved' })
      refused(await docs.download('tmp/a.txt'), { message: 'Object not found', statusCode: '404' })
      assert.equal(await ok(await docs.download('archive/a.txt')).text(), 'moving')
      const removed = ok(await docs.remove(['archive/a.txt', 'archive/missing.txt']))
      assert.deepEqual(removed.map((o) => o.name), ['archive/a.txt'])
      assert.deepEqual(ok(await docs.list('archive')), [])
      assert.equal((await docs.exists('archive/a.txt')).data, false)
    })

    describe('signed-in users under RLS', () => {
      const A = uuid()
      const B = uuid()
      let userA, userB

      before(async () => {
        ok(await admin.storage.createBucket('avatars'))
        // README "Policies: a folder per user", written as for Supabase.
        await srv.sql(`
          create policy avatars_owner_read on storage.objects for select to authenticated
            using (bucket_id = 'avatars' and (storage.foldername(name))[1] = (select auth.uid())::text);
          create policy avatars_owner_insert on storage.objects for insert to authenticated
            with check (bucket_id = 'avatars' and (storage.foldername(name))[1] = (select auth.uid())::text);
          create policy avatars_owner_update on storage.objects for update to authenticated
            using (owner_id = (select auth.uid())::text);
          create policy avatars_owner_delete on storage.objects for delete to authenticated
            using (owner_id = (select auth.uid())::text);
        `)
        // The two ways an app hands supabase-js a user's JWT: the accessToken option (a third-
        // party auth provider) and a global Authorization header (a server acting for a user).
        const tokenA = srv.userToken(A)
        userA = supabase(srv.url, srv.anonKey, { accessToken: async () => tokenA })
        userB = supabase(srv.url, srv.anonKey, { global: { headers: { Authorization: `Bearer ${srv.userToken(B)}` } } })
      })

      test('each user writes and reads only their own folder', async () => {
        const png = pseudoRandomBytes(4000, 5)
        const a = userA.storage.from('avatars')
        assert.equal(ok(await a.upload(`${A}/me.png`, png, { contentType: 'image/png' })).fullPath, `avatars/${A}/me.png`)
        const [[ownerId]] = await srv.sql(`select owner_id from storage.objects where bucket_id = 'avatars' and name = '${A}/me.png'`)
        assert.equal(ownerId, A)
        refused(await a.upload(`${B}/intruder.png`, png, { contentType: 'image/png' }), { message: 'new row violates row-level security policy', statusCode: '403' })
        assert.ok((await bytesOf(ok(await a.download(`${A}/me.png`)))).equals(png))
        assert.deepEqual(ok(await a.list(A)).map((o) => o.name), ['me.png'])

        const b = userB.storage.from('avatars')
        ok(await b.upload(`${B}/b.txt`, 'bee', { contentType: 'text/plain' }))
        refused(await b.download(`${A}/me.png`), { message: 'Object not found', statusCode: '404' })
        assert.deepEqual(ok(await b.list(A)), [])
        assert.deepEqual(ok(await b.remove([`${A}/me.png`])), [])
        refused(await a.download(`${B}/b.txt`), { message: 'Object not found', statusCode: '404' })
      })

      test('upsert, signed URL and remove by the owner; anon gets nothing', async () => {
        const a = userA.storage.from('avatars')
        const first = ok(await a.upload(`${A}/notes.txt`, 'one', { contentType: 'text/plain' }))
        assert.equal(ok(await a.upload(`${A}/notes.txt`, 'two', { contentType: 'text/plain', upsert: true })).id, first.id)
        const { signedUrl } = ok(await a.createSignedUrl(`${A}/notes.txt`, 60))
        assert.ok(signedUrl.startsWith(`${srv.url}/storage/v1/object/sign/avatars/${A}/notes.txt?token=`), signedUrl)
        assert.equal(await (await fetch(signedUrl)).text(), 'two')
        refused(await userB.storage.from('avatars').createSignedUrl(`${A}/notes.txt`, 60), { message: 'Object not found', statusCode: '404' })

        const n = anon.storage.from('avatars')
        refused(await n.upload(`${A}/anon.txt`, 'x', { contentType: 'text/plain' }), { message: 'new row violates row-level security policy', statusCode: '403' })
        refused(await n.download(`${A}/notes.txt`), { message: 'Object not found', statusCode: '404' })

        assert.deepEqual(ok(await a.remove([`${A}/notes.txt`])).map((o) => o.name), [`${A}/notes.txt`])
        assert.equal((await a.exists(`${A}/notes.txt`)).data, false)
      })
    })
  })
}
