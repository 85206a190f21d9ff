// busMetrics: a gRPC server interceptor that counts the bus calls a host serves, by method and
// status code, and times them from the call's start to its status.
import * as grpc from '@grpc/grpc-js'

/** CallObserver hears of each call served: its method, its status code's name, its seconds. */
export type CallObserver = (method: string, code: string, seconds: number) => void

/** CODE_NAMES names gRPC's status codes as Prometheus labels show them (`OK`, `UNAVAILABLE`). */
const CODE_NAMES = new Map<number, string>(
  Object.entries(grpc.status)
    .filter(([, v]) => typeof v === 'number')
    .map(([k, v]) => [v as number, k]),
)

/** busMetrics returns an interceptor that reports each call's end to `observe`. */
export function busMetrics(observe: CallObserver): grpc.ServerInterceptor {
  return (method, call) => {
    const t0 = performance.now()
    // `/zongzi.Bus/Propose` → `Propose`: the service is always the bus.
    const name = method.path.slice(method.path.lastIndexOf('/') + 1)
    return new grpc.ServerInterceptingCall(call, {
      sendStatus(status, next) {
        const code = CODE_NAMES.get(status.code) ?? String(status.code)
        observe(name, code, (performance.now() - t0) / 1000)
        next(status)
      },
    })
  }
}
