// Headless Chromium for the browser tests (browser.test.js, tus-browser.test.js): where it is,
// a loopback page server on an origin of its own, and a run of Chromium on a page that hands
// back the page's DOM once its in-page program finished.
//
// Chromium is required when STORAGE_BROWSER_TEST=1 (the Makefile's test/js sets it): then a
// missing Chromium fails the tests. Otherwise they are skipped with a message (chromiumSkip).

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import { join } from 'node:path'

import { freshDir } from './harness.js'

const required = process.env.STORAGE_BROWSER_TEST === '1'

/** The Chromium binary ($CHROMIUM, else chromium or Chrome on PATH), or null. */
export const chromium = findChromium()

/** The describe option `skip` of a browser test: false when it runs. */
export const chromiumSkip = !chromium && !required ? 'Chromium not found (set CHROMIUM or install chromium; STORAGE_BROWSER_TEST=1 makes this a failure)' : false

/** The message of the test that fails when Chromium is required but missing. */
export const chromiumMissing = 'Chromium is required (STORAGE_BROWSER_TEST=1) but was not found: apt-get install -y chromium (make chromium), or set CHROMIUM'

function findChromium() {
  const candidates = [process.env.CHROMIUM, 'chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'].filter(Boolean)
  for (const c of candidates) {
    if (c.includes('/')) {
      if (existsSync(c)) return c
      continue
    }
    for (const dir of (process.env.PATH || '').split(':')) {
      if (dir && existsSync(join(dir, c))) return join(dir, c)
    }
  }
  return null
}

/**
 * A loopback page server: GET / serves pageFor(query) (HTML), POST /result takes the page's
 * verdict. GET /hold.js, a parser-blocking script at the end of the page, is answered only once
 * the verdict arrived (or after 45 s), so the page's load event, which --dump-dom waits for,
 * comes after the in-page program finished. extra maps more paths to handlers (req, res, url)
 * for GET (serveFile makes one for a file).
 */
export function startPageServer(pageFor, extra = {}) {
  // api.onRan, when set, is told of every POST /ran (the reports of scripts under test).
  const api = {}
  const results = []
  const holds = []
  const release = () => {
    for (const res of holds.splice(0)) {
      res.writeHead(200, { 'content-type': 'text/javascript' })
      res.end('/* released */')
    }
  }
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/hold.js') {
      if (results.length > 0) {
        holds.push(res)
        return release()
      }
      holds.push(res)
      const t = setTimeout(release, 45_000)
      res.on('close', () => clearTimeout(t))
      return
    }
    const url = new URL(req.url, 'http://x')
    if (req.method === 'GET' && extra[url.pathname]) return extra[url.pathname](req, res, url)
    if (req.method === 'GET' && url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
      return res.end(pageFor(url.searchParams))
    }
    if (req.method === 'POST' && url.pathname === '/ran') {
      api.onRan?.(req.url)
      res.writeHead(204)
      return res.end()
    }
    if (req.method === 'POST' && url.pathname === '/result') {
      let body = ''
      req.on('data', (c) => (body += c))
      req.on('end', () => {
        results.push(body)
        res.writeHead(204)
        res.end()
        release()
      })
      return
    }
    res.writeHead(404)
    res.end()
  })
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      Object.assign(api, {
        origin: `http://127.0.0.1:${server.address().port}`,
        results,
        close: () => new Promise((r) => {
          server.closeAllConnections?.()
          server.close(() => r())
        }),
      })
      resolve(api)
    })
  })
}

/** A GET handler for startPageServer's extra: the file at path (read once), as type. */
export function serveFile(path, type) {
  const body = readFileSync(path)
  return (req, res) => {
    res.writeHead(200, { 'content-type': type })
    res.end(body)
  }
}

/** Runs headless Chromium on url with --dump-dom and returns the text of <pre id="result">. */
export async function dumpResult(url) {
  const { stdout, stderr } = await dumpDOM(url)
  const m = stdout.match(/<pre id="result">([\s\S]*?)<\/pre>/)
  assert.ok(m, `no <pre id="result"> in Chromium's dump.\nstdout: ${stdout.slice(0, 2000)}\nstderr: ${stderr}`)
  return m[1].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&')
}

/** Runs headless Chromium on url with --dump-dom and returns what it printed: the DOM once loaded. */
export async function dumpDOM(url) {
  const profile = freshDir('storage-js-chromium-')
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-dev-shm-usage',
    `--user-data-dir=${profile}`,
    '--virtual-time-budget=60000',
    '--dump-dom',
    url,
  ]
  const child = spawn(chromium, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c) => (stdout += c))
  child.stderr.on('data', (c) => (stderr = (stderr + c).slice(-8000)))
  const killGroup = (sig) => {
    try {
      process.kill(-child.pid, sig)
    } catch {}
  }
  const exited = new Promise((resolve) => child.on('exit', resolve))
  // a wedged browser must not hang the run: SIGTERM at 60 s, SIGKILL 5 s later
  const t1 = setTimeout(() => killGroup('SIGTERM'), 60_000)
  const t2 = setTimeout(() => killGroup('SIGKILL'), 65_000)
  const onExit = () => killGroup('SIGKILL')
  process.on('exit', onExit)
  try {
    await exited
  } finally {
    clearTimeout(t1)
    clearTimeout(t2)
    killGroup('SIGKILL') // helpers (zygote, GPU, …) left in the group
    process.off('exit', onExit)
    rmSync(profile, { recursive: true, force: true })
  }
  return { stdout, stderr }
}
