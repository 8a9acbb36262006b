/**
 * Prints a development token: `make token USER=alice` (or
 * `node dist/gateway/src/tools/dev-token.js alice`). HS256, signed with
 * JWT_SECRET_KEY or, outside production, the development secret the gateway
 * uses when that is unset; `sub` is the user id, valid for one hour, with
 * the issuer and audience the gateway is configured to require. Prints the
 * token alone, so `TOKEN=$(make -s token USER=alice)` works.
 */
import { SignJWT } from 'jose'
import { ConfigError, loadSettings } from '../../../common/src/config.js'
import { SETTINGS, resolveJwtSecret } from '../config.js'
import { USER_ID } from '../pipeline/identity.js'

const TOKEN_LIFETIME = '1h'

async function main (): Promise<number> {
  const userId = process.argv[2]
  if (userId === undefined || !USER_ID.test(userId)) {
    process.stderr.write('usage: dev-token <user-id>   (visible ASCII, at most 256 characters)\n')
    return 2
  }
  const { environment, jwtSecretKey, jwtIssuer, jwtAudience } = SETTINGS
  let settings
  try {
    settings = loadSettings({ environment, jwtSecretKey, jwtIssuer, jwtAudience })
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    process.stderr.write(`dev-token: ${error.message}\n`)
    return 1
  }
  const jwt = resolveJwtSecret(settings.environment, settings.jwtSecretKey)
  if ('problem' in jwt) {
    process.stderr.write(`dev-token: ${jwt.problem}\n`)
    return 1
  }
  let token = new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(userId).setIssuedAt().setExpirationTime(TOKEN_LIFETIME)
  if (settings.jwtIssuer !== undefined) token = token.setIssuer(settings.jwtIssuer)
  if (settings.jwtAudience !== undefined) token = token.setAudience([...settings.jwtAudience])
  process.stdout.write(`${await token.sign(new TextEncoder().encode(jwt.secret))}\n`)
  return 0
}

main().then((code) => { process.exitCode = code }, (error: unknown) => {
  process.stderr.write(`dev-token: ${(error as Error).message}\n`)
  process.exitCode = 1
})
