import { parseArgs } from 'node:util'
import { z } from 'zod'
import { normalizePublicUrl } from './public-origin'
import { readIceSettings, type IceSettings } from './turn'

/**
 * Server settings from the environment (PORT, HOST, DATA_DIR, PUBLIC_URL, HTTPS, TLS_CERT,
 * TLS_KEY, HTTP_PORT, REDIS_URL), overridable by the flags in USAGE. Validated once at startup so a typo
 * fails loudly.
 */

export const USAGE = `Usage: npm start -- [options]   (npm run serve -- [options] skips the build)

  --port N          PORT        port of the app (default 8080); with --https the HTTPS port
  --host ADDR       HOST        address to listen on (default 0.0.0.0: every interface)
  --data-dir DIR    DATA_DIR    rooms, checkpoints, the generated certificate (default ./.tabswarm-data)
  --public-url URL  PUBLIC_URL  origin students open, used in join links and QR codes
  --https           HTTPS=1     serve HTTPS: LAN tabs then get WebGPU and cross-origin isolation
  --tls-cert FILE   TLS_CERT    certificate (PEM) for --https; without it and --tls-key a
  --tls-key FILE    TLS_KEY     self-signed one is generated once into DATA_DIR and reused
  --http-port N     HTTP_PORT   with --https: a plain-HTTP listener that redirects to HTTPS
                                (default PORT+1, e.g. 8081; 0 picks a free port)
  --redis-url URL   REDIS_URL   keep rooms in Redis so several processes behind a balancer
                                serve them (docs/deploy.md; npm run cluster starts them)
  --dev                         serve the client through Vite (hot reload)
  --help                        this text`

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65_535).default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  DATA_DIR: z.string().min(1).default('./.tabswarm-data'),
  /** Origin students open (join links, QR codes); see public-origin.ts. */
  PUBLIC_URL: z.string().min(1).optional(),
  HTTPS: z.enum(['0', '1', 'true', 'false', 'yes', 'no', 'on', 'off', '']).optional(),
  TLS_CERT: z.string().min(1).optional(),
  TLS_KEY: z.string().min(1).optional(),
  HTTP_PORT: z.coerce.number().int().min(0).max(65_535).optional(),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must start with redis:// or rediss://').optional(),
})

export interface Settings {
  port: number
  host: string
  dataDir: string
  /** Normalized PUBLIC_URL, or null to derive the public origin (public-origin.ts). */
  publicUrl: string | null
  /** Serve the client through Vite's dev middleware instead of dist/. */
  dev: boolean
  /** Serve HTTPS (tls.ts); null: plain HTTP. */
  tls: { certFile: string | null; keyFile: string | null; httpPort: number } | null
  /** `--help`: print USAGE and exit. */
  help: boolean
  /** TURN_SECRET, TURN_URLS, TURN_TTL, ICE_SERVERS, STUN_URLS (turn.ts). */
  ice: IceSettings
  /** REDIS_URL: rooms in Redis, several processes (ownership.ts); null: SQLite in dataDir. */
  redisUrl: string | null
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
      https: { type: 'boolean' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'http-port': { type: 'string' },
      'redis-url': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  })
  const r = envSchema.safeParse({
    PORT: values.port ?? (env.PORT === '' ? undefined : env.PORT),
    HOST: values.host ?? (env.HOST || undefined),
    DATA_DIR: values['data-dir'] ?? (env.DATA_DIR || undefined),
    PUBLIC_URL: values['public-url'] ?? (env.PUBLIC_URL || undefined),
    HTTPS: env.HTTPS?.toLowerCase(),
    TLS_CERT: values['tls-cert'] ?? (env.TLS_CERT || undefined),
    TLS_KEY: values['tls-key'] ?? (env.TLS_KEY || undefined),
    HTTP_PORT: values['http-port'] ?? (env.HTTP_PORT === '' ? undefined : env.HTTP_PORT),
    REDIS_URL: values['redis-url'] ?? (env.REDIS_URL || undefined),
  })
  if (!r.success) {
    const issue = r.error.issues[0]
    throw new Error(`invalid setting ${issue?.path.join('.')}: ${issue?.message}`)
  }
  let publicUrl: string | null = null
  if (r.data.PUBLIC_URL !== undefined) publicUrl = normalizePublicUrl(r.data.PUBLIC_URL)
  const ice = readIceSettings(env)
  const tls = readTls(values.https, r.data)
  return { port: r.data.PORT, host: r.data.HOST, dataDir: r.data.DATA_DIR, publicUrl, dev: values.dev ?? false, ice, tls, help: values.help ?? false, redisUrl: r.data.REDIS_URL ?? null }
}

/** `--https` wins over HTTPS; the redirect listener defaults to PORT+1 (0 with PORT=0, as tests use). */
function readTls(flag: boolean | undefined, d: z.infer<typeof envSchema>): Settings['tls'] {
  const https = flag ?? ['1', 'true', 'yes', 'on'].includes(d.HTTPS ?? '')
  if ((d.TLS_CERT === undefined) !== (d.TLS_KEY === undefined)) throw new Error('TLS_CERT and TLS_KEY go together: set both, or neither')
  if (!https) return null
  const httpPort = d.HTTP_PORT ?? (d.PORT === 0 ? 0 : d.PORT + 1)
  if (httpPort > 65_535) throw new Error(`HTTP_PORT: PORT+1 is ${httpPort}; set HTTP_PORT`)
  if (httpPort !== 0 && httpPort === d.PORT) throw new Error(`HTTP_PORT (${httpPort}) must differ from PORT, which serves HTTPS`)
  return { certFile: d.TLS_CERT ?? null, keyFile: d.TLS_KEY ?? null, httpPort }
}
