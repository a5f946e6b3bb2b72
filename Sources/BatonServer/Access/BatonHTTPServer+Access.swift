import Hummingbird
import Synchronization

extension BatonHTTPServer {
    /// What a route does to the name in one of its path parameters: the lease key, or the system of a round.
    enum KeyAccess: Sendable, Equatable {
        /// Reads the name in the parameter.
        case read(String)
        /// Writes the name in the parameter.
        case write(String)

        var operation: AccessScope.Operation {
            switch self {
            case .read: .read
            case .write: .write
            }
        }

        var parameter: String {
            switch self {
            case .read(let parameter), .write(let parameter): parameter
            }
        }
    }

    /// `handler`, run only if the request's token may do `access` (else `403`). A malformed name is left to the
    /// handler, which answers it `400` as without authentication.
    func checking(
        _ access: KeyAccess,
        _ handler: @escaping @Sendable (Request, BatonRequestContext) async throws -> Response
    ) -> @Sendable (Request, BatonRequestContext) async throws -> Response {
        { request, context in
            try check(access, context)
            return try await handler(request, context)
        }
    }

    /// Throws the `403` answer unless the request's scope allows `access` on the name in its path.
    @inline(never)
    private func check(_ access: KeyAccess, _ context: BatonRequestContext) throws(APIError) {
        guard !context.access.isUnrestricted, let name = try? name(access.parameter, context) else { return }
        try Self.require(access.operation, access.parameter, name, in: context.access)
    }

    /// Throws the `403` answer unless `scope` allows `operation` on `name`, the value of `field` (`key`, `system`).
    static func require(
        _ operation: AccessScope.Operation,
        _ field: String,
        _ name: String,
        in scope: AccessScope
    ) throws(APIError) {
        guard !scope.allows(operation, name) else { return }
        let what = field == "key" ? "the key \(name)" : "the \(field) \(name)"
        throw APIError(
            status: .forbidden, code: "forbidden",
            message: "this token may not \(operation.rawValue) \(what); ask for a token whose scope covers it",
            details: [(field, .string(name)), ("access", .string(operation.rawValue))])
    }
}

extension BatonHTTPServer {
    /// Replaces the scoped tokens (``Configuration-swift.struct/access``) for the requests that arrive from now on,
    /// e.g. after the access file changed; ``Configuration-swift.struct/authToken`` stays accepted. Has no effect on
    /// a server configured without authentication (it asks for no token at all), and `configuration` keeps showing
    /// the tokens it started with.
    public func reloadAccess(_ access: AccessPolicy) {
        var configuration = self.configuration
        configuration.access = access
        currentAccess.policy = configuration.accessPolicy
    }

    /// The tokens the service accepts now, read by every request and replaced by ``reloadAccess(_:)``.
    final class CurrentAccess: Sendable {
        private let current: Mutex<AccessPolicy?>

        init(_ policy: AccessPolicy?) {
            current = Mutex(policy)
        }

        var policy: AccessPolicy? {
            get { current.withLock { $0 } }
            set { current.withLock { $0 = newValue } }
        }
    }
}
