import Baton
import Hummingbird
import Logging
import Prometheus

/// Health, readiness and metrics.
extension BatonHTTPServer {
    /// `GET /healthz`: 200 while the process serves requests; the store is not asked.
    @Sendable func healthz(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        .json(.ok, .object([("status", "ok")]))
    }

    /// `GET /readyz`: 200 if the store answers a read within the store timeout, else 503 with the kind of failure
    /// (`reason`: `store_unavailable` or `timeout`) and a `request_id`; the store's own message, which may name hosts,
    /// users, paths or key ids, is logged (a warning with the same `request_id`), never answered.
    @Sendable func readyz(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let store = self.store
        do {
            _ = try await withStore("current") { try await store.current(key: "baton/readyz") }
            return .json(.ok, .object([("status", "ready")]))
        } catch {
            let (answer, id) = APIError.from(error).identified()
            logger.warning(
                "not ready", metadata: ["request_id": "\(id)", "error": "\(answer.logDetail ?? answer.message)"])
            return .json(
                .serviceUnavailable,
                .object([
                    ("error", .string(answer.message)), ("code", "not_ready"), ("status", "not ready"),
                    ("reason", .string(answer.code)), ("request_id", .string(id)),
                ]))
        }
    }

    /// `GET /metrics`: the registry in Prometheus' text format.
    @Sendable func metricsText(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return Response(
            status: .ok,
            headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: buffer))
        )
    }
}
