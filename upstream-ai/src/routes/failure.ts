/** Records an error on the request's completion line: its type and the provider detail that is safe to log. */
import type { ApiError } from '../../../common/src/errors.js'
import { isProviderFailureDetail } from '../providers/provider.js'
import { recordProviderEnd, type RequestScope } from '../request-scope.js'

export function recordFailure (scope: RequestScope, error: ApiError): void {
  recordProviderEnd(scope)
  scope.log.error_type = error.type
  if (isProviderFailureDetail(error.cause)) Object.assign(scope.log, error.cause)
  else if (error.type === 'INTERNAL_ERROR') scope.internalCause = error.cause
}
