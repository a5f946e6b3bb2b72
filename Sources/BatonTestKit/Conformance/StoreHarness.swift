import Baton

/// What the conformance suite needs to know about a store under test: how to get it, how to let its time pass,
/// and which ttl is short enough for expiry checks.
///
/// ```swift
/// struct RedisHarness: StoreHarness {
///     let store: LeaseStore
///     let other: LeaseStore
///     func makeStore() async throws -> LeaseStore { store }
///     func makeOtherInstance() async throws -> LeaseStore { other }
///     func elapse(_ duration: Duration) async throws { try await Task.sleep(for: duration) }
///     var ttl: Duration { .seconds(1) }
/// }
///
/// @Test(arguments: LeaseStoreConformance.checks)
/// func conformance(_ check: ConformanceCheck) async throws {
///     try await check.run(RedisHarness(store: sharedStore, other: secondStore))
/// }
/// ```
///
/// Checks may run concurrently against one harness, and every check uses names (keys, systems, rounds,
/// groups, holders) made unique with random suffixes, so ``makeStore()`` may return one shared store.
public protocol StoreHarness: Sendable {
    /// The store to check: a new one, or one shared by all checks. Checks never close it.
    func makeStore() async throws -> LeaseStore

    /// Another instance of the same store as ``makeStore()``'s, running for the whole check: its own
    /// connections, watches and whatever it remembers, as another process or another `baton serve` replica on
    /// the same store has (for the in-memory store, which lives in one process, another front over the same
    /// driver). Checks never close it. The replica checks acquire through one instance and renew, release and
    /// observe through the other.
    func makeOtherInstance() async throws -> LeaseStore

    /// Lets at least `duration` of the store's time pass: advance a manual clock, or sleep for real when the
    /// store is a real server. Afterwards every term, round record and heartbeat that the store was asked to
    /// keep for less than `duration` has expired.
    ///
    /// A harness whose clock is shared by checks that run concurrently (one manual clock for many checks)
    /// makes one check's elapse expire another check's terms; give each check its own clock.
    func elapse(_ duration: Duration) async throws

    /// A ttl short enough that the checks stay quick (they elapse a few multiples of it), but long enough that
    /// a term granted with it does not expire during a handful of store calls: about 1 s for a real server
    /// on loopback; anything for a store on a manual clock.
    var ttl: Duration { get }

    /// How long, in real time, a check waits for an observation from ``LeaseStore/changes(key:)`` before it
    /// fails (so a store that never delivers fails instead of hanging). Ten seconds unless the harness says
    /// otherwise; stores that poll must deliver within it.
    var changeTimeout: Duration { get }
}

extension StoreHarness {
    /// Ten seconds.
    public var changeTimeout: Duration { .seconds(10) }
}

/// A failed conformance expectation: what was expected and what the store did, with the place in the suite
/// where it was checked.
public struct ConformanceFailure: Error, CustomStringConvertible {
    /// The name of the check that failed, once ``ConformanceCheck/run(_:)`` has added it.
    public var check: String?
    /// What went wrong, in words.
    public var message: String
    /// The file of the suite where the expectation is.
    public var file: String
    /// The line of the expectation.
    public var line: Int

    /// A failure with `message`, located at the caller.
    public init(_ message: String, check: String? = nil, file: String = #fileID, line: Int = #line) {
        self.message = message
        self.check = check
        self.file = file
        self.line = line
    }

    /// The check's name, the message and the location.
    public var description: String {
        let prefix = check.map { "[\($0)] " } ?? ""
        return "\(prefix)\(message) (\(file):\(line))"
    }
}

/// Throws a ``ConformanceFailure`` with `message` unless `condition` holds.
///
/// Use it in checks of your own, next to ``LeaseStoreConformance/checks``.
public func expect(
    _ condition: Bool,
    _ message: @autoclosure () -> String,
    file: String = #fileID,
    line: Int = #line
) throws(ConformanceFailure) {
    if !condition { throw ConformanceFailure(message(), file: file, line: line) }
}

/// One named property that every ``LeaseStore`` must have, checked against a ``StoreHarness``.
///
/// Checks are values, so a test framework can run each one as a separate (parameterized) test case, and its
/// name says what failed. Its ``description`` is its name.
public struct ConformanceCheck: Sendable, CustomStringConvertible, Identifiable {
    /// What the check verifies, in a few words; unique within ``LeaseStoreConformance/checks``.
    public let name: String

    /// The check's name, which identifies it (so a test framework can re-run one check by itself).
    public var id: String { name }
    private let body: @Sendable (any StoreHarness) async throws -> Void
    private let file: String
    private let line: Int

    /// A check named `name` that runs `body`; `body` signals a failure by throwing (preferably a
    /// ``ConformanceFailure``, for example through ``expect(_:_:file:line:)``).
    public init(
        _ name: String,
        file: String = #fileID,
        line: Int = #line,
        body: @escaping @Sendable (any StoreHarness) async throws -> Void
    ) {
        self.name = name
        self.body = body
        self.file = file
        self.line = line
    }

    /// Runs the check against a store from `harness`.
    ///
    /// - Throws: ``ConformanceFailure`` naming this check if the store does not conform, also when the store
    ///   throws an error the check did not expect (the failure's message then shows the error).
    public func run(_ harness: any StoreHarness) async throws {
        do {
            try await body(harness)
        } catch var failure as ConformanceFailure {
            failure.check = failure.check ?? name
            throw failure
        } catch {
            throw ConformanceFailure(
                "unexpected error: \(String(reflecting: error))",
                check: name,
                file: file,
                line: line
            )
        }
    }

    /// The check's name.
    public var description: String { name }
}

/// The conformance suite: the properties of the store contract (see ``LeaseStore``) that every store —
/// memory, SQLite, Redis, etcd, PostgreSQL, S3 — must have.
///
/// Run every check in ``checks`` against a ``StoreHarness`` for the store, for example as a parameterized
/// Swift Testing test (`@Test(arguments: LeaseStoreConformance.checks)`). The suite does not depend on a test
/// framework: a check throws a ``ConformanceFailure`` when the store does not conform.
///
/// The checks wait for ``LeaseStore/changes(key:)`` observations at most ``StoreHarness/changeTimeout`` of real
/// time, let store time pass only through ``StoreHarness/elapse(_:)``, and elapse a few multiples of
/// ``StoreHarness/ttl`` in all; a 1,000-term loop and a few concurrent bursts are their other costs.
public enum LeaseStoreConformance {
    /// Every check, in a stable order, with unique names.
    public static let checks: [ConformanceCheck] =
        leaseChecks + changeChecks + roundChecks + presenceChecks
        + listingChecks + validationChecks + replicaChecks

    /// The check named `name`, if any.
    public static func check(named name: String) -> ConformanceCheck? {
        checks.first { $0.name == name }
    }
}
