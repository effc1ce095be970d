/**
 * One writer per destination, shared by every `Logging.layer` writing to it:
 * the lines of one scheduler turn are joined into one `write`, in the order
 * they were logged, whichever layer logged them.
 *
 * @internal
 */
import type * as Scheduler from "effect/Scheduler"

/** @internal */
export interface Destination {
  write(chunk: string): boolean
  once(event: "drain", listener: () => void): unknown
}

/** @internal */
export interface Settings {
  readonly maxBufferedLines: number
  readonly dispatcher: Scheduler.SchedulerDispatcher
  /** The notice of the lines dropped, written before the lines that follow them. */
  readonly droppedLine: (dropped: number) => string
}

/** @internal */
export class LineWriter {
  private lines: Array<string> = []
  private scheduled = false
  /** The destination asked to wait (`write` returned false) and has not drained yet. */
  private blocked = false
  /** Lines flushed while blocked, written at `drain`. */
  private held: Array<string> = []
  private dropped = 0
  users = 0
  readonly destination: Destination
  readonly settings: Settings

  constructor(destination: Destination, settings: Settings) {
    this.destination = destination
    this.settings = settings
  }

  add(line: string): void {
    this.lines.push(line)
    if (this.scheduled) return
    this.scheduled = true
    this.settings.dispatcher.scheduleTask(this.flush, 0)
  }

  /** The lines of the turn that ends: one write, or held while the destination has not drained. */
  readonly flush = (): void => {
    this.scheduled = false
    if (this.lines.length === 0) return
    const lines = this.lines
    this.lines = []
    if (this.blocked) this.hold(lines)
    else this.write(lines)
  }

  /** Everything now, in order, whether the destination drained or not: at release and at exit. */
  readonly flushAll = (): void => {
    const all = this.takeHeld()
    for (const line of this.lines) all.push(line)
    this.lines = []
    if (all.length > 0) this.destination.write(all.join("\n") + "\n")
  }

  /** The held lines, then the notice of those dropped after them; both emptied. */
  private takeHeld(): Array<string> {
    const held = this.held
    this.held = []
    if (this.dropped > 0) held.push(this.settings.droppedLine(this.dropped))
    this.dropped = 0
    return held
  }

  private write(lines: Array<string>): void {
    if (this.destination.write(lines.join("\n") + "\n")) return
    this.blocked = true
    this.destination.once("drain", this.drained)
  }

  private hold(lines: Array<string>): void {
    const room = Math.max(0, this.settings.maxBufferedLines - this.held.length)
    const kept = Math.min(room, lines.length)
    for (let i = 0; i < kept; i++) this.held.push(lines[i]!)
    this.dropped += lines.length - kept
  }

  private readonly drained = (): void => {
    this.blocked = false
    const held = this.takeHeld()
    if (held.length > 0) this.write(held)
  }
}
