import Baton
import Foundation

/// The examples' command lines: `--name value` flags, each with an environment variable as its fallback.
public struct ExampleArguments: Sendable {
    private let values: [String: String]

    /// Reads `--name value` pairs from `arguments` (the process's arguments without the program name).
    /// - Throws: ``BatonError`` `invalidArgument` for an argument that is not a `--name value` pair.
    public init(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) throws {
        var values: [String: String] = [:]
        var remaining = arguments[...]
        while let flag = remaining.popFirst() {
            guard flag.hasPrefix("--"), flag.count > 2, let value = remaining.popFirst() else {
                throw BatonError.invalidArgument("expected --name value pairs, got \"\(flag)\"")
            }
            values[String(flag.dropFirst(2))] = value
        }
        self.values = values
    }

    /// The value of `--name`, else of the environment variable `variable`, else `defaultValue`.
    public func value(_ name: String, environment variable: String? = nil, default defaultValue: String) -> String {
        if let value = values[name] { return value }
        if let variable, let value = ProcessInfo.processInfo.environment[variable], !value.isEmpty { return value }
        return defaultValue
    }

    /// The value of `--name` (or `variable`) as a duration such as `500ms`, `10s` or `5m`.
    /// - Throws: ``BatonError`` `invalidArgument` naming the flag if the value is not a duration.
    public func duration(_ name: String, environment variable: String? = nil, default defaultValue: String) throws
        -> Duration
    {
        let text = value(name, environment: variable, default: defaultValue)
        do {
            return try parseBatonDuration(text)
        } catch {
            throw BatonError.invalidArgument("--\(name): \(error.message)")
        }
    }
}
