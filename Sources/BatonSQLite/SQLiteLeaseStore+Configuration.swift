@_spi(BatonStoreKit) import Baton

extension SQLiteLeaseStore {
    /// How a ``SQLiteLeaseStore`` uses its database file.
    public struct Configuration: Sendable {
        /// How long an operation waits for another connection (another process, or another store instance in
        /// this one) to finish its write transaction before failing with ``BatonError/Code/timeout``. Set as
        /// SQLite's `PRAGMA busy_timeout`, which SQLite implements by sleeping and retrying. Default 5 s;
        /// 0 to 1 hour.
        public var busyTimeout: Duration

        /// How often ``SQLiteLeaseStore/changes(key:)`` reads the database again without being woken.
        ///
        /// Default nil: not at all, because changes made by any process are pushed through inotify within
        /// milliseconds (see ``SQLiteLeaseStore``) and expiries are seen by a timer at the term's remaining
        /// time. Set it as a safety net if the database lives where inotify is unreliable (a network or FUSE
        /// file system — where SQLite's WAL mode does not work either). If inotify cannot be set up at all,
        /// the store polls every second whatever this says.
        public var changesPollInterval: Duration?

        /// How hard SQLite makes each commit durable (`PRAGMA synchronous`). Default ``Synchronous/full``.
        public var synchronous: Synchronous

        /// Creates a configuration.
        public init(
            busyTimeout: Duration = .seconds(5),
            changesPollInterval: Duration? = nil,
            synchronous: Synchronous = .full
        ) {
            self.busyTimeout = busyTimeout
            self.changesPollInterval = changesPollInterval
            self.synchronous = synchronous
        }

        /// SQLite's `PRAGMA synchronous` setting, as far as the store allows it to be chosen.
        public struct Synchronous: Sendable, Hashable, CustomStringConvertible {
            let pragmaValue: String

            /// `FULL`: each commit is flushed to the disk (`fsync` of the write-ahead log) before it returns.
            /// A granted term, and so its fencing token, survives the kill of any process and also a power
            /// loss or kernel crash: after a reboot the next term still gets a larger token.
            public static let full = Synchronous(pragmaValue: "FULL")

            /// `NORMAL`: commits reach the write-ahead log in the operating system's cache but are flushed only
            /// at checkpoints. Survives `kill -9` of any process (the kernel still writes the cache out), but a
            /// power loss or kernel crash may undo the last commits — and so reissue a fencing token that a
            /// resource already saw. Faster; choose it only if the tokens need not survive a host crash.
            public static let normal = Synchronous(pragmaValue: "NORMAL")

            /// The pragma's value, `FULL` or `NORMAL`.
            public var description: String { pragmaValue }
        }

        /// Checks the values, throwing ``BatonError/Code/invalidArgument`` for one out of range.
        func validate() throws(BatonError) {
            if busyTimeout < .zero || busyTimeout > .seconds(3600) {
                throw .invalidArgument("busyTimeout must be between 0 and 1 hour, got \(busyTimeout)")
            }
            if let changesPollInterval {
                try BatonValidation.duration(changesPollInterval, "changesPollInterval")
            }
        }
    }
}
