/**
 * What a coordination backend reads from and gives to a retry budget
 * (`Remote.budgetWindow`, `Remote.shareBudget`), kept beside each budget that
 * `RetryBudget.make` makes.
 *
 * @internal
 */

/** Calls and retries counted over the budget's window. */
export interface Window {
  readonly calls: number
  readonly retries: number
}

/** The other replicas' windows, added up, and how many replicas reported them. */
export interface Shared extends Window {
  readonly replicas: number
}

export interface BudgetShare {
  /** This budget's own window (the calls and retries of this process). */
  readonly local: () => Window
  /** Adds the other replicas' windows to the budget; `undefined`: the budget counts alone again. */
  readonly share: (shared: Shared | undefined) => void
}

const shares = new WeakMap<object, BudgetShare>()

export const attach = (budget: object, share: BudgetShare): void => {
  shares.set(budget, share)
}

/** The share of a budget made by `RetryBudget.make`; anything else is a programming error (a defect, thrown). */
export const shareOf = (budget: object, user: string): BudgetShare => {
  const share = shares.get(budget)
  if (share === undefined) {
    throw new TypeError(`@neural-hive/resilience: ${user} needs a budget made by RetryBudget.make`)
  }
  return share
}
