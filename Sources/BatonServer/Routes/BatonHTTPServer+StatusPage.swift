import HTTPTypes
import Hummingbird

extension BatonHTTPServer {
    /// `GET /`: the status page (``StatusPage``), open even with authentication on, since it holds no data; the
    /// requests it makes carry the token the user gives it. Its content security policy lets it load nothing from
    /// elsewhere and talk only to this service, and it sends no `Referer`.
    @Sendable func statusPage(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        Response(
            status: .ok,
            headers: [
                .contentType: "text/html; charset=utf-8",
                .cacheControl: "no-store",
                .contentSecurityPolicy: Self.statusPagePolicy,
                HTTPField.Name("Referrer-Policy")!: "no-referrer",
                HTTPField.Name("X-Content-Type-Options")!: "nosniff",
                HTTPField.Name("X-Frame-Options")!: "DENY",
            ],
            body: .init(byteBuffer: ByteBuffer(string: StatusPage.html))
        )
    }

    static let statusPagePolicy =
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
        + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}
