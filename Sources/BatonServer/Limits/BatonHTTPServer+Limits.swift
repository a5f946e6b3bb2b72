import Baton

extension BatonHTTPServer.Configuration {
    /// How much the service takes on at once, and how long it waits for a client that stops reading.
    ///
    /// Over a per-key cap the answer is `429 Too Many Requests`, over a global cap `503 Service Unavailable`, both
    /// with `Retry-After` (``retryAfterPerKey``, ``retryAfterGlobal``) and a JSON error whose `limit` names the cap;
    /// `baton_http_rejected_total{limit=...}` counts them. The defaults admit 10,000 idle event
    /// streams (and as many waiting long polls); `scripts/bench http-watchers` measures the memory they take.
    ///
    /// A value below 1 counts as 1; `baton serve` refuses such values with an error naming the option.
    public struct Limits: Sendable, Equatable {
        /// The most connections open at once. A connection beyond it is accepted, its first request answered `503`
        /// with `Retry-After` and `Connection: close`, and closed. 16,384 by default.
        public var maxConnections: Int
        /// The most Server-Sent Events streams (`/v2/leases/{key}/watch`) open at once. 10,000 by default.
        public var maxStreams: Int
        /// The most event streams of one key open at once. 1,000 by default.
        public var maxStreamsPerKey: Int
        /// The most long polls (acquires with `wait_ms` that wait) at once. 10,000 by default.
        public var maxLongPolls: Int
        /// The most long polls waiting for one key at once. 100 by default.
        public var maxLongPollsPerKey: Int
        /// How long a write to a client may stay unsent: a connection whose client stops reading (so that its
        /// socket buffers fill and a write cannot be handed to the kernel) is closed this long after that write
        /// was made, which ends its stream and frees its slot. 30 s by default.
        public var writeTimeout: Duration
        /// How many leader changes an event stream holds for a client that reads slower than they come. When it
        /// is full the oldest undelivered change is dropped: the newest leader always reaches the client. 16 by
        /// default.
        public var streamBufferSize: Int

        /// `Retry-After` over a per-key cap: one second.
        public static let retryAfterPerKey: Duration = .seconds(1)
        /// `Retry-After` over a global cap (connections, streams, long polls): five seconds.
        public static let retryAfterGlobal: Duration = .seconds(5)

        /// Creates limits; every parameter has the default described on its property.
        public init(
            maxConnections: Int = 16_384,
            maxStreams: Int = 10_000,
            maxStreamsPerKey: Int = 1_000,
            maxLongPolls: Int = 10_000,
            maxLongPollsPerKey: Int = 100,
            writeTimeout: Duration = .seconds(30),
            streamBufferSize: Int = 16
        ) {
            self.maxConnections = maxConnections
            self.maxStreams = maxStreams
            self.maxStreamsPerKey = maxStreamsPerKey
            self.maxLongPolls = maxLongPolls
            self.maxLongPollsPerKey = maxLongPollsPerKey
            self.writeTimeout = writeTimeout
            self.streamBufferSize = streamBufferSize
        }

        /// The write timeout actually used: at least one millisecond.
        var effectiveWriteTimeout: Duration { max(writeTimeout, .milliseconds(1)) }
    }
}
