import Baton
import HTTPTypes
import Hummingbird

/// An error answer of the service: a status and a JSON body `{"error": message, "code": code, ...}`.
///
/// Handlers throw it; ``RequestMetricsMiddleware`` turns it (and every other error) into the response, so each
/// answer is counted with its real status.
struct APIError: Error, HTTPResponseError, Sendable {
    /// The HTTP status.
    var status: HTTPResponse.Status
    /// A machine-readable code: `invalid_argument`, `held`, `lost`, `not_winner`, `already_completed`,
    /// `not_found`, `unauthorized`, `store_unavailable`, `timeout`, `over_limit`, `internal`.
    var code: String
    /// What is wrong, for people. Never contains a secret.
    var message: String
    /// More fields of the body, after `error` and `code`.
    var details: [(String, JSONOutput)] = []
    /// Extra response headers.
    var headers: HTTPFields = [:]

    static func badRequest(_ message: String) -> APIError {
        APIError(status: .badRequest, code: "invalid_argument", message: message)
    }

    static func notFound(_ message: String) -> APIError {
        APIError(status: .notFound, code: "not_found", message: message)
    }

    /// The error answer for `error`, thrown by a store or a handler.
    ///
    /// | error | status |
    /// |---|---|
    /// | `invalidArgument` | 400 |
    /// | `alreadyCompleted` | 400 (gone's status), with `completed_by` |
    /// | `notWinner` | 403 |
    /// | `held`, `lost` | 409 |
    /// | `storeUnavailable`, `timeout`, `unauthorized` (the store refused Baton's credentials) | 500, `retry: true` |
    /// | anything else | 500 |
    static func from(_ error: any Error) -> APIError {
        if let error = error as? APIError { return error }
        guard let error = error as? BatonError else {
            if error is CancellationError {
                return APIError(
                    status: .serviceUnavailable, code: "cancelled", message: "the request was cancelled",
                    details: [("retry", true)])
            }
            return APIError(status: .internalServerError, code: "internal", message: String(describing: error))
        }
        switch error.code {
        case .invalidArgument:
            return .badRequest(error.message)
        case .alreadyCompleted:
            return APIError(
                status: .badRequest, code: "already_completed", message: error.message,
                details: [("completed_by", .optional(error.completedBy))])
        case .notWinner:
            return APIError(status: .forbidden, code: "not_winner", message: error.message)
        case .held:
            return APIError(status: .conflict, code: "held", message: error.message)
        case .lost:
            return APIError(status: .conflict, code: "lost", message: error.message)
        case .timeout:
            return APIError(
                status: .internalServerError, code: "timeout",
                message: "the store timed out: \(error.message); the outcome is unknown and a retry is safe",
                details: [("retry", true)])
        case .unauthorized:
            return APIError(
                status: .internalServerError, code: "store_unavailable",
                message: "the store refused the service's credentials: \(error.message)",
                details: [("retry", true)])
        default:
            return APIError(
                status: .internalServerError, code: "store_unavailable",
                message: "the store is unavailable: \(error.message); the outcome is unknown and a retry is safe",
                details: [("retry", true)])
        }
    }

    /// The JSON body.
    var body: JSONOutput {
        .object([("error", .string(message)), ("code", .string(code))] + details)
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        response
    }

    /// The response.
    var response: Response {
        var response = Response.json(status, body)
        response.headers.append(contentsOf: headers)
        return response
    }
}

extension Response {
    /// A JSON response.
    static func json(_ status: HTTPResponse.Status, _ body: JSONOutput) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: body.text + "\n"))
        )
    }

    /// A plain-text response.
    static func text(_ status: HTTPResponse.Status, _ body: String, headers: HTTPFields = [:]) -> Response {
        var fields: HTTPFields = [.contentType: "text/plain; charset=utf-8"]
        fields.append(contentsOf: headers)
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// A response with no body.
    static func empty(_ status: HTTPResponse.Status, headers: HTTPFields = [:]) -> Response {
        Response(status: status, headers: headers)
    }
}

extension HTTPField.Name {
    /// `X-Baton-Candidate`: the v1 identity, asked for by the client or answered by the service.
    static let batonCandidate = HTTPField.Name("X-Baton-Candidate")!
}
