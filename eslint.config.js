/**
 * Layering, enforced by the local rule `tabswarm/layers` below (an arrow points at what may import):
 *
 *   shared  ←  signaling-server
 *   shared  ←  client/runtime, client/mesh  ←  client/session  ←  client/ui
 *
 * and nothing in the client imports the server: the two only meet over socket.io and HTTP.
 * shared/ is isomorphic and bundled for the browser, except shared/data/node/ (it reads the
 * dataset packages with node:fs), which the rest of shared/ must not import.
 *
 * Test files (*.test.ts, *.int.test.ts, *.e2e.test.ts) are exempt from the zones on purpose: they
 * wire layers together (a session test runs the server's RoomRegistry, a server test drives a
 * Node client), and none of them is bundled or imported by production code.
 *
 * The rule resolves relative specifiers with plain path arithmetic: the project imports its own
 * code only by relative path, so an import plugin with a module resolver would add dependencies
 * without catching more.
 */
import { builtinModules } from 'node:module'
import { dirname, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import reactHooks from 'eslint-plugin-react-hooks'
import tseslint from 'typescript-eslint'

const root = dirname(fileURLToPath(import.meta.url))

/** An import is reported once, for the first zone that forbids it, so the zone with the apter reason comes first. */
const ZONES = [
  {
    from: ['shared/'],
    except: ['shared/data/node/'],
    forbid: ['shared/data/node/'],
    forbidBuiltins: true,
    why: 'shared/ is bundled for the browser; Node-only code lives in shared/data/node/',
  },
  { from: ['shared/'], forbid: ['client/', 'signaling-server/', 'bench/', 'tests/', 'tools/'], why: 'shared/ depends on nothing in the repo' },
  { from: ['signaling-server/'], forbid: ['client/', 'bench/', 'tests/'], why: 'the server depends only on shared/' },
  { from: ['client/'], forbid: ['signaling-server/'], why: 'the client reaches the server only over the network' },
  {
    from: ['client/runtime/', 'client/mesh/'],
    forbid: ['client/session/', 'client/ui/', 'signaling-server/'],
    why: 'runtime and mesh sit below the session and the UI',
  },
  { from: ['client/session/'], forbid: ['client/ui/', 'signaling-server/'], why: 'the session sits below the UI' },
]

const builtins = new Set(builtinModules)
const isBuiltin = (spec) => spec.startsWith('node:') || builtins.has(spec.split('/')[0])
const under = (path, dirs) => dirs.some((d) => path.startsWith(d))

/** Repo-relative target of a relative import, with the module name for bare ones. */
function target(file, spec) {
  if (!spec.startsWith('.')) return { bare: spec }
  return { path: relative(root, resolve(dirname(file), spec)).split('\\').join('/') }
}

function violation(fromPath, t) {
  for (const z of ZONES) {
    if (!under(fromPath, z.from) || (z.except && under(fromPath, z.except))) continue
    if (t.bare !== undefined) {
      if (z.forbidBuiltins && isBuiltin(t.bare)) return { zone: z, what: `the Node built-in '${t.bare}'` }
    } else if (under(t.path, z.forbid) || z.forbid.some((d) => `${t.path}/` === d)) return { zone: z, what: t.path }
  }
  return undefined
}

const layersRule = {
  meta: {
    type: 'problem',
    docs: { description: 'keeps imports inside the layering described atop eslint.config.js' },
    schema: [],
    messages: { forbidden: '{{from}} must not import {{what}} ({{why}}).' },
  },
  create(context) {
    const fromPath = relative(root, context.filename).split('\\').join('/')
    const check = (node) => {
      if (!node || node.type !== 'Literal' || typeof node.value !== 'string') return
      const v = violation(fromPath, target(context.filename, node.value))
      if (v) context.report({ node, messageId: 'forbidden', data: { from: fromPath, what: v.what, why: v.zone.why } })
    }
    return {
      ImportDeclaration: (n) => check(n.source),
      ExportNamedDeclaration: (n) => check(n.source),
      ExportAllDeclaration: (n) => check(n.source),
      ImportExpression: (n) => check(n.source),
      // Workers and wasm are bundled through new URL('./x', import.meta.url): an import in effect.
      NewExpression: (n) => {
        const meta = n.arguments[1]
        if (n.callee.type === 'Identifier' && n.callee.name === 'URL' && meta?.type === 'MemberExpression' && meta.object.type === 'MetaProperty')
          check(n.arguments[0])
      },
    }
  },
}

export default [
  {
    // Build outputs, dependencies, generated results and docs: nothing written by hand to lint.
    ignores: ['dist/**', '**/node_modules/**', 'public/**', 'bench/results/**', 'docs/**', 'coverage/**', 'test-results/**', 'data/**', '.tabswarm-data/**'],
  },
  {
    // Syntax only, no type information: the compiler already type-checks, and lint stays fast.
    files: ['**/*.{ts,tsx,mts,cts}'],
    languageOptions: { parser: tseslint.parser, parserOptions: { ecmaFeatures: { jsx: true } } },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      '@typescript-eslint/no-non-null-asserted-optional-chain': 'error',
      '@typescript-eslint/no-unnecessary-type-constraint': 'error',
      '@typescript-eslint/prefer-as-const': 'error',
      '@typescript-eslint/no-duplicate-enum-values': 'error',
      '@typescript-eslint/no-misused-new': 'error',
      '@typescript-eslint/no-unsafe-declaration-merging': 'error',
      '@typescript-eslint/no-wrapper-object-types': 'error',
    },
  },
  {
    // Production code spells out its types; tests may poke at internals.
    files: ['**/*.{ts,tsx}'],
    ignores: ['**/*.test.ts', '**/*.test.tsx'],
    rules: { '@typescript-eslint/no-explicit-any': 'error' },
  },
  {
    files: ['client/**/*.{ts,tsx}'],
    plugins: { 'react-hooks': reactHooks },
    rules: { 'react-hooks/rules-of-hooks': 'error', 'react-hooks/exhaustive-deps': 'error' },
  },
  {
    files: ['**/*.{ts,tsx,mts,cts,js,mjs,cjs}'],
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    // A handful of cheap checks that the TypeScript compiler does not make and today's code passes.
    rules: {
      'no-debugger': 'error',
      'no-self-assign': 'error',
      'no-self-compare': 'error',
      'no-dupe-else-if': 'error',
      'no-unsafe-finally': 'error',
      'no-constant-binary-expression': 'error',
      'no-async-promise-executor': 'error',
      'no-sparse-arrays': 'error',
      'no-template-curly-in-string': 'error',
      'no-var': 'error',
      eqeqeq: ['error', 'smart'],
    },
  },
  {
    files: ['shared/**', 'signaling-server/**', 'client/**'],
    ignores: ['**/*.test.ts', '**/*.test.tsx'],
    plugins: { tabswarm: { rules: { layers: layersRule } } },
    rules: { 'tabswarm/layers': 'error' },
  },
]
