import Hummingbird

/// Requires `Authorization: Bearer TOKEN` on every route but the open ones (`/`, `/alive`, `/healthz`), and answers
/// `401` with a JSON error otherwise. `GET /v2/leases/{key}/watch` also takes the token as the query parameter
/// `access_token` (without the header), since a browser's `EventSource` cannot send headers; no other route does. A token the ``AccessPolicy`` accepts puts its ``AccessScope`` in the request
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
        let token: Substring
        if let header = request.headers[.authorization] {
            let scheme = "bearer "
            guard header.utf8.count > scheme.utf8.count, header.prefix(scheme.count).lowercased() == scheme else {
                throw Self.refusal("the Authorization header must be Bearer TOKEN")
            }
            token = header.dropFirst(scheme.count).drop { $0 == " " }
        } else if let query = request.uri.queryParameters[Self.queryParameter] {
            guard request.method == .get, Self.isWatch(request.uri.path) else {
                throw Self.refusal(
                    "the query parameter \(Self.queryParameter) is accepted only by GET /v2/leases/{key}/watch; "
                        + "send the header Authorization: Bearer TOKEN")
            }
            token = query
        } else {
            throw Self.refusal("this service requires a bearer token: send the header Authorization: Bearer TOKEN")
        }
        guard let scope = policy.policy?.scope(ofToken: token) else {
            throw Self.refusal("the bearer token is not valid")
        }
        var context = context
        context.access = scope
        return try await next(request, context)
    }

    /// The query parameter that carries the token of an event stream.
    static let queryParameter: Substring = "access_token"

    /// Whether `path` is that of `GET /v2/leases/{key}/watch` (the key is one segment: its slashes are `%2F`).
    static func isWatch(_ path: String) -> Bool {
        let segments = path.split(separator: "/")
        return segments.count == 4 && segments[0] == "v2" && segments[1] == "leases" && segments[3] == "watch"
    }

    private static func refusal(_ message: String) -> APIError {
        APIError(
            status: .unauthorized, code: "unauthorized", message: message,
            headers: [.wwwAuthenticate: "Bearer realm=\"baton\""])
    }
}
