@_spi(BatonStoreKit) import Baton

extension S3LeaseStore {
    /// How many objects a listing reads at once.
    static let listingReads = 16

    /// The live terms whose key starts with `prefix`, sorted by key, at most `limit`.
    ///
    /// ListObjectsV2 with the prefix `<prefix>lease.<escaped prefix>` (names are escaped byte by byte, so a key
    /// starts with the prefix exactly when its object name starts with the escaped prefix), then the lease
    /// objects in key order, a few at a time, until `limit` live terms are found. A term counts as expired, and
    /// its time left is counted, by what this store has seen of it (the clock-safe rule): a lease object this
    /// store first reads now shows its whole recorded ttl as time left, and the term of a holder that died is
    /// listed until this store has seen it unchanged for a full ttl. A key whose escaped name is over 400 bytes
    /// is stored under a hash: such objects are all read, and listed by the key they record.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func leases(prefix: String, limit: Int) async throws -> [HeldLease] {
        let folder = self.prefix + "lease."
        var found = try await listObjects(under: folder + Self.escapeName(prefix)).compactMap { entry in
            Self.unescapeName(entry.object.utf8.dropFirst(folder.utf8.count)).map { (key: $0, object: entry.object) }
        }
        // Objects named by a hash record their key: read them all, and keep those under the prefix.
        for entry in try await listObjects(under: folder + "~") {
            guard let current = try await readLease(entry.object), let key = current.state.key,
                ListingLimits.key(key, hasPrefix: prefix)
            else { continue }
            found.append((key, entry.object))
        }
        let ordered = found.sorted { ListingLimits.precedes($0.key, $1.key) }
        return try await readInOrder(ordered, limit: limit) { [self] entry in
            guard let current = try await readLease(entry.object), !current.state.released,
                !isExpired(entry.object, etag: current.etag)
            else { return nil }
            return HeldLease(key: entry.key, leader: leaderInfo(current, object: entry.object))
        }
    }

    /// The kept rounds of `system`, the greatest name first, at most `limit`: ListObjectsV2 under
    /// `<prefix>round.<system>.`, then the round objects, greatest name first, a few at a time, until `limit`
    /// kept ones are found. Retention is judged as for every round, by what this store has seen; rounds whose
    /// escaped name is over 400 bytes are not listed.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func rounds(system: String, limit: Int) async throws -> [RoundSummary] {
        let folder = self.prefix + "round." + Self.encodeName(system) + "."
        let found = try await listObjects(under: folder).compactMap { entry in
            Self.unescapeName(entry.object.utf8.dropFirst(folder.utf8.count)).map { (round: $0, object: entry.object) }
        }
        let ordered = found.sorted { ListingLimits.precedes($1.round, $0.round) }
        return try await readInOrder(ordered, limit: limit) { [self] entry in
            guard let record = try await readRound(entry.object).record else { return nil }
            return RoundSummary(round: entry.round, record: record.record)
        }
    }

    /// Reads `entries` in order, ``listingReads`` at a time, until `limit` of them gave an answer.
    private func readInOrder<Entry: Sendable, Answer: Sendable>(
        _ entries: [Entry],
        limit: Int,
        _ read: @escaping @Sendable (Entry) async throws -> Answer?
    ) async throws -> [Answer] {
        var answers: [Answer] = []
        var start = 0
        while start < entries.count, answers.count < limit {
            let batch = entries[start..<min(start + Self.listingReads, entries.count)]
            start += batch.count
            let answered = try await withThrowingTaskGroup(of: (Int, Answer?).self) { group in
                for (index, entry) in batch.enumerated() { group.addTask { (index, try await read(entry)) } }
                var found = [Answer?](repeating: nil, count: batch.count)
                for try await (index, answer) in group { found[index] = answer }
                return found
            }
            answers += answered.compactMap { $0 }
        }
        return Array(answers.prefix(limit))
    }

    /// The name an escaped object-key part stands for (see ``escapeName(_:)``); nil for a hashed or malformed
    /// part.
    static func unescapeName(_ escaped: Substring.UTF8View) -> String? {
        var bytes: [UInt8] = []
        var iterator = escaped.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "_") else {
                let plain =
                    (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                    || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-")
                guard plain else { return nil }
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                return nil
            }
            bytes.append(high << 4 | low)
        }
        if bytes.isEmpty { return nil }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
