import Hummingbird

/// One route of the service as documented in `docs/openapi.json`: method, path template and every status it
/// can answer. ``BatonHTTPServer/routes`` lists them all; a test keeps the OpenAPI document equal to the list.
public struct RouteDescription: Sendable, Hashable, CustomStringConvertible {
    /// The HTTP method.
    public var method: HTTPRequest.Method
    /// The path template, with parameters in braces as in OpenAPI: `/v2/leases/{key}`.
    public var path: String
    /// Every status code the route answers, including the errors common to all routes (400 for a bad parameter,
    /// 401 when authentication is on and the route is not open, 500 for store failures where the route uses the
    /// store).
    public var statuses: Set<Int>
    /// Whether the route is answered without a bearer token even when authentication is on.
    public var isOpen: Bool

    /// Creates a route description.
    public init(method: HTTPRequest.Method, path: String, statuses: Set<Int>, isOpen: Bool = false) {
        self.method = method
        self.path = path
        self.statuses = statuses
        self.isOpen = isOpen
    }

    /// `METHOD path`, as in `GET /v2/leases/{key}`.
    public var description: String { "\(method) \(path)" }
}
