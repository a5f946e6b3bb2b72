@_spi(BatonStoreKit) import Baton
import HTTPTypes
import Hummingbird

/// v1: round elections with gone's paths and status codes.
extension BatonHTTPServer {
    /// Who asks, by gone's rule: `?candidate=ID`, else the `X-Baton-Candidate` header, else the remote `ip:port`.
    enum V1Identity: Sendable {
        /// Named by the client: a ``Completer/candidate(_:)``.
        case named(String)
        /// The remote address: a ``Completer/anonymous(_:)``.
        case remote(String)

        var value: String {
            switch self {
            case .named(let value), .remote(let value): value
            }
        }

        var completer: Completer {
            switch self {
            case .named(let value): .candidate(value)
            case .remote(let value): .anonymous(value)
            }
        }
    }

    /// The identity of a v1 request. Both `?candidate=` and `X-Baton-Candidate` are checked when present, even
    /// when the query wins, so that a request the API document calls invalid is never answered as if it were
    /// valid. The header is printable ASCII only (a header carries bytes, not UTF-8); other names go in the query.
    func identity(_ request: Request, _ context: BatonRequestContext) throws(APIError) -> V1Identity {
        let header = request.headers[.batonCandidate]
        if let header {
            try Self.checkName(header, "X-Baton-Candidate")
            if header.unicodeScalars.contains(where: { !$0.isASCII }) {
                throw .badRequest(
                    "X-Baton-Candidate must be printable ASCII (1–256 characters); send other names as ?candidate=")
            }
        }
        if let query = request.uri.queryParameters["candidate"] {
            let value = String(query)
            try Self.checkName(value, "candidate")
            return .named(value)
        }
        if let header { return .named(header) }
        guard let remote = context.remoteIdentity else {
            throw .badRequest(
                "the client's address is unknown; name the candidate with ?candidate=ID or X-Baton-Candidate")
        }
        return .remote(remote)
    }

    private static func checkName(_ value: String, _ field: String) throws(APIError) {
        do {
            try BatonValidation.name(value, field)
        } catch {
            throw .badRequest(error.message)
        }
    }

    /// `GET /api/v1/elect/{system}/{round}`: 202 for the winner (again on every retry), 204 for a loser, at once.
    @Sendable func elect(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let system = try name("system", context)
        let round = try name("round", context)
        let identity = try identity(request, context)
        let store = self.store
        let retention = configuration.retention
        let headers: HTTPFields = [.batonCandidate: identity.value]
        do {
            let result = try await withStore("claim") {
                try await store.claim(system: system, round: round, candidate: identity.value, retention: retention)
            }
            return .empty(result.isWon ? .accepted : .noContent, headers: headers)
        } catch {
            throw v1Failure(error, identity: identity, headers: headers)
        }
    }

    /// `GET /api/v1/elected/{system}/{round}`: 200 with the winner as plain text, or 204.
    @Sendable func elected(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let system = try name("system", context)
        let round = try name("round", context)
        let store = self.store
        guard let winner = try await withStore("winner", { try await store.winner(system: system, round: round) })
        else {
            return .empty(.noContent)
        }
        return .text(.ok, winner)
    }

    /// `GET|POST /api/v1/complete/{system}/{round}`: 200 recorded (again on a retry), 400 another identity
    /// completed it, 403 a named candidate that did not win.
    @Sendable func complete(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let system = try name("system", context)
        let round = try name("round", context)
        let identity = try identity(request, context)
        let store = self.store
        let retention = configuration.retention
        let headers: HTTPFields = [.batonCandidate: identity.value]
        do {
            try await withStore("complete") {
                try await store.complete(system: system, round: round, by: identity.completer, retention: retention)
            }
            return .empty(.ok, headers: headers)
        } catch {
            throw v1Failure(error, identity: identity, headers: headers)
        }
    }

    /// `GET /api/v1/completed/{system}/{round}`: 200 with the completer as plain text, or 204.
    @Sendable func completed(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let system = try name("system", context)
        let round = try name("round", context)
        let store = self.store
        guard
            let completer = try await withStore(
                "completion",
                {
                    try await store.completion(system: system, round: round)
                })
        else {
            return .empty(.noContent)
        }
        return .text(.ok, completer)
    }

    /// `GET /alive`: 200, without touching the store.
    @Sendable func alive(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        .text(.ok, "ok\n")
    }

    /// The error answer of a v1 call, naming the identity used. After a `500` the claim may or may not have been
    /// recorded; retrying as the same identity (`?candidate=` with the value of `X-Baton-Candidate`, which for the
    /// default identity names a connection that may be gone) wins if it was, so no round is left without a
    /// possible winner.
    private func v1Failure(_ error: any Error, identity: V1Identity, headers: HTTPFields) -> APIError {
        var answer = APIError.from(error)
        answer.headers.append(contentsOf: headers)
        if answer.status == .internalServerError {
            answer.details.append(("candidate", .string(identity.value)))
        }
        return answer
    }
}
