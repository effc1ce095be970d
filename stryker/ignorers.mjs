// Mutants Stryker leaves out of the score, each for a reason stated here and in docs/testing.md ("Mutation testing").
import { declareValuePlugin, PluginKind } from "@stryker-mutator/api/plugin"

// Error classes whose message is part of the contract: an options error names the circuit, the option, the value
// and what is allowed, so its message is mutated and tested like any other behaviour.
const CONTRACT_MESSAGES = new Set(["CircuitBreakerOptionsError"])

const className = (path) => {
  const owner = path.parentPath?.parentPath?.node
  return owner?.id?.name
}

export const strykerPlugins = [
  declareValuePlugin(PluginKind.Ignore, "MessageText", {
    shouldIgnore(path) {
      // The human text of an error (`get message()`, and the one-line `stack` built from it): wording, not behaviour.
      if (
        path.isClassMethod({ kind: "get" }) && path.node.key.type === "Identifier" &&
        path.node.key.name === "message" && !CONTRACT_MESSAGES.has(className(path))
      ) {
        return "message text of an error (not a contract); see docs/testing.md"
      }
      // `Object.defineProperty(Error.prototype, "stack", { get() { ... } })`
      if (
        path.isCallExpression() && path.node.callee.type === "MemberExpression" &&
        path.node.callee.property.name === "defineProperty" && path.node.arguments[1]?.type === "StringLiteral" &&
        path.node.arguments[1].value === "stack"
      ) {
        return "one-line stack text of an error (not a contract); see docs/testing.md"
      }
      return undefined
    }
  }),
  declareValuePlugin(PluginKind.Ignore, "ServiceKeys", {
    shouldIgnore(path) {
      // A `Context.Service<...>()("key")` key and a module's `TypeId` are unique names; no behaviour reads their text.
      if (
        path.isStringLiteral() && path.parentPath.isCallExpression() &&
        path.parentPath.node.callee.type === "CallExpression" &&
        path.parentPath.node.callee.callee.type === "MemberExpression" &&
        path.parentPath.node.callee.callee.property.name === "Service"
      ) {
        return "service key (an identity, not behaviour); see docs/testing.md"
      }
      if (
        path.isVariableDeclarator() && path.node.id.type === "Identifier" && path.node.id.name === "TypeId"
      ) {
        return "type id (an identity, not behaviour); see docs/testing.md"
      }
      return undefined
    }
  })
]
