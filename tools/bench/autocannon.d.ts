// autocannon ships no types; this declares the part of its programmatic API the bench uses.
declare module "autocannon" {
  namespace autocannon {
    interface Options {
      readonly url: string
      readonly method?: string
      readonly headers?: Record<string, string>
      readonly body?: string
      readonly idReplacement?: boolean
      readonly connections?: number
      readonly duration?: number
      /** Requests per connection after which autocannon opens a new one. */
      readonly reconnectRate?: number
    }
    interface Histogram {
      readonly average: number
      readonly p50: number
      readonly p99: number
      readonly total: number
    }
    interface Result {
      readonly requests: Histogram
      readonly latency: Histogram
      readonly errors: number
      readonly timeouts: number
      readonly non2xx: number
      /** Responses per status code. */
      readonly statusCodeStats: Readonly<Record<string, { readonly count: number }>>
    }
  }
  function autocannon(options: autocannon.Options): Promise<autocannon.Result>
  export default autocannon
}
