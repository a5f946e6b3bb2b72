/// Where a semaphore lives in a store: the key of each slot, and the presence group where its candidates announce
/// the number of permits. Shared by ``SemaphoreElector`` and the HTTP service, so that a library candidate and one
/// over HTTP take part in the same semaphore.
package struct SemaphoreLayout: Sendable, Hashable {
    /// The largest number of permits.
    package static let maxPermits = 1000

    /// The semaphore's key.
    package let key: String
    /// How many holders may work at once.
    package let permits: Int
    /// The key of each slot: the semaphore's key for a semaphore of 1, else `KEY#0` … `KEY#N-1`.
    package let slotKeys: [String]
    /// The presence group where candidates announce the number of permits: `KEY#permits`.
    package let permitsGroup: String

    /// - Throws: ``BatonError`` `invalidArgument` for a malformed key, a number of permits out of range, or a key
    ///   too long for its slot keys and presence group.
    package init(key: String, permits: Int) throws(BatonError) {
        try BatonValidation.name(key, "key")
        guard (1...Self.maxPermits).contains(permits) else {
            throw .invalidArgument("permits is \(permits); it must be 1–\(Self.maxPermits)")
        }
        let slotKeys = permits == 1 ? [key] : (0..<permits).map { "\(key)#\($0)" }
        let permitsGroup = "\(key)#permits"
        do {
            try BatonValidation.name(slotKeys[permits - 1], "slot key")
            try BatonValidation.name(permitsGroup, "permits group")
        } catch {
            throw .invalidArgument(
                "key too long for a semaphore: \(error.message) (the slot keys add `#N`, the presence group "
                    + "`#permits` to the key)")
        }
        self.key = key
        self.permits = permits
        self.slotKeys = slotKeys
        self.permitsGroup = permitsGroup
    }

    /// The announcement of the number of permits in the permits group (`N:HOLDER`).
    package var announcement: NumberAnnouncement {
        NumberAnnouncement(group: permitsGroup, number: permits, noun: "permits", subject: "semaphore \(key)")
    }

    /// Checks `holder` as a name, and as a member of the permits group (`N:HOLDER`).
    package func validate(holder: String) throws(BatonError) {
        try announcement.validate(holder: holder)
    }

    /// The presence member that announces the number of permits for `holder`.
    package func member(_ holder: String) -> String { announcement.member(holder) }

    /// The slot `holder` campaigns for first: FNV-1a of the holder (stable across processes, unlike Swift's seeded
    /// hashing), so that candidates spread over the slots.
    package func preferredSlot(of holder: String) -> Int {
        Int(StableHash.fnv1a(holder) % UInt64(permits))
    }

    /// The slots in the order `holder` tries them: its preferred slot first.
    package func order(for holder: String) -> [Int] {
        let first = preferredSlot(of: holder)
        return (0..<permits).map { (first + $0) % permits }
    }

    /// Announces the number of permits for `holder` for `ttl`, once (see ``NumberAnnouncement/announce(on:holder:ttl:)``).
    /// - Throws: ``BatonError`` `invalidArgument` if another number is announced, or (for more than one permit) the
    ///   key is held as a lease: the member is withdrawn then. Store errors as the store throws them.
    package func announce(on store: LeaseStore, holder: String, ttl: Duration) async throws {
        try await announcement.announce(on: store, holder: holder, ttl: ttl)
        if permits > 1, let leader = try await store.current(key: key) {
            await withdraw(on: store, holder: holder)
            throw BatonError.invalidArgument(
                "\(key) is held as a lease by \(leader.holder) (token \(leader.token)); a key is either a lease or a "
                    + "semaphore")
        }
    }

    /// Withdraws `holder`'s announcement (best effort: it expires after its ttl anyway).
    package func withdraw(on store: LeaseStore, holder: String) async {
        await announcement.withdraw(on: store, holder: holder)
    }

    /// The numbers of permits announced now, by the members of the permits group.
    package func announcedPermits(on store: LeaseStore) async throws -> Set<Int> {
        try await announcement.announcedNumbers(on: store)
    }
}
