import ArgumentParser
import Baton
import BatonServer
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The options of `baton serve` that cap what it takes on at once (see `docs/http.md`, "Limits").
struct ServeLimitOptions: ParsableArguments {
    private static let defaults = BatonHTTPServer.Configuration.Limits()

    @Option(
        name: .customLong("max-connections"),
        help: ArgumentHelp(
            "The most connections open at once; beyond it a request is answered 503 (default: "
                + "\(Self.defaults.maxConnections)).",
            valueName: "n"))
    var maxConnections: Int?

    @Option(
        name: .customLong("max-streams"),
        help: ArgumentHelp(
            "The most event streams (watch) open at once; beyond it 503 (default: \(Self.defaults.maxStreams)).",
            valueName: "n"))
    var maxStreams: Int?

    @Option(
        name: .customLong("max-streams-per-key"),
        help: ArgumentHelp(
            "The most event streams of one key; beyond it 429 (default: \(Self.defaults.maxStreamsPerKey)).",
            valueName: "n"))
    var maxStreamsPerKey: Int?

    @Option(
        name: .customLong("max-long-polls"),
        help: ArgumentHelp(
            "The most acquires waiting (wait_ms) at once; beyond it 503 (default: \(Self.defaults.maxLongPolls)).",
            valueName: "n"))
    var maxLongPolls: Int?

    @Option(
        name: .customLong("max-long-polls-per-key"),
        help: ArgumentHelp(
            "The most acquires waiting for one key; beyond it 429 (default: \(Self.defaults.maxLongPollsPerKey)).",
            valueName: "n"))
    var maxLongPollsPerKey: Int?

    @Option(
        name: .customLong("write-timeout"),
        help: ArgumentHelp(
            "How long a write may wait for a client that stopped reading before its connection is closed "
                + "(default: 30s).",
            valueName: "time"))
    var writeTimeout: String?

    @Option(
        name: .customLong("stream-buffer"),
        help: ArgumentHelp(
            "How many leader changes an event stream holds for a slow client; the oldest are dropped, the "
                + "newest kept (default: \(Self.defaults.streamBufferSize)).",
            valueName: "n"))
    var streamBuffer: Int?

    /// The limits: each option given, else its default.
    /// - Throws: ``BatonError`` `invalidArgument` naming the option, for a count below 1 or a bad duration.
    func limits() throws(BatonError) -> BatonHTTPServer.Configuration.Limits {
        var limits = Self.defaults
        func count(_ value: Int?, _ option: String, into field: inout Int) throws(BatonError) {
            guard let value else { return }
            guard value >= 1 else { throw .invalidArgument("\(option) must be at least 1, got \(value)") }
            field = value
        }
        try count(maxConnections, "--max-connections", into: &limits.maxConnections)
        try count(maxStreams, "--max-streams", into: &limits.maxStreams)
        try count(maxStreamsPerKey, "--max-streams-per-key", into: &limits.maxStreamsPerKey)
        try count(maxLongPolls, "--max-long-polls", into: &limits.maxLongPolls)
        try count(maxLongPollsPerKey, "--max-long-polls-per-key", into: &limits.maxLongPollsPerKey)
        try count(streamBuffer, "--stream-buffer", into: &limits.streamBufferSize)
        if let writeTimeout {
            limits.writeTimeout = try parseDurationOption(writeTimeout, option: "--write-timeout")
        }
        return limits
    }

    /// Raises this process's soft limit of open files to its hard limit (as Go's runtime does), so that the
    /// connection cap, not the descriptor limit, decides; warns when even the hard limit is below the cap.
    static func raiseOpenFileLimit(for limits: BatonHTTPServer.Configuration.Limits, logger: Logger) {
        #if os(Linux)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(resource, &raised) == 0 { limit = raised }
        }
        // Descriptors beyond the connections: the listener, the store's files and connections, logs.
        let needed = UInt64(limits.maxConnections) + 64
        if UInt64(limit.rlim_cur) < needed {
            logger.warning(
                "the open-file limit is below --max-connections: connections beyond it are refused by the kernel",
                metadata: ["open_file_limit": "\(limit.rlim_cur)", "max_connections": "\(limits.maxConnections)"])
        }
    }
}
