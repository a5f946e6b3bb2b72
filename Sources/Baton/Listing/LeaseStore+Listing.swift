extension LeaseStore {
    // MARK: Listings

    /// The held leases whose key starts with `prefix`, sorted by key: which keys are held, by whom, until when.
    ///
    /// Each lease comes with its leader as ``current(key:)`` reports it: holder, fencing token, metadata, and
    /// the time left as far as the store can tell (see the store's documentation; etcd tells it in whole
    /// seconds, S3 what this process has seen of the term). Released and expired terms are not listed. A listing reads
    /// the store, and need not be one atomic snapshot of it.
    /// - Parameters:
    ///   - prefix: 0–256 bytes of UTF-8 without control characters, matched byte by byte; empty (the default)
    ///     lists every held lease.
    ///   - limit: the most leases to return, 1–``ListingLimits/maxLeases`` (10,000);
    ///     ``ListingLimits/defaultLeases`` (1,000) by default. ``LeaseListing/isTruncated`` tells whether more
    ///     are held.
    /// - Returns: the leases sorted by the byte order of their keys' UTF-8.
    /// - Throws: ``BatonError`` `invalidArgument` (a bad prefix or limit, or a store that cannot list),
    ///   `storeUnavailable`, `timeout`.
    public func leases(prefix: String = "", limit: Int = ListingLimits.defaultLeases) async throws -> LeaseListing {
        try BatonValidation.prefix(prefix)
        try BatonValidation.limit(limit, max: ListingLimits.maxLeases)
        let found = try await core.perform(.leases) { [driver] in
            try await driver.leases(prefix: prefix, limit: limit + 1)
        }
        let sorted = found.sorted { ListingLimits.precedes($0.key, $1.key) }
        return LeaseListing(leases: Array(sorted.prefix(limit)), isTruncated: sorted.count > limit)
    }

    /// The rounds of `system` whose records are kept (within their retention), with winner and completer, the
    /// newest name first.
    ///
    /// Rounds are sorted by name in descending byte order of their UTF-8, so rounds named by date or time (as
    /// `baton cron` names them, and as a cron job calling the v1 API typically does) come newest first.
    /// - Parameters:
    ///   - system: the system, 1–256 bytes of UTF-8 without control characters.
    ///   - limit: the most rounds to return, 1–``ListingLimits/maxRounds`` (1,000);
    ///     ``ListingLimits/defaultRounds`` (100) by default.
    /// - Throws: ``BatonError`` `invalidArgument` (a bad system or limit, or a store that cannot list),
    ///   `storeUnavailable`, `timeout`.
    public func rounds(system: String, limit: Int = ListingLimits.defaultRounds) async throws -> RoundListing {
        try BatonValidation.name(system, "system")
        try BatonValidation.limit(limit, max: ListingLimits.maxRounds)
        let found = try await core.perform(.rounds) { [driver] in
            try await driver.rounds(system: system, limit: limit + 1)
        }
        let sorted = found.sorted { ListingLimits.precedes($1.round, $0.round) }
        return RoundListing(rounds: Array(sorted.prefix(limit)), isTruncated: sorted.count > limit)
    }
}
