/// The one error type Baton's operations throw.
///
/// A `BatonError` carries a ``Code`` that callers switch on, a ``message`` that is safe to log or to show
/// to a user (it never contains credentials), and, for some codes, details: the current leader for
/// ``Code/held``, the recorded completer for ``Code/alreadyCompleted``.
///
/// "The key is held by someone else" (``Code/held``, ``Code/lost``) and "the store cannot be reached"
/// (``Code/storeUnavailable``, ``Code/timeout``) are never the same error: the first is an answer, the second
/// means nothing is known and the operation is safe to retry.
public struct BatonError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What went wrong, as a value that can grow with new cases without breaking callers.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        enum Base: String, Sendable, Hashable {
            case held
            case lost
            case notWinner
            case alreadyCompleted
            case invalidArgument
            case storeUnavailable
            case timeout
            case unauthorized
        }

        let base: Base

        private init(_ base: Base) { self.base = base }

        /// The key is held by another holder; ``BatonError/leader`` says by whom.
        public static let held = Code(.held)
        /// The caller's term is over: the key expired or passed to another holder.
        public static let lost = Code(.lost)
        /// A named candidate tried to complete a round it did not win.
        public static let notWinner = Code(.notWinner)
        /// Another identity already completed the round; ``BatonError/completedBy`` says which.
        public static let alreadyCompleted = Code(.alreadyCompleted)
        /// An argument is malformed (a key, a ttl, a URL, a configuration value). Nothing was sent to the store.
        public static let invalidArgument = Code(.invalidArgument)
        /// The store could not be reached or failed; the outcome is unknown and the operation may be retried.
        public static let storeUnavailable = Code(.storeUnavailable)
        /// The operation did not finish in time; the outcome is unknown and the operation may be retried.
        public static let timeout = Code(.timeout)
        /// The store refused the credentials.
        public static let unauthorized = Code(.unauthorized)

        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public var code: Code
    /// A human-readable explanation, safe to log: it never contains passwords or tokens.
    public var message: String
    /// For ``Code/held``: the current leader.
    public var leader: LeaderInfo?
    /// For ``Code/alreadyCompleted``: the identity whose completion is recorded.
    public var completedBy: String?
    /// The lower-level error, if any. Only ``debugDescription`` prints it; store modules redact secrets
    /// before wrapping an error here.
    public var underlying: (any Error)?

    /// Creates an error. Prefer the static constructors.
    public init(
        code: Code,
        message: String,
        leader: LeaderInfo? = nil,
        completedBy: String? = nil,
        underlying: (any Error)? = nil
    ) {
        self.code = code
        self.message = message
        self.leader = leader
        self.completedBy = completedBy
        self.underlying = underlying
    }

    public var description: String { "\(code): \(message)" }

    public var debugDescription: String {
        var text = "BatonError(code: \(code), message: \(message)"
        if let leader { text += ", leader: \(leader)" }
        if let completedBy { text += ", completedBy: \(completedBy)" }
        if let underlying { text += ", underlying: \(String(reflecting: underlying))" }
        return text + ")"
    }

    /// The key is held by `leader`.
    public static func held(by leader: LeaderInfo) -> BatonError {
        BatonError(code: .held, message: "held by \(leader.holder) (token \(leader.token))", leader: leader)
    }

    /// The caller's term of `key` is over.
    public static func lost(key: String, _ detail: String = "the lease expired or passed to another holder")
        -> BatonError
    {
        BatonError(code: .lost, message: "lost \(key): \(detail)")
    }

    /// A named candidate that did not win the round tried to complete it.
    public static func notWinner(candidate: String, system: String, round: String) -> BatonError {
        BatonError(code: .notWinner, message: "\(candidate) did not win \(system)/\(round)")
    }

    /// The round was already completed by `completer`.
    public static func alreadyCompleted(by completer: String, system: String, round: String) -> BatonError {
        BatonError(
            code: .alreadyCompleted,
            message: "\(system)/\(round) was already completed by \(completer)",
            completedBy: completer
        )
    }

    /// An argument is malformed.
    public static func invalidArgument(_ message: String) -> BatonError {
        BatonError(code: .invalidArgument, message: message)
    }

    /// The store failed or could not be reached.
    public static func storeUnavailable(_ message: String, underlying: (any Error)? = nil) -> BatonError {
        BatonError(code: .storeUnavailable, message: message, underlying: underlying)
    }

    /// An operation did not finish in time.
    public static func timeout(_ message: String) -> BatonError {
        BatonError(code: .timeout, message: message)
    }

    /// The store refused the credentials.
    public static func unauthorized(_ message: String) -> BatonError {
        BatonError(code: .unauthorized, message: message)
    }
}
