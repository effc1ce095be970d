/**
 * A refresh shared by the collect() of several metrics. A scrape calls every
 * metric's collect() in one synchronous step: the first call runs `refresh`,
 * the others reuse its result until the next microtask (a scrape of 1,000
 * breakers once did the work five times). A metric read alone is still exact.
 *
 * @internal
 */
export const oncePerScrape = (refresh: () => void): () => void => {
  let fresh = false
  return () => {
    if (fresh) return
    fresh = true
    queueMicrotask(() => {
      fresh = false
    })
    refresh()
  }
}
