import ArgumentParser
import BatonTestKit
import Foundation

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
            var proxies: [BlackholeProxy] = []
            for map in maps {
                let parts = map.split(separator: "=", maxSplits: 1)
                let upstream = parts.count == 2 ? parts[1].split(separator: ":") : []
                guard parts.count == 2, let listen = UInt16(parts[0]), upstream.count == 2,
                    let port = UInt16(upstream[1])
                else {
                    throw ValidationError("--map \(map): expected LISTEN_PORT=HOST:PORT, e.g. 7001=127.0.0.1:6379")
                }
                do {
                    let host = String(upstream[0])
                    proxies.append(try BlackholeProxy(listeningOn: Int(listen), forwardingTo: host, port: Int(port)))
                } catch let failure as BlackholeProxy.Failure {
                    throw ValidationError(failure.description)
                }
            }
            while true {
                if let text = try? String(contentsOfFile: control, encoding: .utf8) {
                    let mode = Self.mode(text.trimmingCharacters(in: .whitespacesAndNewlines))
                    for proxy in proxies { proxy.setMode(mode) }
                }
                usleep(20_000)
            }
        }

        /// The mode a control word names; anything unknown forwards.
        static func mode(_ word: String) -> BlackholeProxy.Mode {
            let words = word.split(separator: " ")
            switch words.first {
            case "delay": return .delay(milliseconds: words.count > 1 ? Int(words[1]) ?? 0 : 0)
            case "blackhole": return .blackhole
            case "drop": return .drop
            case "cut": return .cut
            default: return .pass
            }
        }
    }
}
