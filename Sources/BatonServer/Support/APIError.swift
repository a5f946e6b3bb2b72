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
    /// `not_found`, `unauthorized`, `forbidden`, `store_unavailable`, `timeout`, `over_limit`, `internal`.
    var code: String
    /// What is wrong, for people. Never contains a secret, nor (in a `5xx`) a host, user, path or key id.
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

    /// What went wrong in detail, for the log only: a store's own message may name hosts, users, file paths or
    /// key ids, which an answer never does (passwords are redacted in the log too).
    var logDetail: String?

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
    ///
    /// A `500` says only what kind of failure it was (`store_unavailable`, `timeout`, `internal`); the store's own
    /// message, which may name a host, a user, a path or a key id, goes to ``logDetail``.
    static func from(_ error: any Error) -> APIError {
        if let error = error as? APIError { return error }
        guard let error = error as? BatonError else {
            if error is CancellationError {
                return APIError(
                    status: .serviceUnavailable, code: "cancelled", message: "the request was cancelled",
                    details: [("retry", true)])
            }
            return APIError(
                status: .internalServerError, code: "internal", message: "the service failed to answer",
                logDetail: String(describing: error))
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
                message: "the store did not answer in time; the outcome is unknown and a retry is safe",
                details: [("retry", true)], logDetail: "the store timed out: \(error.message)")
        case .unauthorized:
            return APIError(
                status: .internalServerError, code: "store_unavailable",
                message: "the store refused the service's credentials; the outcome is unknown and a retry is safe",
                details: [("retry", true)], logDetail: "the store refused the credentials: \(error.message)")
        default:
            return APIError(
                status: .internalServerError, code: "store_unavailable",
                message: "the store is unavailable; the outcome is unknown and a retry is safe",
                details: [("retry", true)], logDetail: "the store is unavailable: \(error.message)")
        }
    }

    /// The answer with a request id (`request_id`, 16 hex digits) in its body, to find its ``logDetail`` in the log.
    func identified() -> (answer: APIError, id: String) {
        let id = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let padded = String(repeating: "0", count: 16 - id.count) + id
        var answer = self
        answer.details.append(("request_id", .string(padded)))
        return (answer, padded)
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
