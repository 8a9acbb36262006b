/**
 * The development JWT secret: the one place it is written down. The gateway
 * uses it when JWT_SECRET_KEY is unset outside production (and says so in a
 * warning), and `make token` signs with it, so a fresh checkout works with
 * no setup. Anyone can read it here: it must never guard real traffic, which
 * is why production refuses to start without a real JWT_SECRET_KEY.
 */
export const DEV_JWT_SECRET = 'ai-gateway-development-secret-do-not-use-in-production'

/** The shortest JWT_SECRET_KEY production accepts, in bytes (HS256 wants at least the hash size). */
export const MIN_JWT_SECRET_BYTES = 32
