import Baton
import PostgresNIO

extension PostgresLeaseStore {
    /// `error` as a ``BatonError`` naming the operation and the URL (password redacted). ``BatonError`` and
    /// `CancellationError` pass through; a transaction's error is unwrapped to the one that caused it.
    static func storeError(_ error: any Error, operation: String, url: String) -> any Error {
        switch error {
        case is BatonError, is CancellationError:
            return error
        case let error as PostgresTransactionError:
            if let cause = error.closureError ?? error.beginError ?? error.commitError {
                return storeError(cause, operation: operation, url: url)
            }
            return BatonError.storeUnavailable("\(operation) on \(url) failed in a transaction", underlying: error)
        case let error as PSQLError:
            return psqlError(error, operation: operation, url: url)
        case is PostgresDeadline.Passed:
            return BatonError.timeout("\(operation) on \(url) did not finish in time")
        default:
            return BatonError.storeUnavailable("\(operation) on \(url) failed: \(error)", underlying: error)
        }
    }

    private static func psqlError(_ error: PSQLError, operation: String, url: String) -> BatonError {
        let prefix = "\(operation) on \(url) failed"
        switch error.code {
        case .server:
            let state = error.serverInfo?[.sqlState] ?? ""
            let message = error.serverInfo?[.message] ?? "unknown server error"
            switch state {
            case "28P01", "28000":
                return BatonError(
                    code: .unauthorized,
                    message: "\(prefix): the server refused the credentials (\(state): \(message))",
                    underlying: error
                )
            case "57014":
                return BatonError(
                    code: .timeout,
                    message: "\(prefix): the statement was cancelled (\(state): \(message))",
                    underlying: error
                )
            default:
                return .storeUnavailable("\(prefix): server error \(state): \(message)", underlying: error)
            }
        case .sslUnsupported:
            return .storeUnavailable("\(prefix): the server does not support TLS, which sslmode asks for")
        case .authMechanismRequiresPassword:
            return BatonError(
                code: .unauthorized,
                message: "\(prefix): the server asks for a password and the URL has none",
                underlying: error
            )
        case .unsupportedAuthMechanism, .saslError:
            return BatonError(
                code: .unauthorized,
                message: "\(prefix): authentication failed (\(error.code))",
                underlying: error
            )
        case .serverClosedConnection, .clientClosedConnection, .uncleanShutdown:
            return .storeUnavailable("\(prefix): the connection was closed (\(error.code))", underlying: error)
        case .poolClosed:
            return .storeUnavailable("\(prefix): the store is closed", underlying: error)
        case .queryCancelled:
            return .timeout("\(prefix): the query was cancelled")
        case .connectionError:
            let cause = error.underlying.map { ": \($0)" } ?? ""
            return .storeUnavailable("\(prefix): cannot connect\(cause)", underlying: error)
        default:
            return .storeUnavailable("\(prefix): \(error.code)", underlying: error)
        }
    }
}
