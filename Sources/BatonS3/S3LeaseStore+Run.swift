import AsyncHTTPClient
@_spi(BatonStoreKit) import Baton
import ServiceLifecycle

extension S3LeaseStore {
    /// Runs the store: makes its HTTP client (whose connections to the endpoint are opened as requests need
    /// them), serves requests until the task is cancelled or a graceful shutdown begins, then refuses new
    /// requests, ends every ``changes(key:)`` sequence (each ends with
    /// ``Baton/BatonError/Code/storeUnavailable``) and shuts the client down, closing its connections, before it
    /// returns.
    ///
    /// Nothing is sent when it starts: whether the credentials are accepted shows in the first request
    /// (``Baton/BatonError/Code/unauthorized``), since a check of its own would need a permission the store's
    /// operations may not (listing the bucket is needed only by ``members(group:)``).
    public func run() async throws {
        try await HTTPClient.withHTTPClient { http in
            session.start(http)
            // Returns at a graceful shutdown, throws CancellationError when cancelled: either way the store ends.
            try? await gracefulShutdown()
            session.end()
            signals.finishAll()
        }
    }
}
