// Damaged copies of the tiny model directory, for the tests of what loading a model refuses, and
// one whose load waits for the test.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { type Manifest, rehashManifestFile } from '../../src/engine/model_dir';
import { tinyModelDir } from '../setup/tiny_model';

/** A copy of a model directory that a test may damage. */
export function copyOfModel(source: string, label: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `adserve-${label}-`));
  cpSync(source, dir, { recursive: true });
  return dir;
}

/** A copy of the tiny model directory that a test may damage. */
export function copyOfTinyModel(label: string): string {
  return copyOfModel(tinyModelDir, label);
}

/** Overwrites a float32 file with `value` everywhere, keeping its size. */
export function fillFloats(dir: string, name: string, value: number): void {
  const file = path.join(dir, name);
  writeFileSync(file, Buffer.from(new Float32Array(statSync(file).size / 4).fill(value).buffer));
}

/** A model whose click and conversion heads were trained into NaN: it loads and retrieves, and scores nothing. */
export function nanHeadsModel(): string {
  return withHeads(copyOfTinyModel('nan-heads'), ['head.weight.fill_(float("nan"))']);
}

/**
 * A copy of the model at `base` whose click and conversion heads predict about 1e-13 for
 * everything: finite scores, but no CPC or CPA ad clears its reserve.
 */
export function hopelessHeadsModel(base: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'adserve-hopeless-heads-'));
  cpSync(base, dir, { recursive: true });
  return withHeads(dir, ['head.weight.fill_(0.0)', 'head.bias.fill_(-30.0)']);
}

/** The model directory `dir` with `statements` run on each of its two heads (`head`) in TorchScript. */
function withHeads(dir: string, statements: string[]): string {
  const model = path.join(dir, 'model.pt');
  execFileSync('/usr/bin/python3', [
    '-c',
    [
      'import sys, torch',
      'model = torch.jit.load(sys.argv[1])',
      'with torch.no_grad():',
      '    for head in (model.ctr_head, model.cvr_head):',
      ...statements.map((statement) => `        ${statement}`),
      'model.save(sys.argv[1])',
    ].join('\n'),
    model,
  ]);
  rehashManifestFile(dir, 'model.pt');
  return dir;
}

/**
 * A copy of the tiny model whose manifest also lists a named pipe, so loading it stays in the
 * "verifying files" stage (hashing every listed file) until `release` writes the pipe's bytes.
 */
export function modelHeldAtVerification(): { dir: string; release(): Promise<void> } {
  const dir = copyOfTinyModel('held');
  const name = 'held.bin';
  const bytes = Buffer.alloc(64 * 1024, 7);
  execFileSync('mkfifo', [path.join(dir, name)]);
  const manifestPath = path.join(dir, 'manifest.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
  manifest.files[name] = { dtype: 'float32', shape: [bytes.length / 4], sha256: createHash('sha256').update(bytes).digest('hex') };
  writeFileSync(manifestPath, JSON.stringify(manifest));
  return { dir, release: () => writeFile(path.join(dir, name), bytes) };
}
