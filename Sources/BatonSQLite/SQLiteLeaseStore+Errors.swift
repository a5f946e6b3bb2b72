@_spi(BatonStoreKit) import Baton
import SQLiteNIO

extension SQLiteLeaseStore {
    /// Refuses a path that names no file processes could share.
    static func validate(path: String) throws(BatonError) {
        if path.isEmpty {
            throw .invalidArgument("the SQLite path is empty")
        }
        if path.utf8.contains(0) {
            throw .invalidArgument("the SQLite path contains a NUL byte")
        }
        if path == ":memory:" || path.hasPrefix("file:") {
            throw .invalidArgument(
                "the SQLite path must name a file that processes share, not \(path.hasPrefix("file:") ? "a URI" : path)"
            )
        }
    }

    /// `error` as a ``BatonError`` naming this store's file and the operation.
    func storeError(_ error: any Error, operation: String) -> any Error {
        Self.storeError(error, path: path, operation: operation, busyTimeout: configuration.busyTimeout)
    }

    /// `error` as a ``BatonError`` naming the file and the operation (``BatonError`` and `CancellationError`
    /// pass through). A locked database is a `timeout`, anything else `storeUnavailable`.
    static func storeError(
        _ error: any Error,
        path: String,
        operation: String,
        busyTimeout: Duration?
    ) -> any Error {
        switch error {
        case is BatonError, is CancellationError:
            return error
        case let error as SQLiteError:
            switch error.reason {
            case let reason where reason.isBusy:
                return BatonError(
                    code: .timeout,
                    message: "\(operation) on the SQLite store at \(path) failed: the database stayed locked "
                        + "by another connection for longer than the busy timeout"
                        + (busyTimeout.map { " of \($0)" } ?? ""),
                    underlying: error
                )
            default:
                return BatonError.storeUnavailable(
                    "\(operation) on the SQLite store at \(path) failed: \(error)",
                    underlying: error
                )
            }
        default:
            return BatonError.storeUnavailable(
                "\(operation) on the SQLite store at \(path) failed: \(error)",
                underlying: error
            )
        }
    }
}

extension SQLiteError.Reason {
    /// Another connection holds a lock this one needs.
    var isBusy: Bool {
        switch self {
        case .busy, .busyTimeout, .busyInRecovery, .busyInSnapshot, .locked: true
        default: false
        }
    }
}
