import Foundation

/// The real servers and tools that tests of real stores need, named by `BATON_TEST_*` environment variables that
/// `scripts/test` exports once it has started them (redis-server, etcd, PostgreSQL, moto).
///
/// Outside CI a test whose server is missing passes trivially: it asks with ``require(_:)``, gets nil and returns.
/// Under `CI=true` a missing server is a failure, never a skip: ``require(_:)`` throws ``Missing``, which fails the
/// test.
public enum RealServer {
    /// Whether the tests run under `CI=true`, where everything a test needs must be there.
    public static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// A variable was unset or empty under `CI=true`.
    public struct Missing: Error, CustomStringConvertible {
        /// The variable.
        public var variable: String

        public var description: String {
            "\(variable) is not set under CI=true, where a missing server is a failure, not a skip "
                + "(scripts/test starts the servers and exports their BATON_TEST_* variables)"
        }
    }

    /// The value of `variable`, or nil if it is unset or empty outside CI.
    /// - Throws: ``Missing`` if it is unset or empty under `CI=true`.
    public static func require(_ variable: String) throws(Missing) -> String? {
        if let value = ProcessInfo.processInfo.environment[variable], !value.isEmpty { return value }
        if isCI { throw Missing(variable: variable) }
        return nil
    }
}
