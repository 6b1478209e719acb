/**
 * Lists functions (declarations, methods, arrow functions and function expressions) longer than
 * a line limit in the project's non-test TypeScript, longest first. `npx tsx tools/long-functions.ts [limit]`.
 * Architecture reviews use it (docs/architecture.md "Function size").
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import ts from 'typescript'

const root = join(import.meta.dirname, '..')
const limit = Number(process.argv[2] ?? 80)
const DIRS = ['client', 'shared', 'signaling-server', 'bench', 'tools']

function* files(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (name === 'node_modules' || name === 'dist') continue
    if (statSync(p).isDirectory()) yield* files(p)
    else if (/\.tsx?$/.test(name) && !/\.test\.tsx?$/.test(name) && !name.endsWith('.d.ts')) yield p
  }
}

const out: { lines: number; where: string; name: string }[] = []
for (const d of DIRS) {
  for (const file of files(join(root, d))) {
    const src = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true)
    const visit = (n: ts.Node) => {
      if (ts.isFunctionLike(n) && 'body' in n && n.body) {
        const start = src.getLineAndCharacterOfPosition(n.getStart()).line
        const end = src.getLineAndCharacterOfPosition(n.getEnd()).line
        const lines = end - start + 1
        if (lines > limit) {
          let name = n.name?.getText(src) ?? ''
          if (!name && ts.isVariableDeclaration(n.parent)) name = n.parent.name.getText(src)
          if (!name && ts.isPropertyAssignment(n.parent)) name = n.parent.name.getText(src)
          out.push({ lines, where: `${relative(root, file)}:${start + 1}`, name: name || '(anonymous)' })
        }
      }
      ts.forEachChild(n, visit)
    }
    visit(src)
  }
}
out.sort((a, b) => b.lines - a.lines)
for (const f of out) console.log(`${String(f.lines).padStart(4)}  ${f.name}  ${f.where}`)
console.log(`${out.length} functions over ${limit} lines`)
