import Hummingbird

/// Requires `Authorization: Bearer TOKEN` on every route but the open ones (`/alive`, `/healthz`), and answers
/// `401` with a JSON error otherwise. A token the ``AccessPolicy`` accepts puts its ``AccessScope`` in the request
/// context, where the routes check it (``BatonRequestContext/access``). Tokens are compared as SHA-256 digests in
/// constant time and never logged.
struct BearerTokenMiddleware: RouterMiddleware {
    typealias Context = BatonRequestContext

    private let policy: BatonHTTPServer.CurrentAccess
    private let openPaths: Set<String>

    init(policy: BatonHTTPServer.CurrentAccess, openPaths: Set<String>) {
        self.policy = policy
        self.openPaths = openPaths
    }

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        if openPaths.contains(request.uri.path) {
            return try await next(request, context)
        }
        guard let header = request.headers[.authorization] else {
            throw Self.refusal("this service requires a bearer token: send the header Authorization: Bearer TOKEN")
        }
        let scheme = "bearer "
        guard header.utf8.count > scheme.utf8.count, header.prefix(scheme.count).lowercased() == scheme else {
            throw Self.refusal("the Authorization header must be Bearer TOKEN")
        }
        let token = header.dropFirst(scheme.count).drop { $0 == " " }
        guard let scope = policy.policy?.scope(ofToken: token) else {
            throw Self.refusal("the bearer token is not valid")
        }
        var context = context
        context.access = scope
        return try await next(request, context)
    }

    private static func refusal(_ message: String) -> APIError {
        APIError(
            status: .unauthorized, code: "unauthorized", message: message,
            headers: [.wwwAuthenticate: "Bearer realm=\"baton\""])
    }
}
