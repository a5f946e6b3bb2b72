import Hummingbird

/// Requires `Authorization: Bearer TOKEN` on every route but the open ones (`/alive`, `/healthz`), and answers
/// `401` with a JSON error otherwise. The token is compared in constant time and never logged.
struct BearerTokenMiddleware: RouterMiddleware {
    typealias Context = BatonRequestContext

    private let expected: [UInt8]
    private let openPaths: Set<String>

    init(token: String, openPaths: Set<String>) {
        self.expected = Array(token.utf8)
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
        guard Self.constantTimeEquals(Array(token.utf8), expected) else {
            throw Self.refusal("the bearer token is not valid")
        }
        return try await next(request, context)
    }

    private static func refusal(_ message: String) -> APIError {
        APIError(
            status: .unauthorized, code: "unauthorized", message: message,
            headers: [.wwwAuthenticate: "Bearer realm=\"baton\""])
    }

    /// Whether `given` equals `expected`, taking time that depends only on the length of `expected`: every byte
    /// is compared whatever the first difference, so the time does not tell how much of a guess was right.
    static func constantTimeEquals(_ given: [UInt8], _ expected: [UInt8]) -> Bool {
        var difference = UInt64(truncatingIfNeeded: given.count ^ expected.count)
        for index in expected.indices {
            let byte = index < given.count ? given[index] : 0
            difference |= UInt64(byte ^ expected[index])
        }
        return difference == 0
    }
}
