import Hummingbird

/// Answers `405 Method Not Allowed`, with an `Allow` header listing the methods the path has, when a request's
/// path matches a route but its method does not; a path that matches no route stays `404`.
///
/// Hummingbird's router answers both cases with a 404 (`HTTPError(.notFound)` from its not-found responder); this
/// middleware, between the metrics and the authentication, turns the first case into its own answer by matching
/// the path against the route table as the router does.
struct MethodNotAllowedMiddleware: RouterMiddleware {
    typealias Context = BatonRequestContext

    let table: RouteMethodTable

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        // The error's handling is a plain function, so that this frame, which every connection's task keeps
        // while the connection lives, stays small.
        do {
            return try await next(request, context)
        } catch {
            throw answer(to: error, request: request)
        }
    }

    /// The `405` answer for a `404` of a path whose route has other methods; else `error` itself.
    @inline(never)
    private func answer(to error: any Error, request: Request) -> any Error {
        guard let notFound = error as? HTTPError, notFound.status == .notFound,
            let allowed = table.methods(forPath: request.uri.path), !allowed.contains(request.method)
        else { return error }
        let allow = allowed.map(\.rawValue).sorted().joined(separator: ", ")
        return APIError(
            status: .methodNotAllowed, code: "method_not_allowed",
            message: "\(request.method) is not a method of \(request.uri.path); it has \(allow)",
            headers: [.allow: allow])
    }
}

/// The methods of every path template, to tell which methods a concrete path has.
struct RouteMethodTable: Sendable {
    private struct Template: Sendable {
        /// The segments; nil for a parameter (`{key}`), which matches any one segment.
        var segments: [String?]
        var methods: Set<HTTPRequest.Method>
    }

    private let templates: [Template]

    init(_ routes: [RouteDescription]) {
        var methods: [String: Set<HTTPRequest.Method>] = [:]
        for route in routes { methods[route.path, default: []].insert(route.method) }
        templates = methods.map { path, methods in
            let segments = path.split(separator: "/").map { segment -> String? in
                segment.hasPrefix("{") && segment.hasSuffix("}") ? nil : String(segment)
            }
            return Template(segments: segments, methods: methods)
        }
    }

    /// The methods of the route template `path` matches, or nil if it matches none. Segments are split on `/`
    /// without empty ones, as the router splits them; where two templates match, the one with a literal
    /// segment where the other has a parameter wins, as in the router.
    func methods(forPath path: String) -> Set<HTTPRequest.Method>? {
        let segments = path.split(separator: "/")
        var best: (template: Template, literals: [Bool])?
        for template in templates where template.segments.count == segments.count {
            let matches = zip(template.segments, segments).allSatisfy { literal, segment in
                literal.map { $0 == segment } ?? true
            }
            guard matches else { continue }
            let literals = template.segments.map { $0 != nil }
            if let current = best, !Self.isMoreLiteral(literals, than: current.literals) { continue }
            best = (template, literals)
        }
        return best?.template.methods
    }

    /// Whether the first segment where `a` and `b` differ is a literal in `a`.
    private static func isMoreLiteral(_ a: [Bool], than b: [Bool]) -> Bool {
        for (x, y) in zip(a, b) where x != y { return x }
        return false
    }
}
