import Logging

/// A number every participant of a key must agree on, announced in a presence group: the permits of a semaphore
/// (``SemaphoreElector``), the shards of a sharded key (``ShardedElector``). Each participant is a member `N:HOLDER`
/// of the group for as long as it takes part; one that finds another number announced is refused, since two numbers
/// at once would break what either promises.
package struct NumberAnnouncement: Sendable, Hashable {
    /// The presence group.
    package let group: String
    /// The number announced.
    package let number: Int
    /// What is counted, in messages: "permits", "shards".
    package let noun: String
    /// What takes part, in messages: "semaphore jobs", "sharded key orders".
    package let subject: String

    package init(group: String, number: Int, noun: String, subject: String) {
        self.group = group
        self.number = number
        self.noun = noun
        self.subject = subject
    }

    /// The member that announces the number for `holder`.
    package func member(_ holder: String) -> String { "\(number):\(holder)" }

    /// Checks `holder` as a name, and as a member of the group (`N:HOLDER`).
    package func validate(holder: String) throws(BatonError) {
        try BatonValidation.name(holder, "holder")
        do {
            try BatonValidation.name(member(holder), "\(noun) member")
        } catch {
            throw .invalidArgument(
                "holder too long for a \(subject): \(error.message) (the member adds `\(number):` to the holder)")
        }
    }

    /// Announces the number for `holder` for `ttl`, once: looks before announcing (so that a participant refused
    /// here never disturbs one in use) and after (so that of two that start together with different numbers at
    /// least one sees the other).
    /// - Throws: ``BatonError`` `invalidArgument` if another number is announced (the member is withdrawn then).
    ///   Store errors as the store throws them.
    package func announce(on store: LeaseStore, holder: String, ttl: Duration) async throws {
        var other = try await otherNumber(on: store)
        if other == nil {
            try await store.heartbeat(group: group, member: member(holder), ttl: ttl)
            other = try await otherNumber(on: store)
        }
        if let other {
            await withdraw(on: store, holder: holder)
            let theirs = Self.number(of: other).map(String.init) ?? "another number of"
            throw BatonError.invalidArgument(
                "\(subject) is in use with \(theirs) \(noun) (by \(Self.holder(of: other))); this candidate asked "
                    + "for \(number): every candidate must ask for the same number")
        }
    }

    /// Withdraws `holder`'s announcement (best effort: it expires after its ttl anyway), also when the caller is
    /// cancelled: a member that leaves because its task was cancelled must still be gone at once.
    package func withdraw(on store: LeaseStore, holder: String) async {
        let (group, member) = (group, member(holder))
        await Task { try? await store.leave(group: group, member: member) }.value
    }

    /// The numbers announced now.
    package func announcedNumbers(on store: LeaseStore) async throws -> Set<Int> {
        Set(try await store.members(group: group).compactMap(Self.number(of:)))
    }

    /// The holders that announce this number now.
    package func participants(on store: LeaseStore) async throws -> [String] {
        try await store.members(group: group).filter { Self.number(of: $0) == number }.map(Self.holder(of:))
    }

    /// A member that announces another number, if any.
    private func otherNumber(on store: LeaseStore) async throws -> String? {
        try await store.members(group: group).first { Self.number(of: $0) != number }
    }

    /// The number a member announces, if it is well formed.
    package static func number(of member: String) -> Int? {
        guard let colon = member.firstIndex(of: ":") else { return nil }
        return Int(member[..<colon])
    }

    /// The holder a member names.
    package static func holder(of member: String) -> String {
        guard let colon = member.firstIndex(of: ":") else { return member }
        return String(member[member.index(after: colon)...])
    }

    // MARK: Taking part

    /// Announces the number with `announce` (retrying store errors until the caller is cancelled or `stopped`
    /// says so, then it throws `CancellationError`), heartbeats it every third of `ttl` while `body` runs, and
    /// withdraws it afterwards.
    /// - Throws: what `body` or `announce` throws (then `body` does not run).
    package func keep<T: Sendable>(
        on store: LeaseStore,
        holder: String,
        ttl: Duration,
        clock: BatonClock,
        logger: Logger,
        stopped: @escaping @Sendable () -> Bool,
        announce: @escaping @Sendable () async throws -> Void,
        _ body: () async throws -> T
    ) async throws -> T {
        var pause = Duration.milliseconds(100)
        while true {
            if stopped() { throw CancellationError() }
            do {
                try await announce()
                break
            } catch let error as BatonError where error.code == .storeUnavailable || error.code == .timeout {
                logger.warning("store call failed", metadata: ["baton.error": "\(error)"])
                // Retried until the caller is cancelled or stopped (checked every 50 ms).
                let until = clock.now() + pause
                while clock.now() < until {
                    if stopped() { throw CancellationError() }
                    try await clock.sleep(for: min(.milliseconds(50), until - clock.now()))
                }
                pause = min(pause * 2, ttl / 3)
            }
        }
        let member = member(holder)
        let result = await withTaskGroup(of: Void.self) { [group] tasks in
            tasks.addTask {
                while !Task.isCancelled {
                    do {
                        try await clock.sleep(for: ttl / 3)
                    } catch {
                        return
                    }
                    try? await store.heartbeat(group: group, member: member, ttl: ttl)
                }
            }
            defer { tasks.cancelAll() }
            do {
                return Result<T, any Error>.success(try await body())
            } catch {
                return .failure(error)
            }
        }
        // After the heartbeats have stopped, so none announces the member again.
        await withdraw(on: store, holder: holder)
        return try result.get()
    }
}
