/**
 * Workflows the Temporal integration test runs in a real `@temporalio/worker`. Bundled by the worker
 * (webpack + swc) and run in its sandbox: only `@temporalio/workflow` may be imported here.
 */
import * as workflow from "@temporalio/workflow"

/** The ticket's status: `waiting` until `approve` is signalled. */
export const statusQuery = workflow.defineQuery<string>("status")

/** A query handler that throws, for `QueryFailed`. */
export const brokenQuery = workflow.defineQuery<string>("broken")

/** Approves the ticket: the workflow completes with `approved by <who>`. */
export const approveSignal = workflow.defineSignal<[string]>("approve")

/** Waits for `approve`, answering `status` meanwhile. */
export async function ticketWorkflow(ticketId: string): Promise<string> {
  let status = `waiting:${ticketId}`
  workflow.setHandler(statusQuery, () => status)
  workflow.setHandler(brokenQuery, () => {
    throw new Error("the query handler failed")
  })
  workflow.setHandler(approveSignal, (who) => {
    status = `approved by ${who}`
  })
  await workflow.condition(() => status.startsWith("approved"))
  return status
}

/** Fails at once, without retries: for `WorkflowFailed`. */
export async function failingWorkflow(reason: string): Promise<never> {
  throw workflow.ApplicationFailure.nonRetryable(reason, "TicketRejected")
}
