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

    /// Checks `holder` as a name, and as a member of the permits group (`N:HOLDER`).
    package func validate(holder: String) throws(BatonError) {
        try BatonValidation.name(holder, "holder")
        do {
            try BatonValidation.name(member(holder), "permits member")
        } catch {
            throw .invalidArgument(
                "holder too long for a semaphore: \(error.message) (the member adds `\(permits):` to the holder)")
        }
    }

    /// The presence member that announces the number of permits for `holder`.
    package func member(_ holder: String) -> String { "\(permits):\(holder)" }

    /// The slot `holder` campaigns for first: FNV-1a of the holder (stable across processes, unlike Swift's seeded
    /// hashing), so that candidates spread over the slots.
    package func preferredSlot(of holder: String) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in holder.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return Int(hash % UInt64(permits))
    }

    /// The slots in the order `holder` tries them: its preferred slot first.
    package func order(for holder: String) -> [Int] {
        let first = preferredSlot(of: holder)
        return (0..<permits).map { (first + $0) % permits }
    }

    /// Announces the number of permits for `holder` for `ttl`, once: looks before announcing (so that a candidate
    /// refused here never disturbs a semaphore in use) and after (so that of two that start together with
    /// different numbers at least one sees the other).
    /// - Throws: ``BatonError`` `invalidArgument` if another number is announced, or (for more than one permit) the
    ///   key is held as a lease: the member is withdrawn then. Store errors as the store throws them.
    package func announce(on store: LeaseStore, holder: String, ttl: Duration) async throws {
        var other = try await otherNumber(on: store)
        if other == nil {
            try await store.heartbeat(group: permitsGroup, member: member(holder), ttl: ttl)
            other = try await otherNumber(on: store)
        }
        if let other {
            try? await store.leave(group: permitsGroup, member: member(holder))
            let theirs = Self.permits(of: other).map(String.init) ?? "another number of"
            throw BatonError.invalidArgument(
                "semaphore \(key) is in use with \(theirs) permits (by \(Self.holder(of: other))); this candidate "
                    + "asked for \(permits): every candidate of a semaphore must ask for the same number")
        }
        if permits > 1, let leader = try await store.current(key: key) {
            try? await store.leave(group: permitsGroup, member: member(holder))
            throw BatonError.invalidArgument(
                "\(key) is held as a lease by \(leader.holder) (token \(leader.token)); a key is either a lease or a "
                    + "semaphore")
        }
    }

    /// Withdraws `holder`'s announcement (best effort: it expires after its ttl anyway).
    package func withdraw(on store: LeaseStore, holder: String) async {
        try? await store.leave(group: permitsGroup, member: member(holder))
    }

    /// The numbers of permits announced now, by the members of the permits group.
    package func announcedPermits(on store: LeaseStore) async throws -> Set<Int> {
        Set(try await store.members(group: permitsGroup).compactMap(Self.permits(of:)))
    }

    /// A member of the permits group that announces another number of permits, if any.
    private func otherNumber(on store: LeaseStore) async throws -> String? {
        try await store.members(group: permitsGroup).first { Self.permits(of: $0) != permits }
    }

    /// The number of permits a member announces, if it is well formed.
    package static func permits(of member: String) -> Int? {
        guard let colon = member.firstIndex(of: ":") else { return nil }
        return Int(member[..<colon])
    }

    /// The holder a member names.
    package static func holder(of member: String) -> String {
        guard let colon = member.firstIndex(of: ":") else { return member }
        return String(member[member.index(after: colon)...])
    }
}
