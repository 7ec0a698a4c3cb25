// Every document the repository's sources and docs cite must be in the repository: a comment that
// points at a page nobody can open explains nothing. Checked over every tracked text file: markdown
// links, bare `name.md` mentions, quoted section names after a page, and design documents cited by
// section number without their extension.
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { projectRoot } from '../src/paths';

/** This file cites missing documents on purpose, to show that each kind is caught. */
const thisFile = path.relative(projectRoot, __filename).split(path.sep).join('/');

/** Markdown files the code writes (a model directory's evaluation report), named in docs but never tracked. */
const writtenByTheCode = new Set(['report.md']);

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
const slugOf = (heading: string): string =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[`*_]/g, '')
    .replace(/[^\p{L}\p{N}\s-]/gu, '')
    .replace(/\s/g, '-');

function headingsOf(markdown: string): { texts: Set<string>; slugs: Set<string> } {
  const texts = new Set<string>();
  const slugs = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6}\s+(.*?)\s*#*$/.exec(line);
    if (!heading) continue;
    const text = heading[1]!.replace(/`/g, '');
    texts.add(text.toLowerCase());
    let slug = slugOf(text);
    for (let n = 1; slugs.has(slug); n++) slug = `${slugOf(text)}-${n}`;
    slugs.add(slug);
  }
  return { texts, slugs };
}

/** A repository file, read once. */
type Reader = (file: string) => string | undefined;

/**
 * What `text` (the contents of `file`, a path from the repository root) cites that is not there:
 * one message per broken citation. `read` returns a tracked file's text, undefined when absent.
 */
function brokenCitations(file: string, text: string, read: Reader): string[] {
  const problems: string[] = [];
  const dir = path.posix.dirname(file);
  const withoutUrls = text.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s)>\]'"`]+/gi, ' ');
  const resolve = (target: string, bases: string[]): string | undefined =>
    bases.map((base) => path.posix.normalize(path.posix.join(base, target))).find((candidate) => !candidate.startsWith('..') && read(candidate) !== undefined);

  const checkAnchor = (page: string, anchor: string, cited: string): void => {
    const markdown = read(page);
    if (markdown !== undefined && !headingsOf(markdown).slugs.has(anchor.toLowerCase())) problems.push(`${cited}: ${page} has no heading #${anchor}`);
  };

  // Markdown links render relative to the page that holds them.
  if (file.endsWith('.md')) {
    for (const [, target] of withoutUrls.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^(mailto:|#)/.test(target!)) continue;
      const [linked, anchor] = target!.split('#') as [string, string | undefined];
      const page = resolve(decodeURIComponent(linked), [dir]);
      if (page === undefined) problems.push(`link (${target}) names no file in the repository`);
      else if (anchor && page.endsWith('.md')) checkAnchor(page, anchor, `link (${target})`);
    }
  }

  // A bare mention may be relative to the file, to the repository root or to docs/.
  for (const [mention] of withoutUrls.matchAll(/(?<![\w/.-])[\w./-]*[\w-]\.md\b/g)) {
    if (writtenByTheCode.has(path.posix.basename(mention))) continue;
    if (resolve(mention, [dir, '.', 'docs']) === undefined) problems.push(`${mention} is not in the repository`);
  }

  // A section cited by name after its page: `docs/auction.md, "VCG"` or `README "Money"`.
  for (const [, page, heading] of withoutUrls.matchAll(/((?<![\w/.-])[\w./-]*[\w-]\.md|\bREADME)\b[,:]?\s+"([^"\n]+)"/g)) {
    const found = resolve(page === 'README' ? 'README.md' : page!, [dir, '.', 'docs']);
    if (found === undefined) continue;
    const { texts } = headingsOf(read(found)!);
    if (!texts.has(heading!.toLowerCase())) problems.push(`${page}, "${heading}": ${found} has no such heading`);
  }

  // Design documents cited by section without their extension: `BOOK_SPEC 2.3`, `DESIGN §4`, `SPEC part 2`.
  // (A version such as `FAISS 1.7` has no underscore and no section sign.)
  for (const [citation] of withoutUrls.matchAll(
    /\b(?:[A-Z][A-Z0-9]*_[A-Z0-9_]+(?:\.md)?\s*(?:§\s*\d|part\s+\d|\d+\.\d+)|[A-Z][A-Z0-9_]{3,}(?:\.md)?\s*(?:§\s*\d|part\s+\d))/g,
  )) {
    problems.push(`${citation.trim()} cites a document by section that is not in the repository`);
  }
  return problems.map((problem) => `${file}: ${problem}`);
}

/** Tracked files and new ones not ignored: what the repository holds once they are committed. */
function repositoryFiles(): string[] {
  return execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: projectRoot, encoding: 'utf8' })
    .split('\0')
    .filter((file) => file !== '' && file !== 'package-lock.json' && file !== thisFile);
}

function repositoryReader(tracked: readonly string[]): Reader {
  const known = new Set(tracked);
  const cache = new Map<string, string | undefined>();
  return (file) => {
    if (!known.has(file)) return undefined;
    if (!cache.has(file)) {
      const full = path.join(projectRoot, file);
      // A listed path may be a deleted file or a link to a directory (a worktree's node_modules).
      const bytes = statSync(full, { throwIfNoEntry: false })?.isFile() ? readFileSync(full) : undefined;
      cache.set(file, bytes === undefined || bytes.includes(0) ? undefined : bytes.toString('utf8'));
    }
    return cache.get(file);
  };
}

describe('documents cited in the repository', () => {
  it('are all in it: every cited markdown file, linked file, heading and section exists', () => {
    const tracked = repositoryFiles();
    const read = repositoryReader(tracked);
    expect(tracked.length).toBeGreaterThan(100);
    const problems = tracked.flatMap((file) => {
      const text = read(file);
      return text === undefined ? [] : brokenCitations(file, text, read);
    });
    expect(problems).toEqual([]);
  });

  it('catches each kind of broken citation, and accepts what resolves', () => {
    const pages: Record<string, string> = {
      'README.md': '# adserve\n\n### Money\n',
      'docs/auction.md': '# The auction\n\n## VCG\n\n```\n# not a heading\n```\n',
      'src/auction/auction.ts': '',
    };
    const read: Reader = (file) => pages[file];
    const check = (file: string, text: string): string[] => brokenCitations(file, text, read);
    expect(check('src/a.ts', '// rules: docs/auction.md, "VCG"; README "Money"; auction.md; https://example.com/DESIGN.md')).toEqual([]);
    expect(check('docs/x.md', 'See [the auction](auction.md#vcg) and [code](../src/auction/auction.ts).')).toEqual([]);
    expect(check('src/a.ts', '// see notes/BOOK_SPEC.md')).toEqual(['src/a.ts: notes/BOOK_SPEC.md is not in the repository']);
    expect(check('src/a.ts', '// as in BOOK_SPEC 2.3-2.6; FAISS 1.7.3; RFC 9112 §6.3')).toEqual([
      'src/a.ts: BOOK_SPEC 2.3 cites a document by section that is not in the repository',
    ]);
    expect(check('train/m.py', '"""The model of DESIGN.md §4."""')).toHaveLength(2);
    expect(check('docs/x.md', '[spec](../shared/AUCTION.md)')).toHaveLength(2);
    expect(check('docs/x.md', '[gone](auction.md#gsp) [none](missing.ts)')).toEqual([
      'docs/x.md: link (auction.md#gsp): docs/auction.md has no heading #gsp',
      'docs/x.md: link (missing.ts) names no file in the repository',
    ]);
    expect(check('src/a.ts', '// docs/auction.md, "not a heading"')).toEqual([
      'src/a.ts: docs/auction.md, "not a heading": docs/auction.md has no such heading',
    ]);
  });
});
