@_spi(BatonStoreKit) import Baton
import Hummingbird

/// v2 listings: the held leases under a prefix, and the recent rounds of a system.
extension BatonHTTPServer {
    /// `GET /v2/leases?prefix=P&limit=N`: 200 `{"prefix", "leases": [{"key", "holder", "token", "metadata",
    /// "ttl_ms", "remaining_ms"}], "truncated"}` — the held leases whose key starts with `P` (default: every
    /// key) that the caller may read (``BatonRequestContext/access``), sorted by key, at most `N` (1–10,000,
    /// default 1,000). `truncated` says that more are held.
    @Sendable func listLeases(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let prefix = try queryText("prefix", request) ?? ""
        do {
            try BatonValidation.prefix(prefix)
        } catch {
            throw APIError.badRequest(error.message)
        }
        let limit = try queryLimit(request, default: ListingLimits.defaultLeases, max: ListingLimits.maxLeases)
        let listing = try await leaseListing(prefix: prefix, limit: limit, scope: context.access)
        let leases = listing.leases.map { held -> JSONOutput in
            .object([
                ("key", .string(held.key)),
                ("holder", .string(held.leader.holder)),
                ("token", .integer(held.leader.token)),
                ("metadata", .optional(held.leader.metadata)),
                ("ttl_ms", .optional(held.leader.ttl.map { $0.batonMilliseconds })),
                ("remaining_ms", .optional(held.leader.remaining.map { max(0, $0.batonMilliseconds) })),
            ])
        }
        return .json(
            .ok,
            .object([
                ("prefix", .string(prefix)), ("leases", .array(leases)), ("truncated", .bool(listing.isTruncated)),
            ])
        )
    }

    /// `GET /v2/rounds/{system}?limit=N`: 200 `{"system", "rounds": [{"round", "winner", "completed_by"}],
    /// "truncated"}` — the kept rounds of the system, the greatest name first (newest, for names by date or
    /// time), at most `N` (1–1,000, default 100). 403 if the caller may not read the system.
    @Sendable func listRounds(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let system = try name("system", context)
        let limit = try queryLimit(request, default: ListingLimits.defaultRounds, max: ListingLimits.maxRounds)
        let store = self.store
        let listing = try await withStore("rounds") { try await store.rounds(system: system, limit: limit) }
        let rounds = listing.rounds.map { summary -> JSONOutput in
            .object([
                ("round", .string(summary.round)),
                ("winner", .optional(summary.winner)),
                ("completed_by", .optional(summary.completedBy)),
            ])
        }
        return .json(
            .ok,
            .object([
                ("system", .string(system)), ("rounds", .array(rounds)), ("truncated", .bool(listing.isTruncated)),
            ])
        )
    }

    /// The held leases under `prefix` that `scope` lets the caller read, sorted by key, at most `limit`: one
    /// store listing per prefix of ``AccessScope/readablePrefixes(within:)``, merged.
    func leaseListing(prefix: String, limit: Int, scope: AccessScope) async throws -> LeaseListing {
        let store = self.store
        var held: [String: HeldLease] = [:]
        var truncated = false
        for storePrefix in scope.readablePrefixes(within: prefix) {
            let listing = try await withStore("leases") { try await store.leases(prefix: storePrefix, limit: limit) }
            truncated = truncated || listing.isTruncated
            for lease in listing.leases where scope.canRead(lease.key) { held[lease.key] = lease }
        }
        let sorted = held.values.sorted { ListingLimits.precedes($0.key, $1.key) }
        return LeaseListing(leases: Array(sorted.prefix(limit)), isTruncated: truncated || sorted.count > limit)
    }

    // MARK: Query parameters

    /// A query parameter's text, percent-decoded; nil when absent.
    func queryText(_ name: String, _ request: Request) throws(APIError) -> String? {
        guard let value = request.uri.queryParameters[Substring(name)] else { return nil }
        return String(value)
    }

    /// `?limit=N`: a whole number from 1 to `max`, `default` when absent.
    private func queryLimit(_ request: Request, default value: Int, max: Int) throws(APIError) -> Int {
        guard let text = try queryText("limit", request) else { return value }
        guard !text.isEmpty, text.utf8.allSatisfy({ (48...57).contains($0) }),
            let limit = Int(text),
            (1...max).contains(limit)
        else {
            throw .badRequest(
                "limit must be a whole number from 1 to \(max), got \(String(reflecting: String(text.prefix(20))))")
        }
        return limit
    }
}
