@_spi(BatonStoreKit) import Baton
import Hummingbird
import NIOCore

/// v2: semaphores over JSON: up to `permits` holders of a key, each in a slot with its own fencing token, the same
/// semaphore as the library's `SemaphoreElector` and `baton run --holders` (see ``SemaphoreLayout``).
extension BatonHTTPServer {
    /// `POST /v2/semaphores/{key}` `{"holder", "permits", "ttl_ms", "wait_ms"?, "metadata"?}`: 200 with the permit
    /// (a term of one slot), or 409 with the slots' holders. A holder that already holds a slot gets that slot's term
    /// renewed. With `wait_ms` the request waits in every slot's queue and is answered as soon as one is free.
    /// Requests of one holder for one semaphore are answered one after another by this server (two sent together
    /// would otherwise each take a slot); give concurrent holders distinct names.
    @Sendable func acquirePermit(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let key = try name("key", context)
        let body = try await JSONBody.read(request, limit: configuration.maxBodyBytes)
        let holder = try holderField(body)
        let layout = try layoutField(key, body, holder: holder)
        let ttl = try body.requiredMilliseconds("ttl_ms", in: Self.ttlRange)
        let wait = try body.milliseconds("wait_ms", in: Self.waitRange) ?? .zero
        let metadata = try metadataField(body)
        // Keys and holders have no control characters: a tab cannot occur in either.
        return try await permitTurns.run("\(key)\t\(holder)") {
            try await acquirePermit(
                layout: layout, holder: holder, ttl: ttl, wait: wait, metadata: metadata, context: context)
        }
    }

    private func acquirePermit(
        layout: SemaphoreLayout,
        holder: String,
        ttl: Duration,
        wait: Duration,
        metadata: String?,
        context: BatonRequestContext
    ) async throws -> Response {
        let key = layout.key
        let store = self.store
        try await withStore("announce") { try await layout.announce(on: store, holder: holder, ttl: ttl) }
        // The slot this holder holds already, else the free ones first, from its preferred slot on.
        let holders = try await slotHolders(layout)
        let order = layout.order(for: holder)
        let mine = order.filter { holders[$0]?.holder == holder }
        let tries = mine.isEmpty ? order.filter { holders[$0] == nil } : [mine[0]]
        for slot in tries {
            let started = ContinuousClock.now
            let slotKey = layout.slotKeys[slot]
            let answer = try await withStore("acquire") {
                try await store.acquire(key: slotKey, holder: holder, ttl: ttl, metadata: metadata)
            }
            if case .acquired(let lease) = answer {
                return .json(.ok, Self.json(permit: lease, slot: slot, layout: layout, grantedAt: started))
            }
        }
        if wait > .zero, mine.isEmpty,
            let (slot, lease, started) = try await waitForSlot(
                layout, holder: holder, ttl: ttl, metadata: metadata, wait: wait,
                connectionClosed: context.connectionClosed)
        {
            return .json(.ok, Self.json(permit: lease, slot: slot, layout: layout, grantedAt: started))
        }
        throw APIError(
            status: .conflict, code: "held",
            message: "every slot of semaphore \(key) is held (\(layout.permits) permits)",
            details: [("holders", Self.json(holders: try await slotHolders(layout)))])
    }

    /// `PUT /v2/semaphores/{key}` `{"holder", "permits", "slot", "token", "ttl_ms", "metadata"?}`: renews the
    /// holder's term of the slot and its announcement of the number of permits. 200 with the permit (same token), or
    /// 409 if the term is over.
    @Sendable func renewPermit(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let held = try await heldSlot(request, context)
        let (holder, layout, slot, token, slotKey) = (held.holder, held.layout, held.slot, held.token, held.slotKey)
        let ttl = try held.body.requiredMilliseconds("ttl_ms", in: Self.ttlRange)
        var lease = Lease(key: slotKey, holder: holder, token: token, ttl: ttl, metadata: try metadataField(held.body))
        if held.body.fields["metadata"] == nil { lease.metadata = held.current.metadata }
        let store = self.store
        do {
            let renewing = lease
            let started = ContinuousClock.now
            let renewed = try await withStore("renew") { try await store.renew(renewing, ttl: ttl) }
            try await withStore("heartbeat") {
                try await store.heartbeat(group: layout.permitsGroup, member: layout.member(holder), ttl: ttl)
            }
            return .json(.ok, Self.json(permit: renewed, slot: slot, layout: layout, grantedAt: started))
        } catch let error as BatonError where error.code == .lost {
            let current = try? await withStore("current") { try await store.current(key: slotKey) }
            throw Self.conflict(.lost(key: slotKey, Self.permitOver(holder, slot, token)), leader: current ?? nil)
        }
    }

    /// `DELETE /v2/semaphores/{key}` `{"holder", "permits", "slot", "token"}`: ends the holder's term of the slot, so
    /// a waiting candidate takes it at once, and withdraws its announcement. 204, or 409 if that term is not the
    /// slot's current one.
    @Sendable func releasePermit(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let held = try await heldSlot(request, context)
        let lease = Lease(
            key: held.slotKey, holder: held.holder, token: held.token,
            ttl: held.current.ttl ?? Configuration.minimumTTL, metadata: held.current.metadata)
        let store = self.store
        try await withStore("release") { try await store.release(lease) }
        await held.layout.withdraw(on: store, holder: held.holder)
        return .empty(.noContent)
    }

    /// The slot term a renew or release names (`holder`, `permits`, `slot`, `token`), as the store has it now.
    private struct HeldSlot {
        var body: JSONBody
        var holder: String
        var layout: SemaphoreLayout
        var slot: Int
        var token: FencingToken
        var slotKey: String
        var current: LeaderInfo
    }

    /// Reads the request's slot term; 409 (`lost`) unless it is the slot's current term.
    private func heldSlot(_ request: Request, _ context: BatonRequestContext) async throws -> HeldSlot {
        let key = try name("key", context)
        let body = try await JSONBody.read(request, limit: configuration.maxBodyBytes)
        let holder = try holderField(body)
        let layout = try layoutField(key, body, holder: holder)
        let slot = try slotField(body, layout)
        let token = try body.requiredInteger("token")
        let slotKey = layout.slotKeys[slot]
        let store = self.store
        let current = try await withStore("current") { try await store.current(key: slotKey) }
        guard let current, current.holder == holder, current.token == token else {
            throw Self.conflict(.lost(key: slotKey, Self.permitOver(holder, slot, token)), leader: current)
        }
        return HeldSlot(
            body: body, holder: holder, layout: layout, slot: slot, token: token, slotKey: slotKey, current: current)
    }

    /// `GET /v2/semaphores/{key}?permits=N`: 200 with the number of permits and each slot's holder (null when free).
    /// Without `permits`, the number its candidates announce; 404 when none is announced.
    @Sendable func semaphore(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let key = try name("key", context)
        let store = self.store
        let permits: Int
        if let number = try countQuery("permits", request, max: SemaphoreLayout.maxPermits) {
            permits = number
        } else {
            let probe = try semaphoreLayout(key, permits: 1)
            let announced = try await withStore("members") { try await probe.announcedPermits(on: store) }
            guard let number = announced.max() else {
                throw APIError.notFound("no candidate of a semaphore \(key) is taking part; give ?permits=N")
            }
            permits = number
        }
        let layout = try semaphoreLayout(key, permits: permits)
        return .json(
            .ok,
            .object([
                ("key", .string(key)),
                ("permits", .integer(Int64(permits))),
                ("holders", Self.json(holders: try await slotHolders(layout))),
            ]))
    }

    // MARK: Waiting

    /// Waits up to `wait` in every slot's queue and returns the first slot won, with its term and when the attempt
    /// that granted it started; nil when the wait ended first. Every other slot is left at once: its queue, and a term
    /// won there at the same moment, which is released unused.
    private func waitForSlot(
        _ layout: SemaphoreLayout,
        holder: String,
        ttl: Duration,
        metadata: String?,
        wait: Duration,
        connectionClosed: EventLoopFuture<Void>
    ) async throws -> (Int, Lease, ContinuousClock.Instant)? {
        typealias Won = (slot: Int, lease: Lease, started: ContinuousClock.Instant)
        let outcomes = await withTaskGroup(of: Result<Won?, any Error>.self) { group in
            for slot in layout.order(for: holder) {
                group.addTask {
                    do {
                        let (result, started) = try await self.acquireWaiting(
                            key: layout.slotKeys[slot], holder: holder, ttl: ttl, metadata: metadata, wait: wait,
                            connectionClosed: connectionClosed)
                        guard case .acquired(let lease) = result else { return .success(nil) }
                        return .success((slot, lease, started))
                    } catch {
                        return .failure(error)
                    }
                }
            }
            var outcomes: [Result<Won?, any Error>] = []
            for await outcome in group {
                outcomes.append(outcome)
                // The first slot won, or a failure, ends the other waits.
                if case .success(nil) = outcome { continue }
                group.cancelAll()
            }
            return outcomes
        }
        var won: Won?
        var failure: (any Error)?
        let store = self.store
        for outcome in outcomes {
            switch outcome {
            case .success(let slot?) where won == nil: won = slot
            // Won at the same moment as the first: not this request's permit.
            case .success(let slot?): try? await store.release(slot.lease)
            case .success(nil): break
            case .failure(let error): failure = failure ?? error
            }
        }
        // Leaves the other slots' queues; a term a release handed this holder there meanwhile is given back.
        for (slot, slotKey) in layout.slotKeys.enumerated() where slot != won?.slot {
            try? await store.leaveQueue(key: slotKey, holder: holder)
            if let handed = try? await store.current(key: slotKey), handed.holder == holder {
                try? await store.release(Lease(key: slotKey, holder: holder, token: handed.token, ttl: ttl))
            }
        }
        if let won { return (won.slot, won.lease, won.started) }
        if let failure { throw failure }
        return nil
    }

    // MARK: Fields and answers

    /// The query item `name` as a whole number from 1 to `max`; nil when absent.
    func countQuery(_ name: String, _ request: Request, max: Int) throws -> Int? {
        guard let text = try queryText(name, request) else { return nil }
        guard !text.isEmpty, text.utf8.allSatisfy({ (48...57).contains($0) }), let number = Int(text),
            (1...max).contains(number)
        else {
            throw APIError.badRequest(
                "\(name) must be a whole number from 1 to \(max), got " + String(reflecting: String(text.prefix(20))))
        }
        return number
    }

    /// The holder of each slot, nil for a free one (one store call per slot).
    private func slotHolders(_ layout: SemaphoreLayout) async throws -> [LeaderInfo?] {
        let store = self.store
        var holders: [LeaderInfo?] = []
        for slotKey in layout.slotKeys {
            holders.append(try await withStore("current") { try await store.current(key: slotKey) })
        }
        return holders
    }

    private func semaphoreLayout(_ key: String, permits: Int) throws(APIError) -> SemaphoreLayout {
        do {
            return try SemaphoreLayout(key: key, permits: permits)
        } catch {
            throw .badRequest(error.message)
        }
    }

    /// The semaphore of `key` with the body's `permits`, checked with `holder`.
    private func layoutField(_ key: String, _ body: JSONBody, holder: String) throws(APIError) -> SemaphoreLayout {
        let permits = try body.requiredInteger("permits")
        guard (1...Int64(SemaphoreLayout.maxPermits)).contains(permits) else {
            throw .badRequest("permits is \(permits); it must be 1–\(SemaphoreLayout.maxPermits)")
        }
        let layout = try semaphoreLayout(key, permits: Int(permits))
        do {
            try layout.validate(holder: holder)
        } catch {
            throw .badRequest(error.message)
        }
        return layout
    }

    private func slotField(_ body: JSONBody, _ layout: SemaphoreLayout) throws(APIError) -> Int {
        let slot = try body.requiredInteger("slot")
        guard (0..<Int64(layout.permits)).contains(slot) else {
            throw .badRequest("slot is \(slot); a semaphore of \(layout.permits) has slots 0–\(layout.permits - 1)")
        }
        return Int(slot)
    }

    private static func permitOver(_ holder: String, _ slot: Int, _ token: FencingToken) -> String {
        "the term of \(holder) in slot \(slot) with token \(token) is over (released, expired or taken over)"
    }

    /// `{"key", "slot", "slot_key", "permits", "holder", "token", "ttl_ms", "remaining_ms", "metadata"}`.
    static func json(
        permit lease: Lease, slot: Int, layout: SemaphoreLayout, grantedAt: ContinuousClock.Instant
    ) -> JSONOutput {
        let remaining = lease.ttl - (ContinuousClock.now - grantedAt)
        return .object([
            ("key", .string(layout.key)),
            ("slot", .integer(Int64(slot))),
            ("slot_key", .string(lease.key)),
            ("permits", .integer(Int64(layout.permits))),
            ("holder", .string(lease.holder)),
            ("token", .integer(lease.token)),
            ("ttl_ms", .integer(lease.ttl.batonMilliseconds)),
            ("remaining_ms", .integer(max(0, remaining.batonMilliseconds))),
            ("metadata", .optional(lease.metadata)),
        ])
    }

    /// One entry per slot: `{"holder", "token", "metadata", "remaining_ms"}`, or null for a free slot.
    static func json(holders: [LeaderInfo?]) -> JSONOutput {
        .array(
            holders.map { holder in
                guard let holder else { return .null }
                return .object([
                    ("holder", .string(holder.holder)),
                    ("token", .integer(holder.token)),
                    ("metadata", .optional(holder.metadata)),
                    ("remaining_ms", .optional(holder.remaining.map { max(0, $0.batonMilliseconds) })),
                ])
            })
    }
}
