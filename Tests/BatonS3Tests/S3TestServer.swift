@_spi(BatonStoreKit) import Baton
@_spi(BatonStoreKit) import BatonS3
import Foundation
import Testing

/// The S3-compatible server `scripts/test` started (moto with signature verification on): `BATON_TEST_S3_URL`
/// and the access key of an IAM user it created, `BATON_TEST_S3_ACCESS_KEY_ID` and
/// `BATON_TEST_S3_SECRET_ACCESS_KEY`. Without them a test passes trivially outside CI, and fails under `CI=true`
/// (a missing server is never a skip there).
enum S3TestServer {
    static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// The server's URL and key, or nil after recording an issue under CI.
    static func server() -> (url: String, credentials: S3Credentials)? {
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment["BATON_TEST_S3_URL"], !url.isEmpty,
            let id = environment["BATON_TEST_S3_ACCESS_KEY_ID"], !id.isEmpty,
            let secret = environment["BATON_TEST_S3_SECRET_ACCESS_KEY"], !secret.isEmpty
        else {
            if isCI {
                let variables = "BATON_TEST_S3_URL, BATON_TEST_S3_ACCESS_KEY_ID or BATON_TEST_S3_SECRET_ACCESS_KEY"
                Issue.record("\(variables) is not set under CI=true: scripts/test must start moto_server")
            }
            return nil
        }
        return (url, S3Credentials(accessKeyID: id, secretAccessKey: secret))
    }

    /// A store on the test server, or nil (see ``server()``).
    static func store(
        pollInterval: Duration? = nil,
        clock: BatonClock = .continuous,
        credentials: S3Credentials? = nil
    ) throws -> S3LeaseStore? {
        guard let (url, key) = server() else { return nil }
        var configuration = S3LeaseStore.Configuration(
            pollInterval: pollInterval,
            idlePollInterval: .milliseconds(250),
            credentials: credentials ?? key
        )
        configuration.clock = clock
        return try S3LeaseStore(url, configuration: configuration, environment: [:])
    }
}

/// Runs a front over each of `drivers` while `body` runs, then stops them.
@discardableResult
func withRunning<T>(_ drivers: [S3LeaseStore], _ body: ([LeaseStore]) async throws -> T) async throws -> T {
    let stores = drivers.map { LeaseStore($0) }
    return try await withThrowingTaskGroup(of: Void.self) { group in
        for store in stores { group.addTask { try await store.run() } }
        defer { group.cancelAll() }
        return try await body(stores)
    }
}

/// A unique name, so tests sharing a server never collide.
func unique(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString.prefix(8))" }
