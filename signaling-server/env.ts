import { parseArgs } from 'node:util'
import { z } from 'zod'
import { normalizePublicUrl } from './public-origin'

/**
 * Server settings from the environment (PORT, HOST, DATA_DIR, PUBLIC_URL), overridable by
 * `--port`, `--host`, `--data-dir`, `--public-url` and `--dev`. Validated once at startup so a typo fails loudly.
 */
const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65_535).default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  DATA_DIR: z.string().min(1).default('./.tabswarm-data'),
  /** Origin students open (join links, QR codes); see public-origin.ts. */
  PUBLIC_URL: z.string().min(1).optional(),
})

export interface Settings {
  port: number
  host: string
  dataDir: string
  /** Normalized PUBLIC_URL, or null to derive the public origin (public-origin.ts). */
  publicUrl: string | null
  /** Serve the client through Vite's dev middleware instead of dist/. */
  dev: boolean
}

export function readSettings(argv: string[], env: NodeJS.ProcessEnv): Settings {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'data-dir': { type: 'string' },
      'public-url': { type: 'string' },
      dev: { type: 'boolean', default: false },
    },
    strict: true,
  })
  const r = envSchema.safeParse({
    PORT: values.port ?? (env.PORT === '' ? undefined : env.PORT),
    HOST: values.host ?? (env.HOST || undefined),
    DATA_DIR: values['data-dir'] ?? (env.DATA_DIR || undefined),
    PUBLIC_URL: values['public-url'] ?? (env.PUBLIC_URL || undefined),
  })
  if (!r.success) {
    const issue = r.error.issues[0]
    throw new Error(`invalid setting ${issue?.path.join('.')}: ${issue?.message}`)
  }
  let publicUrl: string | null = null
  if (r.data.PUBLIC_URL !== undefined) publicUrl = normalizePublicUrl(r.data.PUBLIC_URL)
  return { port: r.data.PORT, host: r.data.HOST, dataDir: r.data.DATA_DIR, publicUrl, dev: values.dev ?? false }
}
