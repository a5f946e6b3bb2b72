import Baton
import Foundation
import HTTPTypes
import Hummingbird

/// Refuses requests of stale leaders: a Hummingbird middleware that admits a writing request only if its fencing
/// token is at least the highest the service has admitted for its key.
///
/// A leader sends its term's token and key with every request that changes something:
///
/// ```
/// POST /invoices HTTP/1.1
/// Baton-Key: billing
/// Baton-Token: 42
/// ```
///
/// and the service guards its writing routes:
///
/// ```swift
/// let router = Router()
/// router.add(middleware: FencingMiddleware())
/// router.post("/invoices") { request, context in … }
/// ```
///
/// A request whose token is lower than one already admitted for its key (a leader that was paused, partitioned away
/// or slow past its lease, writing after the next leader began) is answered `409 Conflict` and never reaches the
/// route; nothing of it is applied. The JSON body names both tokens:
/// `{"error":"stale_token","message":"…","resource":"billing","token":41,"highest":42}`. A guarded request without
/// `Baton-Token` is answered `428 Precondition Required`, one with a malformed token or without its key `400`.
///
/// Requests of one key are admitted one at a time, each running its route before the next is checked, so a late
/// request cannot slip in between the check of a newer one and its write (see ``TokenFence/withAdmission(_:for:_:)``);
/// requests of different keys run concurrently. Only the guarded methods are checked (by default `POST`, `PUT`,
/// `PATCH` and `DELETE`; reads pass). The highest tokens live in the ``fence``, in this process: a service run as
/// several replicas needs the check where the replicas' data is (for example `PostgresFencing` in its database).
public struct FencingMiddleware<Context: RequestContext>: RouterMiddleware {
    /// `Baton-Token`: the writer's fencing token, a decimal integer.
    public static var tokenHeader: HTTPField.Name { HTTPField.Name("Baton-Token")! }
    /// `Baton-Key`: the key the token was issued for (a semaphore slot's or a shard's own key).
    public static var keyHeader: HTTPField.Name { HTTPField.Name("Baton-Key")! }

    /// The highest tokens admitted, per key.
    public let fence: TokenFence
    /// The methods whose requests are checked.
    public let methods: Set<HTTPRequest.Method>
    private let resource: @Sendable (Request, Context) -> String?

    /// Creates the middleware.
    /// - Parameters:
    ///   - fence: where the highest tokens are kept (share one between routers guarding the same data).
    ///   - methods: the methods whose requests are checked; others pass unchecked.
    ///   - resource: the key a request's token is compared under; by default its `Baton-Key` header. Return nil
    ///     when the request names none (it is answered `400`).
    public init(
        fence: TokenFence = TokenFence(),
        methods: Set<HTTPRequest.Method> = [.post, .put, .patch, .delete],
        resource: @escaping @Sendable (Request, Context) -> String? = { request, _ in
            request.headers[FencingMiddleware.keyHeader]
        }
    ) {
        self.fence = fence
        self.methods = methods
        self.resource = resource
    }

    public func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard methods.contains(request.method) else { return try await next(request, context) }
        guard let resource = resource(request, context), !resource.isEmpty else {
            return Self.answer(
                .badRequest, error: "missing_key",
                message: "a write to this service names its key: send the header \(Self.keyHeader.rawName)")
        }
        guard let value = request.headers[Self.tokenHeader] else {
            return Self.answer(
                .init(code: 428, reasonPhrase: "Precondition Required"), error: "missing_token",
                message: "a write to this service carries its fencing token: send the header "
                    + "\(Self.tokenHeader.rawName)")
        }
        guard let token = FencingToken(value.trimmingCharacters(in: .whitespaces)) else {
            return Self.answer(
                .badRequest, error: "invalid_token",
                message: "the header \(Self.tokenHeader.rawName) must be a decimal integer, got "
                    + "\(String(value.prefix(40)).debugDescription)")
        }
        do {
            return try await fence.withAdmission(token, for: resource) { try await next(request, context) }
        } catch let stale as StaleFencingToken {
            return Self.answer(.conflict, error: "stale_token", message: stale.description, stale: stale)
        }
    }

    private struct Refusal: Encodable {
        var error: String
        var message: String
        var resource: String?
        var token: FencingToken?
        var highest: FencingToken?
    }

    private static func answer(
        _ status: HTTPResponse.Status,
        error: String,
        message: String,
        stale: StaleFencingToken? = nil
    ) -> Response {
        let refusal = Refusal(
            error: error, message: message, resource: stale?.resource, token: stale?.token, highest: stale?.highest)
        let body = (try? JSONEncoder().encode(refusal)) ?? Data()
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
