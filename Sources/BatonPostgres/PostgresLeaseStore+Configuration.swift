@_spi(BatonStoreKit) import Baton

extension PostgresLeaseStore {
    /// How a ``PostgresLeaseStore`` uses its database: where its tables live, how long it waits for a connection
    /// to open, how many connections it opens, how it checks its listening connection. Requests are bounded by
    /// the ``LeaseStore`` front's deadline (``LeaseStore/Configuration/requestTimeout``).
    public struct Configuration: Sendable {
        /// The schema that holds Baton's tables (`baton_leases`, `baton_rounds`, `baton_presence`, `baton_meta`)
        /// and names the notification channel (`baton_changes_<schema>`). Default `public`; another schema is
        /// created if it does not exist. Stores that should elect together must use the same schema.
        ///
        /// Lower-case ASCII letters, digits and `_`, starting with a letter or `_`, at most 48 bytes (so it never
        /// needs quoting and the channel name stays within PostgreSQL's 63 bytes). A store URL may set it with
        /// the query item `schema=NAME`.
        public var schema: String

        /// How long opening one connection may take. Default 10 s; 1 ms to 1 hour.
        public var connectTimeout: Duration

        /// The most connections the store opens for requests. Above 1 (the default is 10), requests run on a pool of
        /// up to that many connections and the change listener has one more of its own. With 1 the store opens one
        /// connection in all, on which it listens for changes and runs its requests one at a time: a process that
        /// campaigns for a few keys (`baton campaign`, `baton run`, which use it) then costs the server one
        /// connection, so a server's default 100 connections serve about 100 of them. A process with many electors
        /// (thousands of keys) needs the pool: its elections from cold would queue past their deadlines on one
        /// connection. The URL's `pool_max_conns` sets it. 1 to 1000.
        public var maximumConnections: Int

        /// How many of the pool's connections stay open while idle, from 0 (the default) to one less than
        /// ``maximumConnections``. The pool opens them when the store starts and keeps them. Every connection beyond
        /// them is closed after a minute unused, and the pool arms and disarms a timer for that each time such a
        /// connection is handed back and taken again. Under a steady load of concurrent requests that timer
        /// costs about 15% of the requests per second. A server process with steady traffic (`baton serve` in front
        /// of many clients) may keep its whole pool open (`maximumConnections − 1`). The URL's `pool_min_conns`
        /// sets it.
        public var minimumConnections: Int

        /// The store of a process that campaigns for a few keys: one connection in all.
        public static let candidateConnections = 1

        /// How often ``PostgresLeaseStore/changes(key:)`` reads again without a notification. Default nil:
        /// never, because every change is pushed by `NOTIFY` and expiries are seen by a timer at the term's
        /// remaining time. Set it as a safety net where notifications may be lost (a connection pooler in
        /// transaction mode between Baton and the database drops `LISTEN`).
        public var changesPollInterval: Duration?

        /// How often the change listener's connection is checked with a query (`SELECT 1`), so that a connection
        /// that died silently (a NAT or firewall that forgot it: no reset, no answer) is replaced instead of
        /// delaying the next notification. A change feed's read of the leader may take as long as a check (this and
        /// ``listenerKeepAliveTimeout``) before its connection is taken for dead and closed, and the feed fails (its
        /// elector polls meanwhile). Keep the two together well under the shortest ttl in use. Default 1 s; 1 ms to
        /// 1 hour.
        public var listenerKeepAlive: Duration

        /// How long the listener's check may take before its connection is closed and made again (every
        /// subscriber then reads the store). Default 1 s; 1 ms to 1 hour.
        public var listenerKeepAliveTimeout: Duration

        /// Creates a configuration.
        public init(
            schema: String = "public",
            connectTimeout: Duration = .seconds(10),
            maximumConnections: Int = 10,
            minimumConnections: Int = 0,
            changesPollInterval: Duration? = nil,
            listenerKeepAlive: Duration = .seconds(1),
            listenerKeepAliveTimeout: Duration = .seconds(1)
        ) {
            self.schema = schema
            self.connectTimeout = connectTimeout
            self.maximumConnections = maximumConnections
            self.minimumConnections = minimumConnections
            self.changesPollInterval = changesPollInterval
            self.listenerKeepAlive = listenerKeepAlive
            self.listenerKeepAliveTimeout = listenerKeepAliveTimeout
        }

        /// Checks the values, throwing ``BatonError/Code/invalidArgument`` for one out of range.
        func validate() throws(BatonError) {
            try Self.validate(schema: schema)
            for (value, name) in [
                (connectTimeout, "connectTimeout"),
                (listenerKeepAlive, "listenerKeepAlive"), (listenerKeepAliveTimeout, "listenerKeepAliveTimeout"),
            ] {
                if value < .milliseconds(1) || value > .seconds(3600) {
                    throw .invalidArgument("\(name) must be between 1 ms and 1 hour, got \(value)")
                }
            }
            if !(1...1000).contains(maximumConnections) {
                throw .invalidArgument("maximumConnections must be between 1 and 1000, got \(maximumConnections)")
            }
            if minimumConnections < 0 || minimumConnections >= maximumConnections {
                throw .invalidArgument(
                    "minimumConnections (pool_min_conns) must be from 0 to one less than maximumConnections "
                        + "(pool_max_conns, \(maximumConnections)), got \(minimumConnections)")
            }
            if let changesPollInterval {
                try BatonValidation.duration(changesPollInterval, "changesPollInterval")
            }
        }

        /// Checks a schema name: `[a-z_][a-z0-9_]*`, at most 48 bytes.
        static func validate(schema: String) throws(BatonError) {
            let bytes = Array(schema.utf8)
            let isStart = { (byte: UInt8) in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || byte == UInt8(ascii: "_")
            }
            let isPart = { (byte: UInt8) in isStart(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }
            guard let first = bytes.first, isStart(first), bytes.allSatisfy(isPart), bytes.count <= 48 else {
                throw .invalidArgument(
                    "the PostgreSQL schema name must be 1–48 lower-case ASCII letters, digits or '_', "
                        + "starting with a letter or '_'; got \(schema.debugDescription.prefix(60))"
                )
            }
        }
    }
}
