@_spi(BatonStoreKit) import Baton
import Hummingbird

/// v2: leases over JSON.
extension BatonHTTPServer {
    /// The accepted `ttl_ms`: 100 ms to one hour.
    static let ttlRange: ClosedRange<Int64> =
        Configuration.minimumTTL.batonMilliseconds...Configuration.maximumTTL.batonMilliseconds
    /// The accepted `wait_ms`: 0 to five minutes.
    static let waitRange: ClosedRange<Int64> = 0...Configuration.maximumWait.batonMilliseconds

    /// `POST /v2/leases/{key}` `{"holder", "ttl_ms", "wait_ms"?, "metadata"?}`: 200 with the lease, or 409 with
    /// the leader. With `wait_ms` the request waits until it takes the lease (answered at once when the holder
    /// releases it or it expires) or the wait is over.
    @Sendable func acquire(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let key = try name("key", context)
        let body = try await JSONBody.read(request, limit: configuration.maxBodyBytes)
        let holder = try holderField(body)
        let ttl = try body.requiredMilliseconds("ttl_ms", in: Self.ttlRange)
        let wait = try body.milliseconds("wait_ms", in: Self.waitRange) ?? .zero
        let metadata = try metadataField(body)
        let (result, started) = try await acquireWaiting(
            key: key, holder: holder, ttl: ttl, metadata: metadata, wait: wait,
            connectionClosed: context.connectionClosed)
        switch result {
        case .acquired(let lease):
            return .json(.ok, Self.json(lease, grantedAt: started))
        case .held(let leader):
            throw Self.conflict(.held(by: leader), leader: leader)
        }
    }

    /// `PUT /v2/leases/{key}` `{"holder", "token", "ttl_ms", "metadata"?}`: renews the holder's term. 200 with the
    /// lease (same token), or 409 if the term is over. Without `metadata` the published metadata is kept; with
    /// `"metadata": null` it is cleared.
    @Sendable func renew(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let key = try name("key", context)
        let body = try await JSONBody.read(request, limit: configuration.maxBodyBytes)
        let holder = try holderField(body)
        let token = try body.requiredInteger("token")
        let ttl = try body.requiredMilliseconds("ttl_ms", in: Self.ttlRange)
        var lease = Lease(key: key, holder: holder, token: token, ttl: ttl, metadata: try metadataField(body))
        let store = self.store
        if body.fields["metadata"] == nil {
            let current = try await withStore("current") { try await store.current(key: key) }
            guard let current, current.holder == holder, current.token == token else {
                throw Self.conflict(.lost(key: key, Self.termOver(holder, token)), leader: current)
            }
            lease.metadata = current.metadata
        }
        do {
            let renewing = lease
            let started = ContinuousClock.now
            let renewed = try await withStore("renew") { try await store.renew(renewing, ttl: ttl) }
            return .json(.ok, Self.json(renewed, grantedAt: started))
        } catch let error as BatonError where error.code == .lost {
            let current = try? await withStore("current") { try await store.current(key: key) }
            throw Self.conflict(.lost(key: key, Self.termOver(holder, token)), leader: current ?? nil)
        }
    }

    /// `DELETE /v2/leases/{key}` `{"holder", "token"}`: ends the term so the next candidate takes the key at once.
    /// 204, or 409 if that term is not the current one (already released, expired or taken over).
    @Sendable func release(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let key = try name("key", context)
        let body = try await JSONBody.read(request, limit: configuration.maxBodyBytes)
        let holder = try holderField(body)
        let token = try body.requiredInteger("token")
        let store = self.store
        let current = try await withStore("current") { try await store.current(key: key) }
        guard let current, current.holder == holder, current.token == token else {
            throw Self.conflict(.lost(key: key, Self.termOver(holder, token)), leader: current)
        }
        let lease = Lease(
            key: key, holder: holder, token: token, ttl: current.ttl ?? Configuration.minimumTTL,
            metadata: current.metadata)
        try await withStore("release") { try await store.release(lease) }
        return .empty(.noContent)
    }

    /// `GET /v2/leases/{key}`: 200 with the leader, or 404.
    @Sendable func leader(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let key = try name("key", context)
        let store = self.store
        guard let leader = try await withStore("current", { try await store.current(key: key) }) else {
            throw APIError.notFound("nobody holds \(key)")
        }
        return .json(
            .ok,
            .object([
                ("key", .string(key)),
                ("holder", .string(leader.holder)),
                ("token", .integer(leader.token)),
                ("metadata", .optional(leader.metadata)),
                ("ttl_ms", .optional(leader.ttl.map { $0.batonMilliseconds })),
                ("remaining_ms", .optional(leader.remaining.map { max(0, $0.batonMilliseconds) })),
            ])
        )
    }

    // MARK: Fields and answers

    func holderField(_ body: JSONBody) throws(APIError) -> String {
        let holder = try body.requiredString("holder")
        do {
            try BatonValidation.name(holder, "holder")
        } catch {
            throw .badRequest(error.message)
        }
        return holder
    }

    func metadataField(_ body: JSONBody) throws(APIError) -> String? {
        let metadata = try body.string("metadata")
        do {
            try BatonValidation.metadata(metadata)
        } catch {
            throw .badRequest(error.message)
        }
        return metadata
    }

    private static func termOver(_ holder: String, _ token: FencingToken) -> String {
        "the term of \(holder) with token \(token) is over (released, expired or taken over)"
    }

    /// `{"key", "holder", "token", "ttl_ms", "remaining_ms", "metadata"}`: `ttl_ms` counts from the store call
    /// that granted the lease (started at `grantedAt`), `remaining_ms` from now, when the answer is written.
    static func json(_ lease: Lease, grantedAt: ContinuousClock.Instant) -> JSONOutput {
        let remaining = lease.ttl - (ContinuousClock.now - grantedAt)
        return .object([
            ("key", .string(lease.key)),
            ("holder", .string(lease.holder)),
            ("token", .integer(lease.token)),
            ("ttl_ms", .integer(lease.ttl.batonMilliseconds)),
            ("remaining_ms", .integer(max(0, remaining.batonMilliseconds))),
            ("metadata", .optional(lease.metadata)),
        ])
    }

    /// `{"holder", "token", "metadata"}`, or null.
    static func json(_ leader: LeaderInfo?) -> JSONOutput {
        guard let leader else { return .null }
        return .object([
            ("holder", .string(leader.holder)),
            ("token", .integer(leader.token)),
            ("metadata", .optional(leader.metadata)),
        ])
    }

    /// A 409 answer with the current leader (null when nobody leads).
    static func conflict(_ error: BatonError, leader: LeaderInfo?) -> APIError {
        var answer = APIError.from(error)
        answer.details.append(("leader", json(leader)))
        return answer
    }
}
