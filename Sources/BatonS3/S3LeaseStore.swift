@_spi(BatonStoreKit) import Baton
import Foundation
import NIOHTTP1
import ServiceLifecycle
import Synchronization

/// A ``Baton/LeaseStore`` on any S3-compatible object store with conditional writes:
/// `s3://bucket/prefix/?endpoint=URL&region=R`.
///
/// Credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`; the region from
/// the URL's `region`, else `AWS_REGION` (or `AWS_DEFAULT_REGION`), else `us-east-1`; the endpoint from the URL's
/// `endpoint`, else `AWS_ENDPOINT_URL_S3`, else AWS itself. A custom endpoint is addressed path-style
/// (`endpoint/bucket/key`), AWS virtual-hosted style. Requests are signed with SigV4 (``SigV4Signer``).
///
/// ## Clock-safe takeover
///
/// S3 has no server-side expiry, and hosts' wall clocks are never compared. The lease object holds the holder,
/// the fencing token, the ttl and the metadata. Every object this store reads or writes is remembered with its
/// ETag and the time on this host's monotonic clock when that ETag was first seen (for a write: when S3
/// answered it). A term counts as expired only once the *same* ETag has been seen for a full ttl: the holder
/// renews by writing, which changes the ETag, so a live holder is never taken over. Creation uses
/// `If-None-Match: *`; renewal, takeover and release use `If-Match: <ETag>`, so of two candidates racing for
/// one expired term exactly one write succeeds, and the loser's `412 Precondition Failed` is the answer
/// "someone else won" (never an error, never retried). A new term's token is the last one plus one, written
/// under that same condition. Release writes a released state that keeps the token, so tokens never go back.
///
/// A store that has never seen a lease object starts timing it when it first reads it: a candidate that comes
/// up after the holder died waits one ttl before taking over.
///
/// Tokens live in the lease object, which the store never deletes: removing it by hand restarts them at 1.
///
/// ## Layout
///
/// In object keys a name keeps its ASCII letters, digits and `-`; every other byte of its UTF-8 is written `_XX`
/// (upper-case hex), so `.` separates names unambiguously and object keys never need percent-encoding (some
/// S3-compatible servers check signatures of percent-encoded paths and queries wrongly). A name longer than 400
/// bytes so written is `~` and the SHA-256 of the name in hex instead, so object keys stay within S3's 1,024 bytes.
///
/// | object | holds |
/// |---|---|
/// | `<prefix>lease.<key>` | JSON `{"holder","token","ttl_ms","metadata"?,"key","released","write"}` |
/// | `<prefix>round.<system>.<round>` | JSON `{"winner"?,"completed_by"?,"retention_ms","write"}` |
/// | `<prefix>presence.<group>.<member>` | JSON `{"member","ttl_ms","write"}`, rewritten by every heartbeat |
///
/// `write` is random per write: S3's ETag of a simple upload is the MD5 of the content, and every write must
/// change it. With `s3://bucket/baton/` the lease of `orders` is the object `baton/lease.orders`.
///
/// ## Lifecycle
///
/// The store is a ServiceLifecycle `Service`: run it (in a `ServiceGroup`, or with
/// ``Baton/LeaseStore/withRunning(_:)``) through the ``Baton/LeaseStore`` that wraps it. Making it sends nothing;
/// ``run()`` makes the HTTP client that every request goes through and shuts it down when it ends, which also
/// ends the polls of ``changes(key:)``.
///
/// ``changes(key:)`` polls the lease object every ``Configuration/pollInterval`` (a quarter of the ttl by
/// default), and at once after a write through this store; the subscribers of a key in one store share one poll.
public final class S3LeaseStore: LeaseStoreDriver {
    /// `s3`.
    public var storeName: String { "s3" }
    let client: S3Client
    let prefix: String
    let configuration: Configuration
    let clock: BatonClock
    let signals = ChangeSignals()
    /// The HTTP client while ``run()`` runs.
    let session: S3Session
    private let feeds = SharedLeaderFeeds()
    private let sightings = Mutex<[String: Sighting]>([:])

    /// An ETag and when this store first saw it.
    struct Sighting {
        var etag: String
        var since: Duration
        var ttl: Duration?
        /// For a lease object: the live term this ETag holds (``LeaseState/term``), nil if released; for a
        /// presence object: the member.
        var term: String?
    }

    /// Creates a store for an `s3://` URL. Nothing is sent, and no HTTP client made, before ``run()``.
    /// - Parameters:
    ///   - url: `s3://bucket/prefix/?endpoint=URL&region=R`.
    ///   - environment: where credentials, the region and the endpoint are looked up when the URL and
    ///     `configuration` do not give them; the process's environment by default.
    /// - Throws: ``Baton/BatonError`` `invalidArgument` for a URL that is not an S3 URL, an unknown query item
    ///   or a bad endpoint; `unauthorized` when no credentials are given.
    public init(
        url: StoreURL,
        configuration: Configuration = Configuration(),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        let (bucket, prefix) = try Self.bucketAndPrefix(of: url)
        for item in url.queryItems where item.name != "endpoint" && item.name != "region" {
            throw BatonError.invalidArgument(
                "an s3 store URL takes the query items endpoint and region, not \(item.name): \(url)"
            )
        }
        let credentials = try configuration.credentials ?? S3Credentials.fromEnvironment(environment)
        let region =
            url.queryValue("region") ?? environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"] ?? "us-east-1"
        let endpoint = url.queryValue("endpoint") ?? environment["AWS_ENDPOINT_URL_S3"]
        let session = S3Session(name: url.description)
        self.session = session
        self.client = try S3Client(
            session: session,
            signer: SigV4Signer(credentials: credentials, region: region),
            bucket: bucket,
            endpoint: endpoint.flatMap { $0.isEmpty ? nil : $0 },
            name: url.description
        )
        self.prefix = prefix
        self.configuration = configuration
        self.clock = configuration.clock
    }

    /// Creates a store for the URL in `string`. See ``init(url:configuration:environment:)``.
    public convenience init(
        _ string: String,
        configuration: Configuration = Configuration(),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        try self.init(url: StoreURL(string), configuration: configuration, environment: environment)
    }

    // MARK: Leases

    public func acquire(key: String, holder: String, ttl: Duration, metadata: String?) async throws -> AcquireResult {
        let object = leaseObject(key)
        // A lost race is answered with the winner; a second 412 in a row only means the winner wrote again.
        for _ in 0..<3 {
            let current = try await readLease(object)
            var condition: (name: String, value: String) = ("if-none-match", "*")
            var token: FencingToken = 1
            if let current {
                condition = ("if-match", current.etag)
                let expired = isExpired(object, etag: current.etag)
                if current.state.released || expired {
                    token = current.state.token + 1
                } else if current.state.holder == holder {
                    token = current.state.token
                } else {
                    return .held(by: leaderInfo(current, object: object))
                }
            }
            let state = LeaseState(
                holder: holder, token: token, ttlMilliseconds: ttl.batonMilliseconds, metadata: metadata, key: key)
            if try await write(object, state, condition: condition, ttl: ttl, term: state.term) {
                signals.notify(key)
                return .acquired(Lease(key: key, holder: holder, token: token, ttl: ttl, metadata: metadata))
            }
        }
        if let current = try await readLease(object), !current.state.released {
            return .held(by: leaderInfo(current, object: object))
        }
        throw BatonError.storeUnavailable("\(client.name): the lease object \(key) changed under every attempt")
    }

    public func renew(_ lease: Lease, ttl: Duration) async throws -> Lease {
        let object = leaseObject(lease.key)
        let state = LeaseState(
            holder: lease.holder,
            token: lease.token,
            ttlMilliseconds: ttl.batonMilliseconds,
            metadata: lease.metadata,
            key: lease.key
        )
        // The ETag this store last saw is usually its own last write of this term: write against it at once,
        // and read only when S3 refuses (412), to tell a lost term from a stale ETag (a write whose answer was
        // lost, or a renewal through another store instance).
        let term = LeaseState.term(holder: lease.holder, token: lease.token)
        var etag = sightings.withLock { $0[object].flatMap { $0.term == term ? $0.etag : nil } }
        for attempt in 0..<2 {
            if etag == nil || attempt > 0 {
                guard let current = try await readLease(object), current.state.isTerm(of: lease) else {
                    throw BatonError.lost(key: lease.key, "another holder took the lease (412 Precondition Failed)")
                }
                etag = current.etag
            }
            guard let expected = etag, !isExpired(object, etag: expected) else { throw BatonError.lost(key: lease.key) }
            if try await write(object, state, condition: ("if-match", expected), ttl: ttl, term: state.term) {
                // Local subscribers read again at once, so new metadata is seen without waiting for a poll.
                signals.notify(lease.key)
                var renewed = lease
                renewed.ttl = ttl
                return renewed
            }
        }
        throw BatonError.lost(key: lease.key, "another holder took the lease (412 Precondition Failed)")
    }

    public func release(_ lease: Lease) async throws {
        let object = leaseObject(lease.key)
        guard let current = try await readLease(object), current.state.isTerm(of: lease) else { return }
        var released = current.state
        released.released = true
        released.metadata = nil
        released.write = Self.newWriteID()
        // A 412 means the term ended meanwhile: nothing left to release.
        if try await write(object, released, condition: ("if-match", current.etag), ttl: nil) {
            signals.notify(lease.key)
        }
    }

    public func current(key: String) async throws -> LeaderInfo? {
        let object = leaseObject(key)
        guard let current = try await readLease(object), !current.state.released,
            !isExpired(object, etag: current.etag)
        else { return nil }
        return leaderInfo(current, object: object)
    }

    public func changes(key: String) throws -> LeaderChanges {
        if session.hasEnded { throw session.endedError }
        return feeds.subscribe(key) { feed(key) }
    }

    /// The one polling feed of `key` in this store, shared by its subscribers (see ``changes(key:)``).
    private func feed(_ key: String) -> LeaderChanges {
        let signals = signals.subscribe(key)
        let configuration = configuration
        return LeaderChangeFeed.make(
            clock: clock,
            signals: signals,
            pollInterval: { leader in
                guard let ttl = leader?.ttl else { return configuration.idlePollInterval }
                return configuration.pollInterval ?? ttl / 4
            },
            read: { [weak self] in
                guard let self else { throw BatonError.storeUnavailable("the S3 store is closed") }
                return try await self.current(key: key)
            }
        )
    }

    // MARK: Rounds

    public func claim(system: String, round: String, candidate: String, retention: Duration) async throws -> ClaimResult
    {
        let object = roundObject(system, round)
        for _ in 0..<5 {
            let (record, condition) = try await readRound(object)
            let (result, updated) = RoundRules.claim(record?.record, candidate: candidate)
            if updated == record?.record { return result }
            let state = RoundState(updated, retention: retention)
            if try await write(object, state, condition: condition, ttl: retention) { return result }
        }
        throw BatonError.storeUnavailable("\(client.name): the round \(system)/\(round) changed under every attempt")
    }

    public func winner(system: String, round: String) async throws -> String? {
        return try await readRound(roundObject(system, round)).record?.record.winner
    }

    public func complete(system: String, round: String, by completer: Completer, retention: Duration) async throws {
        let object = roundObject(system, round)
        for _ in 0..<5 {
            let (record, condition) = try await readRound(object)
            let updated = try RoundRules.complete(record?.record, by: completer, system: system, round: round).get()
            if updated == record?.record { return }
            // A first record made by a completion keeps the usual retention; an existing one keeps its own.
            let state = RoundState(
                updated, retention: record.map { Duration.milliseconds($0.retentionMilliseconds) } ?? retention)
            if try await write(object, state, condition: condition, ttl: .milliseconds(state.retentionMilliseconds)) {
                return
            }
        }
        throw BatonError.storeUnavailable("\(client.name): the round \(system)/\(round) changed under every attempt")
    }

    public func completion(system: String, round: String) async throws -> String? {
        return try await readRound(roundObject(system, round)).record?.record.completedBy
    }

    // MARK: Presence

    public func heartbeat(group: String, member: String, ttl: Duration) async throws {
        let object = presencePrefix(group) + Self.encodeName(member)
        let state = PresenceState(member: member, ttlMilliseconds: ttl.batonMilliseconds)
        let response = try await client.send(.PUT, key: object, body: Array(try JSONEncoder().encode(state)))
        guard response.status.code / 100 == 2 else { throw unexpected(response, "PUT", object) }
        let now = clock.now()
        if let etag = response.etag {
            sightings.withLock { $0[object] = Sighting(etag: etag, since: now, ttl: ttl, term: member) }
        }
    }

    public func leave(group: String, member: String) async throws {
        let object = presencePrefix(group) + Self.encodeName(member)
        let response = try await client.send(.DELETE, key: object)
        guard response.status.code / 100 == 2 || response.status == .notFound else {
            throw unexpected(response, "DELETE", object)
        }
        sightings.withLock { $0[object] = nil }
    }

    public func members(group: String) async throws -> [String] {
        var alive: [String] = []
        for (object, etag) in try await listObjects(under: presencePrefix(group)) {
            guard let (member, ttl) = try await presence(object, etag: etag) else { continue }
            note(object, etag: etag, ttl: ttl, term: member)
            if !isExpired(object, etag: etag) { alive.append(member) }
        }
        return alive.sorted()
    }

    // MARK: Objects

    /// Every object whose key starts with `folder`, with its ETag (ListObjectsV2, page by page).
    func listObjects(under folder: String) async throws -> [(object: String, etag: String)] {
        var found: [(object: String, etag: String)] = []
        var continuation: String?
        repeat {
            var query: [(name: String, value: String)] = [("list-type", "2"), ("prefix", folder)]
            if let continuation { query.append(("continuation-token", continuation)) }
            let response = try await client.send(.GET, key: nil, query: query)
            guard response.status == .ok else { throw unexpected(response, "LIST", folder) }
            let document = String(decoding: response.body, as: UTF8.self)
            for entry in XMLScan.elements("Contents", in: document) {
                guard let object = XMLScan.values(of: "Key", in: entry).first,
                    let etag = XMLScan.values(of: "ETag", in: entry).first
                else { continue }
                found.append((object, etag))
            }
            let truncated = XMLScan.values(of: "IsTruncated", in: document).first == "true"
            continuation = truncated ? XMLScan.values(of: "NextContinuationToken", in: document).first : nil
        } while continuation != nil
        return found
    }

    func leaseObject(_ key: String) -> String { prefix + "lease." + Self.encodeName(key) }

    func roundObject(_ system: String, _ round: String) -> String {
        prefix + "round." + Self.encodeName(system) + "." + Self.encodeName(round)
    }

    func presencePrefix(_ group: String) -> String { prefix + "presence." + Self.encodeName(group) + "." }

    /// A name as it appears in an object key (see the layout in the type's documentation).
    static func encodeName(_ name: String) -> String {
        let encoded = escapeName(name)
        guard encoded.utf8.count > 400 else { return encoded }
        return "~" + SigV4Signer.payloadHash(Array(name.utf8))
    }

    /// A name with every byte but ASCII letters, digits and `-` written `_XX`, however long.
    static func escapeName(_ name: String) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        var encoded: [UInt8] = []
        for byte in name.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"):
                encoded.append(byte)
            default:
                encoded += [UInt8(ascii: "_"), digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]]
            }
        }
        return String(decoding: encoded, as: UTF8.self)
    }

    /// A random write id: 64 bits in hex.
    static func newWriteID() -> String { String(UInt64.random(in: .min ... .max), radix: 16) }

    // MARK: Sightings

    /// Records that `object` has `etag` now, keeping the first time this ETag was seen.
    func note(_ object: String, etag: String, ttl: Duration?, term: String? = nil) {
        let now = clock.now()
        sightings.withLock { sightings in
            if var sighting = sightings[object], sighting.etag == etag {
                if let ttl { sighting.ttl = ttl }
                sighting.term = term
                sightings[object] = sighting
            } else {
                sightings[object] = Sighting(etag: etag, since: now, ttl: ttl, term: term)
            }
        }
    }

    /// Whether `object` has had `etag` for at least its ttl on this host's clock.
    func isExpired(_ object: String, etag: String) -> Bool {
        let now = clock.now()
        return sightings.withLock { sightings in
            guard let sighting = sightings[object], sighting.etag == etag, let ttl = sighting.ttl else { return false }
            return now - sighting.since >= ttl
        }
    }

    /// The time left of `object`'s current ETag, as this store can tell.
    func remaining(_ object: String, etag: String) -> Duration? {
        let now = clock.now()
        return sightings.withLock { sightings in
            guard let sighting = sightings[object], sighting.etag == etag, let ttl = sighting.ttl else { return nil }
            return max(ttl - (now - sighting.since), .zero)
        }
    }

    // MARK: Reading and writing

    struct Read<State> {
        var state: State
        var etag: String
    }

    func readLease(_ object: String) async throws -> Read<LeaseState>? {
        guard let (state, etag) = try await read(LeaseState.self, object) else { return nil }
        note(object, etag: etag, ttl: .milliseconds(state.ttlMilliseconds), term: state.term)
        return Read(state: state, etag: etag)
    }

    /// The round's record unless it outlived its retention, and the condition a write must carry.
    func readRound(
        _ object: String
    ) async throws -> (record: RoundState?, condition: (name: String, value: String)) {
        guard let (state, etag) = try await read(RoundState.self, object) else { return (nil, ("if-none-match", "*")) }
        note(object, etag: etag, ttl: .milliseconds(state.retentionMilliseconds))
        return (isExpired(object, etag: etag) ? nil : state, ("if-match", etag))
    }

    /// The member and ttl of a presence object with `etag`: remembered, or read (nil if it is gone).
    private func presence(_ object: String, etag: String) async throws -> (member: String, ttl: Duration)? {
        let known = sightings.withLock { sightings -> (String, Duration)? in
            guard let sighting = sightings[object], sighting.etag == etag, let member = sighting.term,
                let ttl = sighting.ttl
            else { return nil }
            return (member, ttl)
        }
        if let known { return known }
        guard let (state, _) = try await read(PresenceState.self, object) else { return nil }
        return (state.member, .milliseconds(state.ttlMilliseconds))
    }

    private func read<State: Decodable>(_ type: State.Type, _ object: String) async throws -> (State, String)? {
        let response = try await client.send(.GET, key: object)
        if response.status == .notFound { return nil }
        guard response.status == .ok, let etag = response.etag else { throw unexpected(response, "GET", object) }
        do {
            return (try JSONDecoder().decode(State.self, from: Data(response.body)), etag)
        } catch {
            throw BatonError.storeUnavailable("\(client.name): the object \(object) is not a Baton record: \(error)")
        }
    }

    /// Writes `state` to `object` under `condition`; false if S3 answered 412 (another write came first).
    private func write<State: Encodable>(
        _ object: String,
        _ state: State,
        condition: (name: String, value: String),
        ttl: Duration?,
        term: String? = nil
    ) async throws -> Bool {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let body = Array(try encoder.encode(state))
        let response = try await client.send(
            .PUT,
            key: object,
            headers: [condition, ("content-type", "application/json")],
            body: body
        )
        // 409: S3 answers a conditional write that raced another one with ConditionalRequestConflict.
        if response.status == .preconditionFailed || response.status == .conflict { return false }
        guard response.status.code / 100 == 2, let etag = response.etag else {
            throw unexpected(response, "PUT", object)
        }
        let now = clock.now()
        sightings.withLock { $0[object] = Sighting(etag: etag, since: now, ttl: ttl, term: term) }
        return true
    }

    func leaderInfo(_ read: Read<LeaseState>, object: String) -> LeaderInfo {
        LeaderInfo(
            holder: read.state.holder,
            token: read.state.token,
            metadata: read.state.metadata,
            ttl: .milliseconds(read.state.ttlMilliseconds),
            remaining: remaining(object, etag: read.etag)
        )
    }

    private func unexpected(_ response: S3Client.Response, _ method: String, _ object: String) -> BatonError {
        .storeUnavailable(
            "\(client.name) answered \(method) \(object) with \(response.status.code) \(response.errorCode ?? "")"
        )
    }
}

/// The lease object's content.
struct LeaseState: Codable, Sendable, Hashable {
    var holder: String
    var token: FencingToken
    var ttlMilliseconds: Int64
    var metadata: String?
    /// The key, so that a listing can name the keys whose object is named by a hash (nil in objects written
    /// before it was recorded).
    var key: String?
    var released = false
    /// Random per write. S3's ETag of a simple PUT is the MD5 of the content, so without it a renewal that
    /// writes the same holder, token, ttl and metadata would keep the ETag, and candidates would count the
    /// holder's live term as unchanged and take it over.
    var write = S3LeaseStore.newWriteID()

    enum CodingKeys: String, CodingKey {
        case holder, token, metadata, key, released, write
        case ttlMilliseconds = "ttl_ms"
    }

    /// Whether this is the live term of `lease`.
    func isTerm(of lease: Lease) -> Bool { !released && holder == lease.holder && token == lease.token }

    /// The live term this state holds, as one string; nil when released.
    var term: String? { released ? nil : Self.term(holder: holder, token: token) }

    /// A term as one string.
    static func term(holder: String, token: FencingToken) -> String { "\(token) \(holder)" }
}

/// A presence object's content.
struct PresenceState: Codable, Sendable, Hashable {
    var member: String
    var ttlMilliseconds: Int64
    /// Random per write, so every heartbeat changes the ETag (see ``LeaseState/write``).
    var write = S3LeaseStore.newWriteID()

    enum CodingKeys: String, CodingKey {
        case member, write
        case ttlMilliseconds = "ttl_ms"
    }
}

/// A round object's content.
struct RoundState: Codable, Sendable, Hashable {
    var winner: String?
    var completedBy: String?
    var retentionMilliseconds: Int64
    /// Random per write, so every write changes the ETag (see ``LeaseState/write``).
    var write = S3LeaseStore.newWriteID()

    init(_ record: RoundRecord, retention: Duration) {
        winner = record.winner
        completedBy = record.completedBy
        retentionMilliseconds = retention.batonMilliseconds
    }

    var record: RoundRecord { RoundRecord(winner: winner, completedBy: completedBy) }

    enum CodingKeys: String, CodingKey {
        case winner
        case completedBy = "completed_by"
        case retentionMilliseconds = "retention_ms"
        case write
    }
}
