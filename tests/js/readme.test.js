// The README runs as written: every ```sh, ```sql and ```js block of ../../README.md, top to
// bottom, in one shell session, against a fresh `storage serve` on the embedded default (what
// `make run` starts), in a directory laid out like a clone (bin/storage, ./data). A block
// preceded by `<!-- readme: not run (why) -->` is skipped; there are few, each says why.
//
// The only changes made to what the README says: `localhost:5000` becomes the port this server
// got (another may hold 5000); ```sql blocks are fed to the psql command the README gives
// (the cluster's superuser over its socket); ```js blocks are saved as files and run with node,
// with SERVICE_ROLE_KEY in their environment as the README says, in a directory whose
// node_modules are this suite's (the pinned @supabase/supabase-js and ws) instead of a fresh
// `npm install`.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { repoRoot, startStorage } from './harness.js'

/** The fenced blocks of markdown, in order: { lang, body, skip }. */
export function readmeBlocks(markdown) {
  const blocks = []
  const lines = markdown.split('\n')
  let skip = null
  for (let i = 0; i < lines.length; i++) {
    const marker = lines[i].match(/^<!-- readme: not run \((.+)\) -->$/)
    if (marker) {
      skip = marker[1]
      continue
    }
    const open = lines[i].match(/^```(\w*)$/)
    if (!open) {
      if (lines[i].trim() !== '') skip = null
      continue
    }
    const body = []
    for (i++; i < lines.length && lines[i] !== '```'; i++) body.push(lines[i])
    blocks.push({ lang: open[1], body: body.join('\n'), skip })
    skip = null
  }
  return blocks
}

/** Runs script with bash in cwd; resolves to { code, out } (stdout and stderr interleaved). */
function bash(script, cwd, env) {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (c) => (out += c))
    child.stderr.on('data', (c) => (out += c))
    child.on('exit', (code) => resolve({ code, out }))
  })
}

test('README: every example block runs, top to bottom, on a fresh server', async (t) => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8')
  const blocks = readmeBlocks(readme)
  const run = blocks.filter((b) => ['sh', 'sql', 'js'].includes(b.lang) && !b.skip)
  const skipped = blocks.filter((b) => b.skip)
  // The README promises that all but a few blocks run: keep it true.
  assert.ok(run.length >= 5, `only ${run.length} README blocks run`)
  assert.ok(skipped.length <= 4, `${skipped.length} README blocks are marked not run: ${skipped.map((b) => b.skip).join('; ')}`)
  for (const b of blocks) assert.ok(['', 'sh', 'sql', 'js'].includes(b.lang), `README block in unknown language ${b.lang}`)

  // The embedded default, exactly as make run starts it: no secret, ./data under the clone.
  const srv = await startStorage({ env: { AUTH_JWT_SECRET: '', STORAGE_DATA_DIR: '' } })
  t.after(() => srv.stop())
  const port = new URL(srv.url).port
  symlinkSync(join(repoRoot, 'bin'), join(srv.dir, 'bin'))
  const jsDir = join(srv.dir, 'js')
  mkdirSync(jsDir)
  symlinkSync(join(repoRoot, 'tests', 'js', 'node_modules'), join(jsDir, 'node_modules'))

  const local = (s) => s.replaceAll('localhost:5000', `127.0.0.1:${port}`)
  let script = 'set -euo pipefail\nexport README_PSQL="host=$PWD/data/pg/socket user=postgres dbname=postgres"\n'
  run.forEach((b, i) => {
    script += `echo "=== README block ${i + 1} (${b.lang}) ==="\n`
    if (b.lang === 'sh') script += local(b.body) + '\n'
    if (b.lang === 'sql') script += `psql "$README_PSQL" -X -v ON_ERROR_STOP=1 <<'README_SQL'\n${b.body}\nREADME_SQL\n`
    if (b.lang === 'js') {
      const file = join(jsDir, `block${i + 1}.mjs`)
      writeFileSync(file, local(b.body) + '\n')
      script += `SERVICE_ROLE_KEY="$SERVICE_ROLE_KEY" node ${file}\n`
    }
  })
  const { code, out } = await bash(script, srv.dir, { ...process.env, PATH: process.env.PATH })
  assert.equal(code, 0, `the README's blocks failed (exit ${code}):\n${out.slice(-8000)}`)
  // What the examples print, where the README says what they print.
  assert.match(out, /^hello, storage$/m, 'the downloaded object')
  assert.match(out, /^meow$/m, 'supabase-js downloads and fetches the object')
  assert.match(out, /\/storage\/v1\/object\/public\/photos\/2026\/cat\.txt/, 'supabase-js public URL')
  assert.match(out, /^http:\/\/[^/\s]+\/upload\/resumable\/[A-Za-z0-9_-]+$/m, 'a resumable upload\'s Location')
  assert.match(out, /^Upload-Offset: 6\r?$/im, 'HEAD of a resumable upload')
  assert.match(out, /^hello world$/m, 'the resumable upload, downloaded')
  assert.match(out, /^resumable upload done$/m, 'tus-js-client')
})
