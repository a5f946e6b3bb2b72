import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A TCP forwarder on a loopback port that injects network faults on command, for tests of connections that die
/// and for `baton-chaos proxy`.
///
/// ``blackholeOpenConnections()`` makes every connection open at that moment drop the bytes it gets, both ways,
/// while its sockets stay open (no reset, no FIN: what a NAT or firewall that forgot a flow does); connections made
/// later forward normally. A ``Mode`` set with ``setMode(_:)`` acts on all the traffic: delayed, held, silenced or
/// cut.
///
/// Blocking sockets, two threads per connection; IPv4 only. Writes to a closed peer fail without raising
/// `SIGPIPE`. ``close()`` ends every connection.
public final class BlackholeProxy: Sendable {
    /// What the proxy does with the traffic.
    public enum Mode: Sendable, Equatable {
        /// Forwards every byte at once.
        case pass
        /// Holds every chunk `milliseconds` before forwarding it.
        case delay(milliseconds: Int)
        /// Forwards nothing: bytes wait, as behind a partition, and are delivered once the mode changes (unless it
        /// becomes ``cut``).
        case blackhole
        /// Silences every connection open when the mode is set, as ``BlackholeProxy/blackholeOpenConnections()``
        /// does, and forwards the connections opened meanwhile. Leaving `drop` closes every silenced connection.
        case drop
        /// Closes every open connection, and every new one at once.
        case cut
    }

    /// The loopback port to connect to instead of the upstream's.
    public let port: Int
    private let listener: Int32
    private let upstreamHost: String
    private let upstreamPort: UInt16

    private struct Connection {
        var client: Int32
        var upstream: Int32
    }

    private struct State {
        var mode = Mode.pass
        var connections: [Int: Connection] = [:]
        /// The connections that read and throw away what they get.
        var silent: Set<Int> = []
        var nextID = 0
        var closed = false
    }

    private let state = Mutex(State())

    /// A proxy could not be set up.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Listens on 127.0.0.1:`listenPort` (0: a free port, see ``port``) and forwards each connection to
    /// `host`:`port` (an IPv4 address, or `localhost`), in mode ``Mode/pass``.
    public init(listeningOn listenPort: Int = 0, forwardingTo host: String, port: Int) throws {
        upstreamHost = host == "localhost" ? "127.0.0.1" : host
        guard let upstreamPort = UInt16(exactly: port) else { throw Failure(description: "bad port \(port)") }
        guard let localPort = UInt16(exactly: listenPort) else { throw Failure(description: "bad port \(listenPort)") }
        self.upstreamPort = upstreamPort
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.address("127.0.0.1", localPort)
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
            throw Failure(description: "cannot listen on 127.0.0.1:\(listenPort): \(reason)")
        }
        self.listener = listener
        self.port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// The current mode.
    public var mode: Mode { state.withLock { $0.mode } }

    /// Switches the mode: to ``Mode/cut`` closes every connection, to ``Mode/drop`` silences the open ones, and
    /// away from ``Mode/drop`` closes the silenced ones. Setting the current mode again does nothing.
    public func setMode(_ mode: Mode) {
        // Sockets are shut down and closed only under the lock, so no file descriptor is used after another
        // thread closed it (and the system gave its number to a socket of someone else's).
        state.withLock { state in
            guard state.mode != mode, !state.closed else { return }
            let wasDrop = state.mode == .drop
            state.mode = mode
            if mode == .drop {
                state.silent.formUnion(state.connections.keys)
                return
            }
            if mode == .cut {
                state.silent = []
                for connection in state.connections.values { Self.shut(connection) }
                return
            }
            guard wasDrop else { return }
            for id in state.silent { state.connections[id].map(Self.shut) }
            state.silent = []
        }
    }

    /// Makes every connection open now drop what it gets from either side from now on; returns how many.
    @discardableResult
    public func blackholeOpenConnections() -> Int {
        state.withLock { state in
            state.silent.formUnion(state.connections.keys)
            return state.connections.count
        }
    }

    /// The number of connections open now.
    public var openConnections: Int { state.withLock { $0.connections.count } }

    /// The number of connections forwarded since the proxy started, open or not.
    public var forwardedConnections: Int { state.withLock { $0.nextID } }

    /// Stops listening and closes every connection.
    public func close() {
        state.withLock { state in
            if state.closed { return }
            state.closed = true
            // Ends the wait of bytes held in `blackhole` mode.
            state.mode = .cut
            // Wakes the accept loop, which closes the listening socket.
            shutdown(listener, Int32(SHUT_RDWR))
            for connection in state.connections.values { Self.shut(connection) }
        }
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            let (closed, cut) = state.withLock { state in
                if state.closed {
                    if client >= 0 { Glibc.close(client) }
                    Glibc.close(listener)
                }
                return (state.closed, state.mode == .cut)
            }
            if closed { return }
            guard client >= 0 else {
                // Out of descriptors or an aborted connection: try again, without spinning.
                usleep(1_000)
                continue
            }
            if cut {
                Glibc.close(client)
                continue
            }
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
            guard connected == 0, !state.closed, state.mode != .cut else { return nil }
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
            state.withLock { state in
                shutdown(client, Int32(SHUT_RDWR))
                shutdown(upstream, Int32(SHUT_RDWR))
                guard remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 else { return }
                state.connections.removeValue(forKey: id)
                state.silent.remove(id)
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

    /// Copies bytes from one socket to the other under the current mode, until either side closes; a silenced
    /// connection reads and drops them (the sender sees its bytes leave, no answer ever comes).
    private func pump(_ id: Int, from source: Int32, to destination: Int32) {
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if count <= 0 { return }
            let (silent, now) = state.withLock { ($0.silent.contains(id), $0.mode) }
            if silent { continue }
            var current = now
            while current == .blackhole {
                usleep(10_000)
                current = mode
            }
            switch current {
            case .cut, .blackhole:
                return
            case .delay(let milliseconds):
                usleep(UInt32(max(0, milliseconds)) * 1000)
            case .pass, .drop:
                break
            }
            var sent = 0
            while sent < count {
                let written = buffer.withUnsafeBytes {
                    send(destination, $0.baseAddress! + sent, count - sent, Int32(MSG_NOSIGNAL))
                }
                if written <= 0 { return }
                sent += written
            }
        }
    }

    private static func shut(_ connection: Connection) {
        shutdown(connection.client, Int32(SHUT_RDWR))
        shutdown(connection.upstream, Int32(SHUT_RDWR))
    }

    private static func address(_ host: String, _ port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &address.sin_addr)
        return address
    }
}
