import Hummingbird
import NIOCore

/// The request context of Baton's HTTP service: Hummingbird's core context plus the address of the client,
/// which is the v1 API's default identity (gone's rule: the remote `ip:port`).
public struct BatonRequestContext: RequestContext {
    /// Hummingbird's own per-request storage.
    public var coreContext: CoreRequestContextStorage
    /// The client's address, if the connection has one (requests sent straight to the router in tests have none).
    public let remoteAddress: SocketAddress?
    /// What the request's bearer token may read and write: ``AccessScope/unrestricted`` when the service asks for no
    /// token or for the single ``BatonHTTPServer/Configuration-swift.struct/authToken``; set by the authentication
    /// middleware before any route runs. A route that lists keys shows only those ``AccessScope/canRead(_:)`` allows.
    public internal(set) var access: AccessScope
    /// Completed when the client's connection closes, so that a long poll or an event stream whose client left
    /// gives its slot back at once.
    let connectionClosed: EventLoopFuture<Void>
    /// The event loop of the client's connection, for cheap timers (an event stream's keep-alive).
    let eventLoop: any EventLoop

    /// Creates the context of a request arriving on `source.channel`.
    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
        self.access = .unrestricted
        self.connectionClosed = source.channel.closeFuture
        self.eventLoop = source.channel.eventLoop
    }

    /// Bodies are read by the handlers with their own limit
    /// (``BatonHTTPServer/Configuration-swift.struct/maxBodyBytes``); this is the limit of Hummingbird's decoders.
    public var maxUploadSize: Int { 64 * 1024 }

    /// The remote address as `ip:port` (`[ip]:port` for IPv6), or nil if unknown.
    var remoteIdentity: String? {
        guard let remoteAddress, let ip = remoteAddress.ipAddress, let port = remoteAddress.port else { return nil }
        if case .v6 = remoteAddress { return "[\(ip)]:\(port)" }
        return "\(ip):\(port)"
    }
}
