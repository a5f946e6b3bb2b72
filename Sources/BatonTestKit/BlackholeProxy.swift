import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A TCP forwarder on a loopback port, for tests of connections that die silently: ``blackholeOpenConnections()``
/// makes every connection open at that moment drop the bytes it gets, both ways, while its sockets stay open (no
/// reset, no FIN: what a NAT or firewall that forgot a flow does), and connections made later forward normally.
///
/// Blocking sockets, two threads per connection; IPv4 only. ``close()`` ends every connection.
public final class BlackholeProxy: Sendable {
    /// The loopback port to connect to instead of the upstream's.
    public let port: Int
    private let listener: Int32
    private let upstreamHost: String
    private let upstreamPort: UInt16

    private struct Connection {
        var client: Int32
        var upstream: Int32
        var blackholed = false
    }

    private struct State {
        var connections: [Int: Connection] = [:]
        var nextID = 0
        var closed = false
    }

    private let state = Mutex(State())

    /// A proxy could not be set up.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Listens on a free port of 127.0.0.1 and forwards each connection to `host`:`port` (an IPv4 address, or
    /// `localhost`).
    public init(forwardingTo host: String, port: Int) throws {
        upstreamHost = host == "localhost" ? "127.0.0.1" : host
        guard let upstreamPort = UInt16(exactly: port) else { throw Failure(description: "bad port \(port)") }
        self.upstreamPort = upstreamPort
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = Self.address("127.0.0.1", 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(listener, pointer, length) == 0 && Glibc.listen(listener, 64) == 0
                    && getsockname(listener, pointer, &length) == 0
            }
        }
        guard listener >= 0, bound else {
            let reason = String(cString: strerror(errno))
            if listener >= 0 { Glibc.close(listener) }
            throw Failure(description: "cannot listen on 127.0.0.1: \(reason)")
        }
        self.listener = listener
        self.port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// Makes every connection open now drop what it gets from either side from now on; returns how many.
    @discardableResult
    public func blackholeOpenConnections() -> Int {
        state.withLock { state in
            for id in state.connections.keys { state.connections[id]?.blackholed = true }
            return state.connections.count
        }
    }

    /// The number of connections open now.
    public var openConnections: Int { state.withLock { $0.connections.count } }

    /// Stops listening and closes every connection.
    public func close() {
        let connections = state.withLock { state -> [Connection] in
            if state.closed { return [] }
            state.closed = true
            return Array(state.connections.values)
        }
        shutdown(listener, Int32(SHUT_RDWR))
        for connection in connections {
            shutdown(connection.client, Int32(SHUT_RDWR))
            shutdown(connection.upstream, Int32(SHUT_RDWR))
        }
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if state.withLock({ $0.closed }) {
                if client >= 0 { Glibc.close(client) }
                Glibc.close(listener)
                return
            }
            guard client >= 0 else { continue }
            Thread.detachNewThread { [self] in forward(client) }
        }
    }

    private func forward(_ client: Int32) {
        let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = Self.address(upstreamHost, upstreamPort)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        var noDelay: Int32 = 1
        setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(upstream, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))
        let id = state.withLock { state -> Int? in
            guard connected == 0, !state.closed else { return nil }
            state.nextID += 1
            state.connections[state.nextID] = Connection(client: client, upstream: upstream)
            return state.nextID
        }
        guard let id else {
            Glibc.close(upstream)
            Glibc.close(client)
            return
        }
        let remaining = Atomic(2)
        let finish: @Sendable () -> Void = { [self] in
            shutdown(client, Int32(SHUT_RDWR))
            shutdown(upstream, Int32(SHUT_RDWR))
            if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                state.withLock { _ = $0.connections.removeValue(forKey: id) }
                Glibc.close(client)
                Glibc.close(upstream)
            }
        }
        Thread.detachNewThread { [self] in
            pump(id, from: client, to: upstream)
            finish()
        }
        pump(id, from: upstream, to: client)
        finish()
    }

    /// Copies bytes from one socket to the other until either side closes; once the connection is blackholed,
    /// reads and drops them.
    private func pump(_ id: Int, from source: Int32, to destination: Int32) {
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if count <= 0 { return }
            if state.withLock({ $0.connections[id]?.blackholed ?? true }) { continue }
            var sent = 0
            while sent < count {
                let written = buffer.withUnsafeBytes { write(destination, $0.baseAddress! + sent, count - sent) }
                if written <= 0 { return }
                sent += written
            }
        }
    }

    private static func address(_ host: String, _ port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &address.sin_addr)
        return address
    }
}
