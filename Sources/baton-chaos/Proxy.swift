import ArgumentParser
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension BatonChaosCommand {
    /// A TCP proxy between candidates and a store that injects network faults on command.
    struct Proxy: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Forward loopback ports to a store, delaying, blackholing, dropping or cutting traffic on command.",
            discussion: """
                The control file holds one word, read every 20 ms: `pass` forwards; `delay MS` holds every chunk \
                MS milliseconds before forwarding it; `blackhole` forwards nothing (bytes wait, as behind a \
                partition, and are delivered once the mode changes, unless it becomes `cut`); `drop` turns every open \
                connection silent — its sockets stay open and bytes both ways are read and thrown away, as a NAT or \
                firewall that forgot the flow — while connections opened meanwhile are forwarded (when the mode \
                changes again the silent connections are closed); `cut` closes every connection and closes new \
                ones at once.
                """)

        @Option(help: ArgumentHelp("The file that holds the mode.", valueName: "file"))
        var control: String

        @Option(
            name: .customLong("map"),
            help: ArgumentHelp("A forwarding: LISTEN_PORT=HOST:PORT (repeatable).", valueName: "port=host:port"))
        var maps: [String]

        func run() throws {
            // A write to a connection the other side closed must fail with EPIPE, not end the proxy.
            signal(SIGPIPE, SIG_IGN)
            let proxy = TCPProxy()
            for map in maps {
                let parts = map.split(separator: "=", maxSplits: 1)
                let upstream = parts.count == 2 ? parts[1].split(separator: ":") : []
                guard parts.count == 2, let listen = UInt16(parts[0]), upstream.count == 2,
                    let port = UInt16(upstream[1])
                else {
                    throw ValidationError("--map \(map): expected LISTEN_PORT=HOST:PORT, e.g. 7001=127.0.0.1:6379")
                }
                try proxy.listen(on: listen, forwardingTo: String(upstream[0]), port: port)
            }
            while true {
                if let text = try? String(contentsOfFile: control, encoding: .utf8) {
                    proxy.setMode(TCPProxy.Mode(text.trimmingCharacters(in: .whitespacesAndNewlines)))
                }
                usleep(20_000)
            }
        }
    }
}

/// The forwarding behind ``BatonChaosCommand/Proxy``: blocking sockets, two threads per connection.
final class TCPProxy: Sendable {
    enum Mode: Equatable {
        case pass
        case delay(milliseconds: Int)
        case blackhole
        case drop
        case cut

        /// Parses a control word; anything unknown forwards.
        init(_ text: String) {
            let words = text.split(separator: " ")
            switch words.first {
            case "delay": self = .delay(milliseconds: words.count > 1 ? Int(words[1]) ?? 0 : 0)
            case "blackhole": self = .blackhole
            case "drop": self = .drop
            case "cut": self = .cut
            default: self = .pass
            }
        }
    }

    private struct State {
        var mode = Mode.pass
        var nextID = 0
        var connections: [Int: (client: Int32, upstream: Int32)] = [:]
        /// The connections that `drop` turned silent.
        var silent: Set<Int> = []
    }

    private let state = Mutex(State())

    /// Switches the mode; switching to `cut` closes every connection, to `drop` silences the open ones, and away
    /// from `drop` closes the silent ones.
    func setMode(_ mode: Mode) {
        let cut = state.withLock { state -> [(client: Int32, upstream: Int32)] in
            guard state.mode != mode else { return [] }
            let wasDrop = state.mode == .drop
            state.mode = mode
            if mode == .drop {
                state.silent = Set(state.connections.keys)
                return []
            }
            if mode == .cut {
                state.silent = []
                return Array(state.connections.values)
            }
            guard wasDrop else { return [] }
            defer { state.silent = [] }
            return state.silent.compactMap { state.connections[$0] }
        }
        for connection in cut {
            shutdown(connection.client, Int32(SHUT_RDWR))
            shutdown(connection.upstream, Int32(SHUT_RDWR))
        }
    }

    private var mode: Mode { state.withLock { $0.mode } }

    /// Listens on 127.0.0.1:`port` and forwards every connection to `host`:`upstreamPort`.
    func listen(on port: UInt16, forwardingTo host: String, port upstreamPort: UInt16) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.address("127.0.0.1", port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, Glibc.listen(listener, 64) == 0 else {
            throw ValidationError("cannot listen on 127.0.0.1:\(port): \(String(cString: strerror(errno)))")
        }
        Thread.detachNewThread { [self] in
            while true {
                let client = accept(listener, nil, nil)
                guard client >= 0 else { continue }
                if mode == .cut {
                    close(client)
                    continue
                }
                Thread.detachNewThread { [self] in connect(client, to: host, port: upstreamPort) }
            }
        }
    }

    private func connect(_ client: Int32, to host: String, port: UInt16) {
        let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = Self.address(host, port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(upstream)
            close(client)
            return
        }
        var noDelay: Int32 = 1
        setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(upstream, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))
        let id = state.withLock { state in
            state.nextID += 1
            state.connections[state.nextID] = (client, upstream)
            return state.nextID
        }
        let remaining = Atomic(2)
        let finish: @Sendable () -> Void = { [self] in
            shutdown(client, Int32(SHUT_RDWR))
            shutdown(upstream, Int32(SHUT_RDWR))
            if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                state.withLock { _ = $0.connections.removeValue(forKey: id) }
                close(client)
                close(upstream)
            }
        }
        Thread.detachNewThread { [self] in
            pump(id, from: client, to: upstream)
            finish()
        }
        pump(id, from: upstream, to: client)
        finish()
    }

    /// Copies bytes from one socket to the other under the current mode, until either side closes.
    private func pump(_ id: Int, from source: Int32, to destination: Int32) {
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if count <= 0 { return }
            // A silent connection reads and throws away: the sender sees its bytes leave, no answer ever comes.
            if state.withLock({ $0.silent.contains(id) }) { continue }
            var current = mode
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
        inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &address.sin_addr)
        return address
    }
}
