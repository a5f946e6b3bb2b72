@_spi(BatonStoreKit) import Baton
@_spi(BatonStoreKit) import BatonS3
import BatonTestKit
import Foundation
import Testing

/// The S3-compatible server `scripts/test` started (moto with signature verification on): `BATON_TEST_S3_URL`
/// and the access key of an IAM user it created, `BATON_TEST_S3_ACCESS_KEY_ID` and
/// `BATON_TEST_S3_SECRET_ACCESS_KEY`. Without them a test passes trivially outside CI, and fails under `CI=true`
/// (see ``RealServer``).
enum S3TestServer {
    /// The server's URL and key (see ``RealServer/require(_:)``).
    static func server() throws -> (url: String, credentials: S3Credentials)? {
        guard let url = try RealServer.require("BATON_TEST_S3_URL"),
            let id = try RealServer.require("BATON_TEST_S3_ACCESS_KEY_ID"),
            let secret = try RealServer.require("BATON_TEST_S3_SECRET_ACCESS_KEY")
        else { return nil }
        return (url, S3Credentials(accessKeyID: id, secretAccessKey: secret))
    }

    /// A store on the test server, or nil (see ``server()``).
    static func store(
        pollInterval: Duration? = nil,
        clock: BatonClock = .continuous,
        credentials: S3Credentials? = nil
    ) throws -> S3LeaseStore? {
        guard let (url, key) = try server() else { return nil }
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
