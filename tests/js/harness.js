// Test harness: starts ../../bin/storage serve (file or s3 backend; for s3 a versitygw of our
// own on a free loopback port), parses what it prints, mints user JWTs, runs SQL through psql,
// and stops everything it started (process groups: SIGTERM, then SIGKILL).
//
// psql rather than the `pg` package: the server prints a libpq keyword/value connection string
// (host=<socket dir> port=… user=postgres …) that psql takes verbatim, psql ships with the
// PostgreSQL packages `make test` already requires, and the npm dependencies stay the clients
// under test (plus ws, supabase-js's WebSocket on Node 20).

import { spawn, execFile, execFileSync } from 'node:child_process'
import { createHmac, randomBytes, randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, chmodSync, readFileSync, rmSync, readdirSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

import { StorageClient } from '@supabase/storage-js'

const here = dirname(fileURLToPath(import.meta.url))
export const repoRoot = resolve(here, '..', '..')
export const storageBin = join(repoRoot, 'bin', 'storage')

const START_TIMEOUT_MS = 90_000 // initdb + migrations on a slow machine
const STOP_TIMEOUT_MS = 10_000

// Every process group we started, so that even a crashing or interrupted test run kills them:
// on exit SIGKILL (the kernel then stops each server's postmaster: Pdeathsig); on SIGINT or
// SIGTERM (Ctrl-C, the test runner cancelling) SIGTERM first, so the servers stop cleanly.
// The temporary directories of servers not yet stopped are removed too (best effort).
const liveGroups = new Set()
const liveDirs = new Set()
function signalGroups(sig) {
  for (const pid of liveGroups) {
    try {
      process.kill(-pid, sig)
    } catch {}
  }
}
process.on('exit', () => {
  signalGroups('SIGKILL')
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true, maxRetries: 3 })
})
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    const code = sig === 'SIGINT' ? 130 : 143
    signalGroups('SIGTERM')
    setTimeout(() => process.exit(code), 5000).unref()
    setInterval(() => {
      if (liveGroups.size === 0) process.exit(code)
    }, 50).unref()
  })
}

/** A fresh temporary directory the postgres OS user can traverse (we run postgres as it when root). */
export function freshDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  chmodSync(dir, 0o755)
  return dir
}

/** A loopback TCP port that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/** Starts cmd in its own process group, keeping the tail of its output for error messages. */
function startProcess(cmd, args, opts) {
  const child = spawn(cmd, args, { ...opts, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  liveGroups.add(child.pid)
  let out = ''
  const keep = (chunk) => {
    out += chunk.toString()
    if (out.length > 64 << 10) out = out.slice(-(64 << 10))
  }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  child.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      liveGroups.delete(child.pid)
      resolve({ code, signal })
    })
    child.on('error', (err) => {
      liveGroups.delete(child.pid)
      resolve({ code: null, signal: null, err })
    })
  })
  child.output = () => out
  return child
}

/** SIGTERM to the process group, SIGKILL after STOP_TIMEOUT_MS; resolves once it exited. */
async function stopProcess(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return
  const signal = (sig) => {
    try {
      process.kill(-child.pid, sig)
    } catch {}
  }
  signal('SIGTERM')
  let timer
  const timedOut = new Promise((resolve) => {
    timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS)
  })
  const r = await Promise.race([child.exited, timedOut])
  clearTimeout(timer)
  if (r === 'timeout') {
    signal('SIGKILL')
    await child.exited
  }
}

/** Finds versitygw the way the Go tests do: $VERSITYGW, PATH, then GOBIN / GOPATH/bin. */
export function versitygwBinary() {
  if (process.env.VERSITYGW) return process.env.VERSITYGW
  for (const dir of (process.env.PATH || '').split(':')) {
    if (dir && existsSync(join(dir, 'versitygw'))) return join(dir, 'versitygw')
  }
  try {
    const [gobin, gopath] = execFileSync('go', ['env', 'GOBIN', 'GOPATH'], { encoding: 'utf8' }).split('\n')
    for (const dir of [gobin.trim(), join(gopath.split(':')[0].trim(), 'bin')]) {
      if (dir && existsSync(join(dir, 'versitygw'))) return join(dir, 'versitygw')
    }
  } catch {}
  throw new Error('versitygw not found ($VERSITYGW, PATH, go env GOBIN/GOPATH); run `make versitygw`')
}

/** Starts versitygw (posix backend) on a free loopback port with one bucket. */
export async function startVersitygw(dir, bucket) {
  const root = join(dir, 's3root')
  mkdirSync(join(root, bucket), { recursive: true }) // posix backend: a bucket is a directory
  const accessKey = 'storagejs'
  const secretKey = randomBytes(20).toString('hex')
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VGW_') && !k.startsWith('ROOT_')))
    const child = startProcess(versitygwBinary(), ['--port', `127.0.0.1:${port}`, '--region', 'us-east-1', '--quiet', 'posix', root], {
      cwd: dir,
      env: { ...env, ROOT_ACCESS_KEY: accessKey, ROOT_SECRET_KEY: secretKey },
    })
    const ok = await waitListening(port, child, 30_000)
    if (ok) return { child, endpoint: `http://127.0.0.1:${port}`, accessKey, secretKey, bucket }
    await stopProcess(child)
    if (attempt === 3) throw new Error(`versitygw did not listen on 127.0.0.1:${port}:\n${child.output()}`)
  }
}

async function waitListening(port, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return false
    const up = await new Promise((resolve) => {
      fetch(`http://127.0.0.1:${port}/`).then(
        () => resolve(true),
        () => resolve(false),
      )
    })
    if (up) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}

/**
 * Starts `bin/storage serve` with the given backend ('file' or 's3') on a free loopback port
 * with a fresh data dir. Returns the running server: url, keys, db conn string, helpers, stop().
 */
export async function startStorage({ backend = 'file', env = {} } = {}) {
  if (!existsSync(storageBin)) {
    throw new Error(`${storageBin} is missing: build it with \`make build\` (make test/js does)`)
  }
  const dir = freshDir(`storage-js-${backend}-`)
  const jwtSecret = randomBytes(32).toString('base64url')
  liveDirs.add(dir)
  const srv = { backend, dir, jwtSecret, children: [] }
  srv.stop = async () => {
    for (const c of srv.children.slice().reverse()) await stopProcess(c)
    await waitPostgresGone(join(dir, 'data', 'pg'))
    rmSync(dir, { recursive: true, force: true })
    liveDirs.delete(dir)
  }
  try {
    const serveEnv = {
      ...process.env,
      SERVER_HOST: '127.0.0.1',
      SERVER_PORT: '0',
      STORAGE_DATA_DIR: join(dir, 'data'),
      AUTH_JWT_SECRET: jwtSecret,
      LOG_LEVEL: process.env.STORAGE_LOG_LEVEL || 'warn',
      STORAGE_BACKEND: backend,
      ...env,
    }
    delete serveEnv.DATABASE_URL
    if (backend === 's3') {
      const gw = await startVersitygw(dir, 'storage-js-blobs')
      srv.children.push(gw.child)
      srv.s3 = gw
      Object.assign(serveEnv, {
        STORAGE_S3_BUCKET: gw.bucket,
        STORAGE_S3_ENDPOINT: gw.endpoint,
        STORAGE_S3_FORCE_PATH_STYLE: 'true',
        STORAGE_S3_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: gw.accessKey,
        AWS_SECRET_ACCESS_KEY: gw.secretKey,
      })
    }
    const child = startProcess(storageBin, ['serve'], { cwd: dir, env: serveEnv })
    srv.children.push(child)
    srv.output = child.output
    const info = await waitForBanner(child)
    Object.assign(srv, info, await storageKeys(serveEnv, dir))
  } catch (err) {
    await srv.stop()
    throw err
  }
  srv.client = (key, base = srv.url) => new StorageClient(base, { Authorization: `Bearer ${key}` })
  srv.userToken = (sub, claims = {}) => signJWT({ sub, role: 'authenticated', aud: 'authenticated', ...claims }, jwtSecret)
  srv.sql = (text) => psql(srv.db, text)
  return srv
}

/**
 * The anon and service keys, from `bin/storage keys` with the server's environment: serve
 * prints them only when it generates the secret (the harness configures its own).
 */
async function storageKeys(env, cwd) {
  const { stdout } = await promisify(execFile)(storageBin, ['keys'], { env, cwd, encoding: 'utf8' }).catch((err) => {
    throw new Error(`storage keys failed: ${err.stderr || err.message}`)
  })
  const m = stdout.match(/^ANON_KEY=(\S+)\nSERVICE_ROLE_KEY=(\S+)\n$/)
  if (!m) throw new Error(`storage keys printed ${JSON.stringify(stdout)}`)
  return { anonKey: m[1], serviceKey: m[2] }
}

/** Reads stdout until the banner (URL, database, keys line) arrived; fails with the output if the server exits. */
function waitForBanner(child) {
  return new Promise((resolve, reject) => {
    let buf = ''
    const found = {}
    const timer = setTimeout(() => done(new Error(`storage serve printed no banner within ${START_TIMEOUT_MS} ms:\n${child.output()}`)), START_TIMEOUT_MS)
    const onData = (chunk) => {
      buf += chunk.toString()
      let m
      if ((m = buf.match(/^storage listening on (http:\/\/\S+) \(schema version (\d+)\)$/m))) {
        found.url = m[1]
        found.schemaVersion = Number(m[2])
      }
      if ((m = buf.match(/^database: (.+)$/m))) found.db = m[1]
      if (found.url && found.db && /^keys: /m.test(buf)) done(null, found)
    }
    const onExit = () => done(new Error(`storage serve exited before its banner:\n${child.output()}`))
    const done = (err, v) => {
      clearTimeout(timer)
      child.stdout.off('data', onData)
      child.off('exit', onExit)
      err ? reject(err) : resolve(v)
    }
    child.stdout.on('data', onData)
    child.on('exit', onExit)
  })
}

/**
 * The server stops its postmaster on SIGTERM, and the kernel signals it when the server dies
 * (Pdeathsig); wait for postmaster.pid to disappear before the directory is removed, and
 * kill the postmaster only if it is still there after the timeout.
 */
async function waitPostgresGone(pgDir) {
  const pidFile = join(pgDir, 'postmaster.pid')
  const deadline = Date.now() + STOP_TIMEOUT_MS
  while (existsSync(pidFile) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0])
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {}
    }
  }
}

// ---------------------------------------------------------------------------------------------
// JWTs

function b64url(v) {
  return Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url')
}

/** An HS256 JWT over claims (iat and a one-hour exp added unless given). */
export function signJWT(claims, secret) {
  const now = Math.floor(Date.now() / 1000)
  const payload = { iat: now, exp: now + 3600, ...claims }
  const input = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(payload)}`
  const sig = createHmac('sha256', secret).update(input).digest('base64url')
  return `${input}.${sig}`
}

// ---------------------------------------------------------------------------------------------
// SQL through psql

let psqlPath
function psqlBinary() {
  if (psqlPath) return psqlPath
  for (const dir of (process.env.PATH || '').split(':')) {
    if (dir && existsSync(join(dir, 'psql'))) return (psqlPath = join(dir, 'psql'))
  }
  try {
    for (const v of readdirSync('/usr/lib/postgresql').sort().reverse()) {
      const p = join('/usr/lib/postgresql', v, 'bin', 'psql')
      if (existsSync(p)) return (psqlPath = p)
    }
  } catch {}
  throw new Error('psql not found on PATH or in /usr/lib/postgresql/*/bin (apt-get install postgresql-client)')
}

/** Runs SQL (one or more statements, in one transaction) and returns the rows of the last one as arrays of strings. */
export async function psql(conn, text) {
  const { stdout } = await promisify(execFile)(
    psqlBinary(),
    [conn, '-X', '-q', '-A', '-t', '-F', '\t', '-v', 'ON_ERROR_STOP=1', '-1', '-c', text],
    { encoding: 'utf8' },
  ).catch((err) => {
    throw new Error(`psql failed: ${err.stderr || err.message}\nSQL: ${text}`)
  })
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split('\t'))
}

// ---------------------------------------------------------------------------------------------
// Small helpers for tests

export const uuid = randomUUID

/** Bytes of a Blob / ArrayBuffer / Buffer as a Buffer. */
export async function bytesOf(v) {
  if (v instanceof Blob) return Buffer.from(await v.arrayBuffer())
  return Buffer.from(v)
}

/** Deterministic pseudo-random bytes (cheap, and distinct per seed). */
export function pseudoRandomBytes(n, seed = 1) {
  const b = Buffer.allocUnsafe(n)
  let x = seed >>> 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    b[i] = x & 0xff
  }
  return b
}
