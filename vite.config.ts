/// <reference types="vitest/config" />
// From 'vite', not 'vitest/config': `npm run build` must work after `npm ci --omit=dev` (vitest is a dev tool); the reference above types the `test` key.
import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'
import { nodePolyfills } from 'vite-plugin-node-polyfills'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('.', import.meta.url))

/**
 * One config for the client build (root: client/, output: dist/) and for the three vitest tiers:
 *   unit         *.test.ts        pure logic, in-memory mesh, tfjs on the CPU/wasm backend
 *   integration  *.int.test.ts    real signaling server on port 0, real socket.io clients, Node WebRTC peers
 *   e2e          *.e2e.test.ts    real headless Chromium pages (run inside a private loopback-only netns)
 */
export default defineConfig({
  root: `${root}client`,
  publicDir: `${root}public`,
  // simple-peer expects Node's Buffer/process/events .
  plugins: [react(), nodePolyfills({ include: ['buffer', 'process', 'events', 'util', 'stream'], globals: { Buffer: true, process: true, global: true } })],
  define: { global: 'globalThis' },
  build: {
    // TABSWARM_DIST lets parallel work build and test its own copy without clobbering dist/.
    outDir: process.env.TABSWARM_DIST ?? `${root}dist`, emptyOutDir: true, chunkSizeWarningLimit: 8000, target: 'es2022',
    rollupOptions: {
      input: {
        main: `${root}client/index.html`,
        // The browser peer of the WebRTC mesh compliance suite (tests/e2e/mesh-compliance.e2e.test.ts):
        // built here so it bundles simple-peer exactly as the app does.
        'mesh-peer': `${root}client/testing/mesh-peer.html`,
      },
    },
  },
  worker: { format: 'es' },
  test: {
    root,
    projects: [
      {
        test: {
          name: 'unit',
          root,
          include: ['shared/**/*.test.ts', 'signaling-server/**/*.test.ts', 'client/**/*.test.ts', 'bench/**/*.test.ts'],
          exclude: ['**/*.int.test.ts', '**/*.e2e.test.ts', '**/node_modules/**'],
          environment: 'node',
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'integration',
          root,
          include: ['**/*.int.test.ts'],
          exclude: ['**/node_modules/**'],
          environment: 'node',
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'e2e',
          root,
          include: ['**/*.e2e.test.ts'],
          exclude: ['**/node_modules/**'],
          environment: 'node',
          testTimeout: 300_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
})
